//! IAM for the local stack: each function's policy from template.yaml, evaluated as AWS
//! evaluates identity policies (explicit deny wins, then any allow, else an implicit deny),
//! and a ledger of what was allowed, refused and exercised.
//!
//! Why our own evaluator: moto's IAM mode is "very basic" by its own docs, needs an IAM
//! user or role with access keys per principal, authorizes an operation as one action
//! (not the per-item `PutItem`/`UpdateItem`/`DeleteItem`/`ConditionCheckItem` that
//! DynamoDB checks inside `TransactWriteItems`), and never sees `execute-api:ManageConnections`
//! (this gateway serves the Management API). The template's policies use only `Effect`,
//! `Action` and `Resource` with wildcards; anything else (conditions, `NotAction`, policy
//! templates, managed policies) is refused when the template loads, so nothing the
//! evaluator does not understand is silently allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The account and region moto answers for; ARNs of local resources use them.
pub const LOCAL_ACCOUNT: &str = "123456789012";
pub const LOCAL_REGION: &str = "us-east-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One resource pattern of a statement: the ARN pattern resolved to local names, and the
/// text the template wrote (reports name that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePattern {
    pub arn: String,
    pub declared: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub effect: Effect,
    pub actions: Vec<String>,
    pub resources: Vec<ResourcePattern>,
}

/// A function's identity policy (all the statements of its role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub function: String,
    pub statements: Vec<Statement>,
    /// Grants that stay although no test exercises them, with the template's reason
    /// (`Metadata: UnexercisedPermissions` of the function).
    pub justified: BTreeMap<Grant, String>,
}

/// One request's need: an action on a resource ARN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    pub action: String,
    pub resource: String,
}

impl Need {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self { action: action.into(), resource: resource.into() }
    }
}

/// A grant of the template: (function, action as written, resource as written).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub function: String,
    pub action: String,
    pub resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, by these grants (every allow statement pattern pair that matched).
    Allowed(Vec<Grant>),
    ImplicitDeny,
    ExplicitDeny,
}

impl Policy {
    pub fn evaluate(&self, need: &Need) -> Decision {
        let mut grants = Vec::new();
        for statement in &self.statements {
            let actions: Vec<&String> = statement.actions.iter().filter(|a| action_matches(a, &need.action)).collect();
            if actions.is_empty() {
                continue;
            }
            let resources: Vec<&ResourcePattern> =
                statement.resources.iter().filter(|r| wildcard_match(&r.arn, &need.resource)).collect();
            if resources.is_empty() {
                continue;
            }
            if statement.effect == Effect::Deny {
                return Decision::ExplicitDeny;
            }
            for action in &actions {
                for resource in &resources {
                    grants.push(Grant {
                        function: self.function.clone(),
                        action: (*action).clone(),
                        resource: resource.declared.clone(),
                    });
                }
            }
        }
        if grants.is_empty() { Decision::ImplicitDeny } else { Decision::Allowed(grants) }
    }

    /// Every allow grant the policy makes.
    pub fn grants(&self) -> Vec<Grant> {
        self.statements
            .iter()
            .filter(|s| s.effect == Effect::Allow)
            .flat_map(|s| {
                s.actions.iter().flat_map(move |action| {
                    s.resources.iter().map(move |resource| Grant {
                        function: self.function.clone(),
                        action: action.clone(),
                        resource: resource.declared.clone(),
                    })
                })
            })
            .collect()
    }
}

/// Actions compare case-insensitively (`dynamodb:getitem` is `dynamodb:GetItem`).
fn action_matches(pattern: &str, action: &str) -> bool {
    wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// IAM's wildcards: `*` any run of characters (`/` and `:` included), `?` one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// A refused request, as the evaluator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub function: String,
    pub need: Need,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not authorized to perform: {} on resource: {} (template.yaml grants it no such permission)",
            self.function, self.need.action, self.need.resource
        )
    }
}

/// The principals of one local stack (access key id -> the function's policy) and what
/// their requests were allowed and refused. Shared by the AWS proxy and the Management API.
#[derive(Debug, Clone, Default)]
pub struct Iam(Arc<IamState>);

#[derive(Debug, Default)]
struct IamState {
    policies: BTreeMap<String, Policy>,
    exercised: Mutex<BTreeSet<Grant>>,
    denials: Mutex<Vec<Denial>>,
    /// Where exercised grants are appended (one JSON line each, first use only), so that a
    /// report can join the runs of several processes: `AWS_RULES_USAGE_DIR`.
    usage_file: Option<PathBuf>,
}

/// The access key id a function's local credentials carry: its logical id, as an AWS role
/// session names its role.
pub fn access_key_of(function_logical_id: &str) -> String {
    function_logical_id.to_owned()
}

impl Iam {
    /// `policies`: logical id -> policy. Usage goes to `$AWS_RULES_USAGE_DIR/{pid}.jsonl`
    /// when that variable is set.
    pub fn new(policies: BTreeMap<String, Policy>) -> Self {
        let usage_file = std::env::var_os("AWS_RULES_USAGE_DIR").filter(|d| !d.is_empty()).map(|dir| {
            let dir = PathBuf::from(dir);
            let _ = std::fs::create_dir_all(&dir);
            dir.join(format!("{}.jsonl", std::process::id()))
        });
        let policies = policies.into_iter().map(|(id, policy)| (access_key_of(&id), policy)).collect();
        Self(Arc::new(IamState { policies, usage_file, ..IamState::default() }))
    }

    /// The function whose credentials carry `access_key`; `None` for anyone else (the
    /// harness and the tools that create tables act as the account's administrator).
    pub fn principal(&self, access_key: &str) -> Option<&Policy> {
        self.0.policies.get(access_key)
    }

    /// Checks every need of one request; the first refusal is the answer.
    pub fn authorize(&self, policy: &Policy, needs: &[Need]) -> Result<(), Denial> {
        let mut exercised = Vec::new();
        for need in needs {
            match policy.evaluate(need) {
                Decision::Allowed(grants) => exercised.extend(grants),
                Decision::ImplicitDeny | Decision::ExplicitDeny => {
                    let denial = Denial { function: policy.function.clone(), need: need.clone() };
                    tracing::error!(target: "iam", "AccessDenied: {denial}");
                    self.0.denials.lock().expect("iam lock").push(denial.clone());
                    return Err(denial);
                }
            }
        }
        self.record(exercised);
        Ok(())
    }

    fn record(&self, grants: Vec<Grant>) {
        let mut seen = self.0.exercised.lock().expect("iam lock");
        let new: Vec<Grant> = grants.into_iter().filter(|g| seen.insert(g.clone())).collect();
        drop(seen);
        if let (Some(path), false) = (&self.0.usage_file, new.is_empty()) {
            let lines: String = new.iter().map(|g| format!("{}\n", serde_json::to_string(g).expect("grant"))).collect();
            // Appends of one write each: processes and stacks share the file safely.
            if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = file.write_all(lines.as_bytes());
            }
        }
    }

    /// Requests refused so far.
    pub fn denials(&self) -> Vec<Denial> {
        self.0.denials.lock().expect("iam lock").clone()
    }

    /// The refusals so far, forgotten (a test that provokes them on purpose).
    pub fn take_denials(&self) -> Vec<Denial> {
        std::mem::take(&mut *self.0.denials.lock().expect("iam lock"))
    }

    pub fn exercised(&self) -> BTreeSet<Grant> {
        self.0.exercised.lock().expect("iam lock").clone()
    }

    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.0.policies.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(effect: Effect, actions: &[&str], resources: &[&str]) -> Statement {
        Statement {
            effect,
            actions: actions.iter().map(|a| a.to_string()).collect(),
            resources: resources
                .iter()
                .map(|r| ResourcePattern { arn: r.to_string(), declared: r.to_string() })
                .collect(),
        }
    }

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/Messages";

    #[test]
    fn wildcards_span_slashes_and_question_marks_take_one_character() {
        assert!(wildcard_match("arn:aws:s3:::b/uploads/*", "arn:aws:s3:::b/uploads/c/u/f.png"));
        assert!(!wildcard_match("arn:aws:s3:::b/uploads/*", "arn:aws:s3:::b/other/f.png"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match(TABLE, &format!("{TABLE}/index/ByUser")));
    }

    #[test]
    fn an_action_not_granted_on_the_resource_is_an_implicit_deny() {
        let policy = Policy {
            function: "SendFunction".into(),
            statements: vec![statement(Effect::Allow, &["dynamodb:GetItem", "dynamodb:PutItem"], &[TABLE])],
            justified: BTreeMap::new(),
        };
        assert_eq!(policy.evaluate(&Need::new("dynamodb:UpdateItem", TABLE)), Decision::ImplicitDeny);
        assert!(matches!(policy.evaluate(&Need::new("dynamodb:getitem", TABLE)), Decision::Allowed(_)));
        assert_eq!(
            policy.evaluate(&Need::new("dynamodb:Query", format!("{TABLE}/index/X"))),
            Decision::ImplicitDeny,
            "a table's grant does not cover its indexes"
        );
    }

    #[test]
    fn an_explicit_deny_wins_over_any_allow() {
        let policy = Policy {
            function: "F".into(),
            statements: vec![
                statement(Effect::Allow, &["dynamodb:*"], &["*"]),
                statement(Effect::Deny, &["dynamodb:DeleteItem"], &[TABLE]),
            ],
            justified: BTreeMap::new(),
        };
        assert_eq!(policy.evaluate(&Need::new("dynamodb:DeleteItem", TABLE)), Decision::ExplicitDeny);
        assert!(matches!(policy.evaluate(&Need::new("dynamodb:PutItem", TABLE)), Decision::Allowed(_)));
    }

    #[test]
    fn a_refusal_is_recorded_and_names_function_action_and_resource() {
        let policy = Policy { function: "SendFunction".into(), statements: vec![], justified: BTreeMap::new() };
        let iam = Iam::new(BTreeMap::from([("SendFunction".to_owned(), policy.clone())]));
        let denial = iam.authorize(&policy, &[Need::new("dynamodb:UpdateItem", TABLE)]).unwrap_err();
        assert!(denial.to_string().contains("SendFunction is not authorized to perform: dynamodb:UpdateItem"));
        assert_eq!(iam.denials().len(), 1);
    }
}

/// Grants of template.yaml against the grants the local IAM recorded as exercised.
pub struct UsageReport {
    pub exercised: usize,
    /// Neither exercised nor justified: remove them, or say in the template why they stay.
    pub unused: Vec<Grant>,
    /// Not exercised, with the template's reason.
    pub justified: Vec<(Grant, String)>,
    /// Justifications for grants that were exercised or do not exist: stale text.
    pub stale: Vec<Grant>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: a line that is not a grant: {source}")]
    Line { path: String, source: serde_json::Error },
}

impl UsageReport {
    /// Reads every `*.jsonl` file of `usage_dir` (one per process that ran a local stack).
    pub fn read(template: &crate::template::Template, usage_dir: &std::path::Path) -> Result<Self, ReportError> {
        let names = crate::template::LocalNames {
            prefix: String::new(),
            stage: "report".into(),
            websocket_api_id: crate::template::LOCAL_WEBSOCKET_API_ID.into(),
        };
        let policies = template.function_policies(&names)?;
        let read_error =
            |path: &std::path::Path, source| ReportError::Read { path: path.display().to_string(), source };
        let mut exercised = BTreeSet::new();
        let entries = std::fs::read_dir(usage_dir).map_err(|e| read_error(usage_dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| read_error(usage_dir, e))?.path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let grant: Grant = serde_json::from_str(line)
                    .map_err(|source| ReportError::Line { path: path.display().to_string(), source })?;
                exercised.insert(grant);
            }
        }
        Ok(Self::compare(policies.values(), &exercised))
    }

    pub fn compare<'a>(policies: impl Iterator<Item = &'a Policy>, exercised: &BTreeSet<Grant>) -> Self {
        let mut report = Self { exercised: 0, unused: vec![], justified: vec![], stale: vec![] };
        for policy in policies {
            let grants: BTreeSet<Grant> = policy.grants().into_iter().collect();
            for grant in &grants {
                match (exercised.contains(grant), policy.justified.get(grant)) {
                    (true, _) => report.exercised += 1,
                    (false, Some(why)) => report.justified.push((grant.clone(), why.clone())),
                    (false, None) => report.unused.push(grant.clone()),
                }
            }
            report
                .stale
                .extend(policy.justified.keys().filter(|g| exercised.contains(*g) || !grants.contains(*g)).cloned());
        }
        report
    }

    pub fn is_clean(&self) -> bool {
        self.unused.is_empty() && self.stale.is_empty()
    }
}

impl std::fmt::Display for UsageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = |g: &Grant| format!("{:<22} {:<34} {}", g.function, g.action, g.resource);
        writeln!(f, "IAM grants exercised by the tests: {}", self.exercised)?;
        writeln!(f, "Not exercised, justified in template.yaml: {}", self.justified.len())?;
        for (grant, why) in &self.justified {
            writeln!(f, "  {}  ({why})", line(grant))?;
        }
        writeln!(f, "Not exercised and not justified: {}", self.unused.len())?;
        for grant in &self.unused {
            writeln!(f, "  {}", line(grant))?;
        }
        if !self.stale.is_empty() {
            writeln!(f, "Justified but exercised, or not granted at all (remove the entry): {}", self.stale.len())?;
            for grant in &self.stale {
                writeln!(f, "  {}", line(grant))?;
            }
        }
        Ok(())
    }
}
