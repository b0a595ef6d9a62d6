//! The protocol documents, checked against the types they describe: docs/asyncapi.yaml (the
//! WebSocket frames of `frames.rs`) and docs/openapi.yaml (the HTTP bodies of `http.rs`).
//!
//! Every check compares what a document says with what the serde types produce or accept:
//! property names with serialised keys, `required` with the keys a type cannot do without,
//! `default` with what serde fills in, `additionalProperties: false` with
//! `deny_unknown_fields`, enums with the variants serde knows, and every example with what
//! the type makes of it. So a change to a type that its document does not follow (or the
//! other way round) fails here. A test collects all its mismatches before failing, and
//! prints how many checks it made (`cargo test -p chat-protocol --test protocol_docs --
//! --nocapture`).
//!
//! No network, and no files but the two documents.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::OnceLock;

use chat_protocol::ErrorCode;
use chat_protocol::calls::{Call, CallEntry, CallOutcome, CallState, IceServer, Media, Signal};
use chat_protocol::frames::{
    ChosenState, ClientFrame, CustomStatus, ErrorBody, LastSeenTo, PresenceView, ServerFrame, Status, SyncedChannel,
    TypingState,
};
use chat_protocol::http::{
    BlockList, BlockRequest, ChannelList, ChannelSummary, ChannelView, Credentials, DeviceList, DeviceView, DirectWith,
    DownloadUrl, HistoryPage, Invitation, InvitationList, MemberView, Mute, NewDevice, NewGroup, NewMembers, Platform,
    RefreshRequest, Session, SignOutRequest, UploadGrant, UploadRequest,
};
use chat_protocol::ids::MessageId;
use chat_protocol::model::{
    Attachment, CallId, ChannelId, ChannelKind, ClientMsgId, Emoji, MemberRole, Message, Quote, ReactionCount, UserId,
};
use chat_protocol::search::{SearchHit, SearchPage, SnippetFragment};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

// ---- the documents -----------------------------------------------------------------------

const ASYNCAPI_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/asyncapi.yaml");
const OPENAPI_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");

/// A parsed document, with `$ref` resolution inside it.
struct Doc {
    name: &'static str,
    root: Value,
}

impl Doc {
    fn load(name: &'static str, path: &str) -> Doc {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let root = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"));
        Doc { name, root }
    }

    /// The node a local `$ref` (`#/components/...`) points at.
    fn pointer(&self, reference: &str) -> Option<&Value> {
        let path = reference.strip_prefix('#')?;
        let path: Vec<String> = path.split('/').skip(1).map(|p| p.replace("~1", "/").replace("~0", "~")).collect();
        path.iter().try_fold(&self.root, |node, part| node.get(part.as_str()))
    }

    /// Follows `$ref`s until a node that is not one.
    fn resolve<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        for _ in 0..16 {
            match node.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    node = self.pointer(reference).unwrap_or_else(|| panic!("{}: dangling $ref {reference}", self.name))
                }
                None => return node,
            }
        }
        panic!("{}: $ref chain too long", self.name)
    }

    fn schema(&self, name: &str) -> Option<&Value> {
        self.root.pointer(&format!("/components/schemas/{name}"))
    }
}

fn asyncapi() -> &'static Doc {
    static DOC: OnceLock<Doc> = OnceLock::new();
    DOC.get_or_init(|| Doc::load("asyncapi.yaml", ASYNCAPI_PATH))
}

fn openapi() -> &'static Doc {
    static DOC: OnceLock<Doc> = OnceLock::new();
    DOC.get_or_init(|| Doc::load("openapi.yaml", OPENAPI_PATH))
}

// ---- reporting -------------------------------------------------------------------------------

/// Counts checks and collects every failure, so one run shows all the drift at once.
#[derive(Default)]
struct Report {
    checks: usize,
    failures: Vec<String>,
}

impl Report {
    fn check(&mut self, ok: bool, failure: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.failures.push(failure());
        }
    }

    fn same<T: PartialEq + Debug>(&mut self, what: &str, document: T, code: T) {
        self.check(document == code, || format!("{what}:\n    the document: {document:?}\n    the code:     {code:?}"));
    }

    fn finish(self, test: &str) {
        eprintln!("{test}: {} checks", self.checks);
        assert!(
            self.failures.is_empty(),
            "{} of {} checks failed (the code is the truth: fix the document, or the type if it is wrong):\n- {}",
            self.failures.len(),
            self.checks,
            self.failures.join("\n- ")
        );
    }
}

// ---- small helpers -----------------------------------------------------------------------

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("wire types serialise")
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn strings(value: Option<&Value>) -> BTreeSet<String> {
    value.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn without(value: &Value, key: &str) -> Value {
    let mut value = value.clone();
    value.as_object_mut().expect("an object").remove(key);
    value
}

fn with(value: &Value, key: &str, extra: Value) -> Value {
    let mut value = value.clone();
    value.as_object_mut().expect("an object").insert(key.to_owned(), extra);
    value
}

/// Every key of `part` is in `whole` with the same value (what a round trip must keep).
fn kept(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p.iter().all(|(k, v)| w.get(k).is_some_and(|wv| kept(v, wv))),
        (Value::Array(p), Value::Array(w)) => p.len() == w.len() && p.iter().zip(w).all(|(a, b)| kept(a, b)),
        _ => part == whole,
    }
}

/// The names serde knows for an enum (or for the tags of a tagged enum), read from the error
/// it gives for a name it does not know: the type itself says what its variants are.
fn serde_variants<T: DeserializeOwned>(probe: Value) -> BTreeSet<String> {
    let error = match serde_json::from_value::<T>(probe) {
        Ok(_) => panic!("the probe parsed"),
        Err(e) => e.to_string(),
    };
    let listed =
        error.split_once("expected").map(|(_, rest)| rest).unwrap_or_else(|| panic!("not a variant error: {error}"));
    listed.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Deserialises into `T` and serialises back: what the type makes of a JSON value.
fn round_trip<T: Serialize + DeserializeOwned>(value: Value) -> Result<Value, String> {
    serde_json::from_value::<T>(value).map(|parsed| to_json(&parsed)).map_err(|e| e.to_string())
}

/// A field added to an object no type has: accepted unless the type denies unknown fields.
const UNKNOWN_FIELD: &str = "fieldNoTypeHas";

// ---- a small JSON Schema check -------------------------------------------------------------

/// Validates `value` against `schema` with the keywords these documents use: `$ref` (with
/// siblings), `allOf`, `anyOf`, `oneOf`, `type`, `const`, `enum`, `properties`, `required`,
/// `additionalProperties`, `propertyNames`, `items`, `minItems`, `maxItems`, `maxLength`,
/// `minimum` and `pattern` (of the form `^[class]{m,n}$`; another form is reported, so that
/// no pattern goes unchecked).
fn validate(doc: &Doc, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => return errors.push(format!("{at}: no value is allowed here")),
        Value::Object(schema) => schema,
        other => return errors.push(format!("{at}: the schema is {other}")),
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        match doc.pointer(reference) {
            Some(target) => validate(doc, target, value, at, errors),
            None => errors.push(format!("{at}: dangling $ref {reference}")),
        }
    }
    for sub in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        validate(doc, sub, value, at, errors);
    }
    for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
        if let Some(alternatives) = schema.get(keyword).and_then(Value::as_array) {
            let passing = alternatives
                .iter()
                .filter(|sub| {
                    let mut sub_errors = Vec::new();
                    validate(doc, sub, value, at, &mut sub_errors);
                    sub_errors.is_empty()
                })
                .count();
            if passing == 0 || (exactly_one && passing > 1) {
                errors.push(format!("{at}: {passing} of the {keyword} alternatives match {value}"));
            }
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            other => other.as_array().into_iter().flatten().filter_map(Value::as_str).collect(),
        };
        let is = |t: &str| match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        };
        if !types.iter().any(|t| is(t)) {
            errors.push(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        errors.push(format!("{at}: {value} is not the const {expected}"));
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {options:?}"));
    }
    match value {
        Value::Object(object) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in strings(schema.get("required")) {
                if !object.contains_key(&required) {
                    errors.push(format!("{at}: the required `{required}` is missing"));
                }
            }
            for (key, field) in object {
                let at = format!("{at}.{key}");
                if let Some(names) = schema.get("propertyNames") {
                    validate(doc, names, &Value::String(key.clone()), &format!("{at} (the name)"), errors);
                }
                match properties.and_then(|p| p.get(key)) {
                    Some(sub) => validate(doc, sub, field, &at, errors),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => errors.push(format!("{at}: not a property the schema lists")),
                        Some(sub) if sub.is_object() => validate(doc, sub, field, &at, errors),
                        _ => {}
                    },
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(doc, sub, item, &format!("{at}[{i}]"), errors);
                }
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                errors.push(format!("{at}: {} items, at most {max}", items.len()));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(format!("{at}: {} items, at least {min}", items.len()));
            }
        }
        Value::String(text) => {
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && text.chars().count() as u64 > max
            {
                errors.push(format!("{at}: longer than {max} characters"));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                match matches_pattern(pattern, text) {
                    Some(true) => {}
                    Some(false) => errors.push(format!("{at}: {text:?} does not match {pattern}")),
                    None => errors.push(format!("{at}: the test cannot check the pattern {pattern}")),
                }
            }
        }
        Value::Number(number) => {
            if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), number.as_f64())
                && n < min
            {
                errors.push(format!("{at}: {n} is below the minimum {min}"));
            }
        }
        _ => {}
    }
}

/// `^[class]{m,n}$`, the one pattern form the documents use. `None` for any other form.
fn matches_pattern(pattern: &str, text: &str) -> Option<bool> {
    let body = pattern.strip_prefix("^[")?.strip_suffix('$')?;
    let (class, count) = body.split_once("]{")?;
    let (min, max) = count.strip_suffix('}')?.split_once(',')?;
    let (min, max): (usize, usize) = (min.parse().ok()?, max.parse().ok()?);
    let class: Vec<char> = class.chars().collect();
    let in_class = |c: char| {
        let mut i = 0;
        while i < class.len() {
            if i + 2 < class.len() && class[i + 1] == '-' {
                if (class[i]..=class[i + 2]).contains(&c) {
                    return true;
                }
                i += 3;
            } else {
                if class[i] == c {
                    return true;
                }
                i += 1;
            }
        }
        false
    };
    let length = text.chars().count();
    Some((min..=max).contains(&length) && text.chars().all(in_class))
}

fn check_valid(report: &mut Report, doc: &Doc, schema: &Value, value: &Value, what: &str) {
    let mut errors = Vec::new();
    validate(doc, schema, value, "", &mut errors);
    report.check(errors.is_empty(), || format!("{}: {what} does not fit its schema: {}", doc.name, errors.join("; ")));
}

// ---- one schema against one type -----------------------------------------------------------

/// A schema of a document and the type it describes.
struct Case {
    /// The schema's name in components/schemas (or the message, for frames).
    name: String,
    /// The schema (not a `$ref`).
    schema: Value,
    /// A sample of the type with every optional field set, as JSON.
    full: Value,
    /// A sample with every optional field unset, as the type serialises it: for what the
    /// server sends, whose always-present keys must be exactly the `required` ones.
    minimal: Option<Value>,
    /// What the type makes of a JSON value: parse it, then write it back as JSON.
    round_trip: fn(Value) -> Result<Value, String>,
    /// The document must say `additionalProperties` explicitly (asyncapi.yaml does).
    explicit_additional: bool,
}

impl Case {
    fn new<T: Serialize + DeserializeOwned>(doc: &Doc, name: &str, full: T, minimal: Option<T>) -> Option<Case> {
        let schema = doc.schema(name)?;
        Some(Case {
            name: name.to_owned(),
            schema: doc.resolve(schema).clone(),
            full: to_json(&full),
            minimal: minimal.as_ref().map(to_json),
            round_trip: round_trip::<T>,
            explicit_additional: doc.name == "asyncapi.yaml",
        })
    }
}

/// Looks each case's schema up, reporting the ones the document lacks.
fn cases(report: &mut Report, doc: &Doc, cases: Vec<(&str, Option<Case>)>) -> Vec<Case> {
    cases
        .into_iter()
        .filter_map(|(name, case)| {
            report.check(case.is_some(), || format!("{}: components/schemas has no {name}", doc.name));
            case
        })
        .collect()
}

/// Compares one object schema with its type: property names, `required`, `default`s,
/// `additionalProperties`, the samples' shapes and the schema's examples.
fn check_case(report: &mut Report, doc: &Doc, case: &Case) {
    let name = format!("{}: {}", doc.name, case.name);
    let schema = &case.schema;
    check_valid(report, doc, schema, &case.full, &format!("{} (full sample {})", case.name, case.full));
    if let Some(minimal) = &case.minimal {
        check_valid(report, doc, schema, minimal, &format!("{} (minimal sample {minimal})", case.name));
    }
    for example in schema.get("examples").and_then(Value::as_array).into_iter().flatten() {
        check_valid(report, doc, schema, example, &format!("{} example {example}", case.name));
        let back = (case.round_trip)(example.clone());
        report.check(back.as_ref().is_ok_and(|back| kept(example, back)), || {
            format!("{name}: the type does not keep the example {example}: {back:?}")
        });
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let listed: BTreeSet<String> = properties.keys().cloned().collect();
    let required = strings(schema.get("required"));
    report.same(&format!("{name}: property names vs the keys of a full sample"), &listed, &keys(&case.full));
    report.check(required.is_subset(&listed), || format!("{name}: `required` names keys that are not properties"));

    let back = (case.round_trip)(case.full.clone());
    report.check(back.as_ref() == Ok(&case.full), || {
        format!("{name}: the full sample {} does not survive a round trip: {back:?}", case.full)
    });

    // The keys the type cannot do without are exactly `required`; the others get `default`.
    let mut needed = BTreeSet::new();
    for key in keys(&case.full) {
        match (case.round_trip)(without(&case.full, &key)) {
            Err(_) => {
                needed.insert(key);
            }
            Ok(back) => {
                let filled = back.get(&key).filter(|v| !v.is_null());
                let default = properties.get(&key).and_then(|p| p.get("default"));
                report.same(
                    &format!("{name}.{key}: `default` vs what the type fills in when it is absent"),
                    default,
                    filled,
                );
            }
        }
    }
    report.same(&format!("{name}: `required` vs the keys the type cannot do without"), &required, &needed);
    if let Some(minimal) = &case.minimal {
        // A key the type always sends but reads as its `default` when it is absent (from an
        // older backend) is not `required`: a reader must do without it.
        let defaulted: BTreeSet<String> =
            properties.iter().filter(|(_, p)| p.get("default").is_some()).map(|(k, _)| k.clone()).collect();
        let always: BTreeSet<String> = keys(minimal).difference(&defaulted).cloned().collect();
        report.same(&format!("{name}: `required` vs the keys the type always sends"), &required, &always);
    }

    // `additionalProperties: false` exactly when the type refuses unknown fields.
    let additional = schema.get("additionalProperties");
    if case.explicit_additional {
        report.check(additional.is_some(), || format!("{name}: says nothing of `additionalProperties`"));
    }
    let closed = additional == Some(&Value::Bool(false));
    let accepts_unknown = (case.round_trip)(with(&case.full, UNKNOWN_FIELD, json!(1))).is_ok();
    report.same(
        &format!("{name}: `additionalProperties: false` vs refusing an unknown field"),
        closed,
        !accepts_unknown,
    );
}

/// A string or enum schema against its type: every example parses, and (for enums) the
/// values are exactly the variants serde knows.
fn check_value_schema<T: Serialize + DeserializeOwned>(
    report: &mut Report,
    doc: &Doc,
    name: &str,
    probe: Option<Value>,
) {
    let Some(schema) = doc.schema(name) else {
        return report.check(false, || format!("{}: components/schemas has no {name}", doc.name));
    };
    let schema = doc.resolve(schema);
    for example in schema.get("examples").and_then(Value::as_array).into_iter().flatten() {
        check_valid(report, doc, schema, example, &format!("{name} example {example}"));
        let back = round_trip::<T>(example.clone());
        report
            .check(back.is_ok(), || format!("{}: {name}: the type refuses the example {example}: {back:?}", doc.name));
    }
    if let Some(probe) = probe {
        report.same(
            &format!("{}: {name} enum vs the variants", doc.name),
            strings(schema.get("enum")),
            serde_variants::<T>(probe),
        );
    }
}

// ---- samples -------------------------------------------------------------------------------

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn channel() -> ChannelId {
    ChannelId::parse("g-3f9a1c0e7b2d4a6f8e1c5b7d").unwrap()
}

fn client_msg_id() -> ClientMsgId {
    ClientMsgId::parse("7f3c9a").unwrap()
}

fn message_id() -> MessageId {
    MessageId::from_u64(383_171_067_025_293_312)
}

fn attachment(full: bool) -> Attachment {
    Attachment {
        key: "uploads/g-3f9a1c0e7b2d4a6f8e1c5b7d/alice/9f2c4e1a7b3d5c60/cat_photo.png".into(),
        file_name: "cat_photo.png".into(),
        content_type: "image/png".into(),
        size: 70_000,
        url: full.then(|| "https://bucket.invalid/cat_photo.png".into()),
    }
}

fn message(full: bool) -> Message {
    Message {
        channel_id: channel(),
        message_id: message_id(),
        seq: 42,
        author_id: user("alice"),
        text: "hi".into(),
        client_msg_id: client_msg_id(),
        created_at: 1_795_422_301_353,
        attachments: if full { vec![attachment(true)] } else { Vec::new() },
        edited_at: full.then_some(1_795_422_360_000),
        deleted: full,
        change_seq: full.then_some(7),
        reply_to: full.then(|| quote(true)),
        mentions: if full { vec![user("bob")] } else { Vec::new() },
        reactions: if full { vec![reaction_count(true)] } else { Vec::new() },
        call: full.then(|| call_entry(true)),
    }
}

fn call_id() -> CallId {
    CallId::parse("call-5d2c9e0b4a7f1e3c6b8d0a2f").unwrap()
}

fn call_entry(full: bool) -> CallEntry {
    CallEntry {
        call_id: call_id(),
        media: if full { Media::Video } else { Media::Audio },
        outcome: if full { CallOutcome::Answered } else { CallOutcome::Missed },
        duration_ms: full.then_some(65_000),
    }
}

fn call(full: bool) -> Call {
    Call {
        call_id: call_id(),
        channel_id: channel(),
        caller_id: user("alice"),
        callee_id: user("bob"),
        media: if full { Media::Video } else { Media::Audio },
        state: if full { CallState::Ended } else { CallState::Ringing },
        started_at: 1_795_422_301_353,
        ring_until: 1_795_422_331_353,
        answered_at: full.then_some(1_795_422_305_000),
        ended_at: full.then_some(1_795_422_370_000),
        outcome: full.then_some(CallOutcome::Answered),
        ended_by: full.then(|| user("bob")),
        duration_ms: full.then_some(65_000),
    }
}

fn ice_server(full: bool) -> IceServer {
    IceServer {
        urls: vec!["turn:turn.example.com:3478?transport=udp".into()],
        username: full.then(|| "1795436701:alice".into()),
        credential: full.then(|| "d8soP47RbdIKLDUOpnJPVQyq5Ts=".into()),
    }
}

fn signal() -> Signal {
    Signal::parse(json!({"type": "offer", "sdp": "v=0"})).unwrap()
}

fn emoji() -> Emoji {
    Emoji::parse("👍").unwrap()
}

fn quote(full: bool) -> Quote {
    Quote {
        message_id: MessageId::from_u64(383_170_981_125_881_856),
        author_id: user("bob"),
        text: if full { String::new() } else { "are you there?".into() },
        deleted: full,
    }
}

fn reaction_count(full: bool) -> ReactionCount {
    ReactionCount { emoji: emoji(), count: 2, me: full }
}

fn custom_status(full: bool) -> CustomStatus {
    CustomStatus {
        text: full.then(|| "in a meeting".into()),
        emoji: full.then(emoji),
        expires_at: full.then_some(1_795_425_900_000),
    }
}

fn presence_view(full: bool) -> PresenceView {
    PresenceView {
        user_id: user("bob"),
        status: if full { Status::Idle } else { Status::Offline },
        last_seen: full.then_some(1_795_422_301_353),
        custom_status: full.then(|| custom_status(true)),
    }
}

fn synced_channel(full: bool) -> SyncedChannel {
    SyncedChannel {
        channel_id: channel(),
        sent: 200,
        up_to_seq: 242,
        complete: !full,
        next_after: full.then(|| MessageId::from_u64(383_171_313_008_640_000)),
        up_to_change: full.then_some(7),
    }
}

fn error_body(full: bool) -> ErrorBody {
    if full {
        ErrorBody {
            code: ErrorCode::RateLimited,
            message: "too many requests; retry in 3120 ms".into(),
            action: Some("sendMessage".into()),
            client_msg_id: Some("7f3c9d".into()),
            retry_after_ms: Some(3120),
        }
    } else {
        ErrorBody::new(ErrorCode::Forbidden, "you are not a member", None)
    }
}

/// One sample of every server frame: (every optional field set, every optional field unset).
fn server_samples() -> Vec<(ServerFrame, ServerFrame)> {
    let both = |make: &dyn Fn(bool) -> ServerFrame| (make(true), make(false));
    vec![
        both(&|full| ServerFrame::Ack { client_msg_id: client_msg_id(), message: message(full) }),
        both(&|full| ServerFrame::Message { message: message(full) }),
        both(&|full| ServerFrame::MessageUpdated { message: message(full) }),
        both(&|full| ServerFrame::MessageDeleted {
            channel_id: channel(),
            message_id: message_id(),
            seq: 42,
            change_seq: full.then_some(7),
        }),
        both(&|full| ServerFrame::Reaction {
            channel_id: channel(),
            message_id: message_id(),
            seq: 42,
            user_id: user("bob"),
            emoji: emoji(),
            added: true,
            reactions: if full { vec![reaction_count(false)] } else { Vec::new() },
            change_seq: full.then_some(8),
        }),
        both(&|full| ServerFrame::Presence(presence_view(full))),
        both(&|full| ServerFrame::PresenceState {
            users: if full { vec![presence_view(true), presence_view(false)] } else { Vec::new() },
        }),
        both(&|_| ServerFrame::Typing { channel_id: channel(), user_id: user("alice"), state: TypingState::Start }),
        both(&|_| ServerFrame::Receipt {
            channel_id: channel(),
            user_id: user("bob"),
            message_id: message_id(),
            seq: 42,
        }),
        both(&|full| ServerFrame::Messages {
            channel_id: channel(),
            messages: if full { vec![message(true)] } else { Vec::new() },
        }),
        both(&|full| ServerFrame::Synced { channels: if full { vec![synced_channel(true)] } else { Vec::new() } }),
        both(&|full| ServerFrame::CallStarted {
            call: call(full),
            ice_servers: if full { vec![ice_server(true), ice_server(false)] } else { Vec::new() },
        }),
        both(&|full| ServerFrame::IncomingCall {
            call: call(full),
            ice_servers: if full { vec![ice_server(true)] } else { Vec::new() },
        }),
        both(&|full| ServerFrame::CallAccepted {
            call: call(full),
            ice_servers: if full { vec![ice_server(true)] } else { Vec::new() },
        }),
        both(&|full| ServerFrame::CallEnded { call: call(full) }),
        both(&|_| ServerFrame::CallSignal { call_id: call_id(), signal: signal() }),
        both(&|full| ServerFrame::Error(error_body(full))),
    ]
}

/// The `type` of a server frame. No wildcard: a new variant does not compile until it is
/// named here, and `server_samples` must then give one (checked against the variants serde
/// knows), and docs/asyncapi.yaml a message.
fn server_type(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Ack { .. } => "ack",
        ServerFrame::Message { .. } => "message",
        ServerFrame::MessageUpdated { .. } => "messageUpdated",
        ServerFrame::MessageDeleted { .. } => "messageDeleted",
        ServerFrame::Reaction { .. } => "reaction",
        ServerFrame::Presence(_) => "presence",
        ServerFrame::PresenceState { .. } => "presenceState",
        ServerFrame::Typing { .. } => "typing",
        ServerFrame::Receipt { .. } => "receipt",
        ServerFrame::Messages { .. } => "messages",
        ServerFrame::Synced { .. } => "synced",
        ServerFrame::CallStarted { .. } => "callStarted",
        ServerFrame::IncomingCall { .. } => "incomingCall",
        ServerFrame::CallAccepted { .. } => "callAccepted",
        ServerFrame::CallEnded { .. } => "callEnded",
        ServerFrame::CallSignal { .. } => "callSignal",
        ServerFrame::Error(_) => "error",
    }
}

/// Every field a parsed client frame holds, as JSON, written out by hand (`null` for an
/// absent option). The patterns have no `..` and the `match` no wildcard: a new field or
/// variant does not compile until it is added here, and then docs/asyncapi.yaml must list it.
fn client_json(frame: &ClientFrame) -> Value {
    let (action, fields): (&str, Vec<(&str, Option<Value>)>) = match frame {
        ClientFrame::SendMessage { channel_id, client_msg_id, text, attachments, reply_to, mentions } => (
            "sendMessage",
            vec![
                ("channelId", Some(to_json(channel_id))),
                ("clientMsgId", Some(to_json(client_msg_id))),
                ("text", Some(to_json(text))),
                ("attachments", Some(to_json(attachments))),
                ("replyTo", reply_to.as_ref().map(to_json)),
                ("mentions", Some(to_json(mentions))),
            ],
        ),
        ClientFrame::EditMessage { channel_id, message_id, text } => (
            "editMessage",
            vec![
                ("channelId", Some(to_json(channel_id))),
                ("messageId", Some(to_json(message_id))),
                ("text", Some(to_json(text))),
            ],
        ),
        ClientFrame::DeleteMessage { channel_id, message_id } => {
            ("deleteMessage", vec![("channelId", Some(to_json(channel_id))), ("messageId", Some(to_json(message_id)))])
        }
        ClientFrame::AddReaction { channel_id, message_id, emoji } => (
            "addReaction",
            vec![
                ("channelId", Some(to_json(channel_id))),
                ("messageId", Some(to_json(message_id))),
                ("emoji", Some(to_json(emoji))),
            ],
        ),
        ClientFrame::RemoveReaction { channel_id, message_id, emoji } => (
            "removeReaction",
            vec![
                ("channelId", Some(to_json(channel_id))),
                ("messageId", Some(to_json(message_id))),
                ("emoji", Some(to_json(emoji))),
            ],
        ),
        ClientFrame::Heartbeat { idle } => ("heartbeat", vec![("idle", Some(to_json(idle)))]),
        ClientFrame::SetPresence { state, last_seen } => {
            ("setPresence", vec![("state", state.as_ref().map(to_json)), ("lastSeen", last_seen.as_ref().map(to_json))])
        }
        ClientFrame::SetStatus { text, emoji, expires_at } => (
            "setStatus",
            vec![
                ("text", text.as_ref().map(to_json)),
                ("emoji", emoji.as_ref().map(to_json)),
                ("expiresAt", expires_at.as_ref().map(to_json)),
            ],
        ),
        ClientFrame::SubscribePresence { user_ids, channel_id } => (
            "subscribePresence",
            vec![("userIds", Some(to_json(user_ids))), ("channelId", channel_id.as_ref().map(to_json))],
        ),
        ClientFrame::UnsubscribePresence { user_ids } => {
            ("unsubscribePresence", vec![("userIds", Some(to_json(user_ids)))])
        }
        ClientFrame::Typing { channel_id, state } => {
            ("typing", vec![("channelId", Some(to_json(channel_id))), ("state", Some(to_json(state)))])
        }
        ClientFrame::MarkRead { channel_id, message_id } => {
            ("markRead", vec![("channelId", Some(to_json(channel_id))), ("messageId", Some(to_json(message_id)))])
        }
        ClientFrame::GetPresence { user_ids, channel_id } => {
            ("getPresence", vec![("userIds", Some(to_json(user_ids))), ("channelId", channel_id.as_ref().map(to_json))])
        }
        ClientFrame::Sync { channels, after, limit, changes } => (
            "sync",
            vec![
                ("channels", Some(to_json(channels))),
                ("after", after.as_ref().map(to_json)),
                ("limit", limit.as_ref().map(to_json)),
                ("changes", Some(to_json(changes))),
            ],
        ),
        ClientFrame::StartCall { channel_id, media } => {
            ("startCall", vec![("channelId", Some(to_json(channel_id))), ("media", Some(to_json(media)))])
        }
        ClientFrame::AcceptCall { call_id } => ("acceptCall", vec![("callId", Some(to_json(call_id)))]),
        ClientFrame::DeclineCall { call_id } => ("declineCall", vec![("callId", Some(to_json(call_id)))]),
        ClientFrame::EndCall { call_id } => ("endCall", vec![("callId", Some(to_json(call_id)))]),
        ClientFrame::CallSignal { call_id, signal } => {
            ("callSignal", vec![("callId", Some(to_json(call_id))), ("signal", Some(to_json(signal)))])
        }
    };
    let mut object = Map::new();
    object.insert("action".into(), action.into());
    for (key, value) in fields {
        object.insert(key.into(), value.unwrap_or(Value::Null));
    }
    Value::Object(object)
}

fn parse_client(value: Value) -> Result<Value, String> {
    ClientFrame::parse(&value.to_string()).map(|frame| client_json(&frame)).map_err(|e| e.to_string())
}

// ---- the AsyncAPI document's frames ----------------------------------------------------------

/// A message of asyncapi.yaml: its key, its payload schema, and the tag it declares
/// (`properties.action.const` for client frames, `properties.type.const` for server frames).
struct Frame<'a> {
    key: &'a str,
    message: &'a Value,
    payload: &'a Value,
    tag: String,
}

fn frames(tag_field: &str) -> Vec<Frame<'static>> {
    let doc = asyncapi();
    let messages = doc.root.pointer("/components/messages").and_then(Value::as_object).expect("components/messages");
    messages
        .iter()
        .filter_map(|(key, message)| {
            let message = doc.resolve(message);
            let payload = doc.resolve(message.get("payload")?);
            let tag = payload.pointer(&format!("/properties/{tag_field}/const"))?.as_str()?.to_owned();
            Some(Frame { key, message, payload, tag })
        })
        .collect()
}

fn client_frames() -> Vec<Frame<'static>> {
    frames("action")
}

fn server_frames() -> Vec<Frame<'static>> {
    frames("type")
}

/// The messages the operations of one `action` (send or receive) carry, by key.
fn operation_messages(doc: &Doc, action: &str) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    for operation in doc.root.get("operations").and_then(Value::as_object).into_iter().flat_map(|o| o.values()) {
        if operation.get("action").and_then(Value::as_str) != Some(action) {
            continue;
        }
        for reference in operation.get("messages").and_then(Value::as_array).into_iter().flatten() {
            let reference = reference.get("$ref").and_then(Value::as_str).unwrap_or_default();
            let key = reference.rsplit('/').next().unwrap_or_default().to_owned();
            *found.entry(key).or_insert(0) += 1;
        }
    }
    found
}

#[test]
fn asyncapi_describes_the_api_gateway_socket() {
    let doc = asyncapi();
    let mut report = Report::default();
    report.same("asyncapi version", doc.root.get("asyncapi"), Some(&json!("3.0.0")));

    let servers = doc.root.get("servers").and_then(Value::as_object).cloned().unwrap_or_default();
    report.same("servers", servers.len(), 1);
    for (name, server) in &servers {
        report.same(
            &format!("server {name} host"),
            server.get("host"),
            Some(&json!("{apiId}.execute-api.{region}.amazonaws.com")),
        );
        report.same(&format!("server {name} pathname"), server.get("pathname"), Some(&json!("/{stage}")));
        report.same(&format!("server {name} protocol"), server.get("protocol"), Some(&json!("wss")));
        let schemes: Vec<&Value> =
            server.get("security").and_then(Value::as_array).into_iter().flatten().map(|s| doc.resolve(s)).collect();
        report.check(
            schemes.iter().any(|s| {
                s.get("type") == Some(&json!("httpApiKey"))
                    && s.get("in") == Some(&json!("query"))
                    && s.get("name") == Some(&json!("token"))
            }),
            || format!("server {name}: no security scheme for the `token` query parameter"),
        );
    }

    let channels = doc.root.get("channels").and_then(Value::as_object).cloned().unwrap_or_default();
    report.same("channels (one socket)", channels.len(), 1);
    let all_messages = keys(doc.root.pointer("/components/messages").unwrap_or(&Value::Null));
    for (name, channel) in &channels {
        report.same(
            &format!("channel {name}: messages vs components/messages"),
            keys(&channel["messages"]),
            all_messages.clone(),
        );
        let query = channel.pointer("/bindings/ws/query").map(|q| doc.resolve(q));
        report.check(query.is_some_and(|q| strings(q.get("required")).contains("token")), || {
            format!("channel {name}: the ws binding does not require the `token` query parameter")
        });
    }

    // Every operation's messages (and replies) are messages of its channel, of the right side.
    let client: BTreeSet<&str> = client_frames().iter().map(|f| f.key).collect();
    let server: BTreeSet<&str> = server_frames().iter().map(|f| f.key).collect();
    for (name, operation) in doc.root.get("operations").and_then(Value::as_object).into_iter().flatten() {
        let side = match operation.get("action").and_then(Value::as_str) {
            Some("send") => &client,
            Some("receive") => &server,
            other => {
                report.check(false, || format!("operation {name}: action {other:?}"));
                continue;
            }
        };
        let refs = |list: Option<&Value>| -> Vec<String> {
            list.and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("$ref").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        };
        for reference in refs(operation.get("messages")) {
            let key = reference.rsplit('/').next().unwrap_or_default();
            report.check(side.contains(key), || {
                format!("operation {name} carries {reference}, a message of the other side")
            });
        }
        for reference in refs(operation.pointer("/reply/messages")) {
            let key = reference.rsplit('/').next().unwrap_or_default();
            report.check(server.contains(key), || {
                format!("operation {name} replies with {reference}, not a server frame")
            });
        }
    }
    report.finish("asyncapi_describes_the_api_gateway_socket");
}

#[test]
fn every_client_action_has_a_message_and_a_send_operation() {
    let doc = asyncapi();
    let mut report = Report::default();
    let actions: BTreeSet<String> = ClientFrame::ACTIONS.iter().map(|a| a.to_string()).collect();
    // ACTIONS is written by hand: it must be every variant serde knows, or `parse` refuses one.
    report.same(
        "ClientFrame::ACTIONS vs ClientFrame's variants",
        actions.clone(),
        serde_variants::<ClientFrame>(json!({"action": "noSuchAction"})),
    );
    let frames = client_frames();
    report.same(
        "client frames in asyncapi.yaml vs ClientFrame::ACTIONS",
        frames.iter().map(|f| f.tag.clone()).collect(),
        actions,
    );
    report.same("client frames with one message each", frames.len(), ClientFrame::ACTIONS.len());
    let sent = operation_messages(doc, "send");
    for frame in &frames {
        report.same(
            &format!("{}: message name vs its action", frame.key),
            frame.message.get("name"),
            Some(&json!(frame.tag)),
        );
        report.same(&format!("{}: send operations carrying it", frame.key), sent.get(frame.key), Some(&1));
    }
    report.same("send operations carry client frames only", sent.len(), frames.len());
    report.finish("every_client_action_has_a_message_and_a_send_operation");
}

#[test]
fn every_server_frame_type_has_a_message_and_a_receive_operation() {
    let doc = asyncapi();
    let mut report = Report::default();
    let variants = serde_variants::<ServerFrame>(json!({"type": "noSuchType"}));
    let samples = server_samples();
    let mut sampled = BTreeSet::new();
    for (full, minimal) in &samples {
        for sample in [full, minimal] {
            let json = to_json(sample);
            report.same("a sample's `type` vs server_type()", json.get("type"), Some(&json!(server_type(sample))));
        }
        sampled.insert(server_type(full).to_owned());
    }
    report.same("sampled server frame types vs ServerFrame's variants", &sampled, &variants);
    report.same("one sample per variant", samples.len(), variants.len());

    let frames = server_frames();
    report.same(
        "server frames in asyncapi.yaml vs ServerFrame's variants",
        frames.iter().map(|f| f.tag.clone()).collect(),
        variants,
    );
    let received = operation_messages(doc, "receive");
    for frame in &frames {
        report.same(
            &format!("{}: message name vs its type", frame.key),
            frame.message.get("name"),
            Some(&json!(frame.tag)),
        );
        report.same(&format!("{}: receive operations carrying it", frame.key), received.get(frame.key), Some(&1));
    }
    report.same("receive operations carry server frames only", received.len(), frames.len());
    report.finish("every_server_frame_type_has_a_message_and_a_receive_operation");
}

#[test]
fn client_frame_schemas_match_what_parse_accepts() {
    let doc = asyncapi();
    let mut report = Report::default();
    for frame in client_frames() {
        // A sample built from the document: each property's `const`, or its first example.
        let mut sample = Map::new();
        for (key, property) in frame.payload.get("properties").and_then(Value::as_object).into_iter().flatten() {
            let value = property.get("const").or_else(|| property.pointer("/examples/0"));
            report.check(value.is_some(), || format!("{}.{key}: neither `const` nor `examples`", frame.key));
            if let Some(value) = value {
                sample.insert(key.clone(), value.clone());
            }
        }
        let case = Case {
            name: frame.key.to_owned(),
            schema: frame.payload.clone(),
            full: Value::Object(sample),
            minimal: None,
            round_trip: parse_client,
            explicit_additional: true,
        };
        check_case(&mut report, doc, &case);
        report.check(frame.payload.get("additionalProperties") == Some(&Value::Bool(true)), || {
            format!("{}: ClientFrame ignores unknown fields: say `additionalProperties: true`", frame.key)
        });
    }
    report.finish("client_frame_schemas_match_what_parse_accepts");
}

#[test]
fn server_frame_schemas_match_what_the_server_sends() {
    let doc = asyncapi();
    let mut report = Report::default();
    let frames = server_frames();
    for (full, minimal) in server_samples() {
        let kind = server_type(&full);
        let Some(frame) = frames.iter().find(|f| f.tag == kind) else {
            report.check(false, || format!("asyncapi.yaml has no message for `{kind}` frames"));
            continue;
        };
        let case = Case {
            name: frame.key.to_owned(),
            schema: frame.payload.clone(),
            full: to_json(&full),
            minimal: Some(to_json(&minimal)),
            round_trip: round_trip::<ServerFrame>,
            explicit_additional: true,
        };
        check_case(&mut report, doc, &case);
    }
    report.finish("server_frame_schemas_match_what_the_server_sends");
}

#[test]
fn asyncapi_message_examples_are_frames_the_types_take() {
    let doc = asyncapi();
    let mut report = Report::default();
    let sides = [
        (client_frames(), parse_client as fn(Value) -> Result<Value, String>),
        (server_frames(), round_trip::<ServerFrame>),
    ];
    for (frames, round_trip) in sides {
        for frame in frames {
            let examples = frame.message.get("examples").and_then(Value::as_array).cloned().unwrap_or_default();
            report.check(!examples.is_empty(), || format!("{}: no example", frame.key));
            for example in examples.iter().filter_map(|e| e.get("payload")) {
                check_valid(&mut report, doc, frame.payload, example, &format!("{} example {example}", frame.key));
                let back = round_trip(example.clone());
                report.check(back.as_ref().is_ok_and(|back| kept(example, back)), || {
                    format!("{}: the type does not take the example {example} as it is: {back:?}", frame.key)
                });
            }
        }
    }
    report.finish("asyncapi_message_examples_are_frames_the_types_take");
}

#[test]
fn asyncapi_shared_schemas_match_their_types() {
    let doc = asyncapi();
    let mut report = Report::default();
    let list = vec![
        ("Message", Case::new(doc, "Message", message(true), Some(message(false)))),
        ("Attachment", Case::new(doc, "Attachment", attachment(true), Some(attachment(false)))),
        ("Quote", Case::new(doc, "Quote", quote(true), Some(quote(false)))),
        ("ReactionCount", Case::new(doc, "ReactionCount", reaction_count(true), Some(reaction_count(false)))),
        ("PresenceView", Case::new(doc, "PresenceView", presence_view(true), Some(presence_view(false)))),
        ("CustomStatus", Case::new(doc, "CustomStatus", custom_status(true), Some(custom_status(false)))),
        ("SyncedChannel", Case::new(doc, "SyncedChannel", synced_channel(true), Some(synced_channel(false)))),
    ];
    for case in cases(&mut report, doc, list) {
        check_case(&mut report, doc, &case);
    }
    check_value_schema::<UserId>(&mut report, doc, "UserId", None);
    check_value_schema::<ChannelId>(&mut report, doc, "ChannelId", None);
    check_value_schema::<ClientMsgId>(&mut report, doc, "ClientMsgId", None);
    check_value_schema::<MessageId>(&mut report, doc, "MessageId", None);
    check_value_schema::<MessageId>(&mut report, doc, "MessageIdIn", None);
    check_value_schema::<Emoji>(&mut report, doc, "Emoji", None);
    check_value_schema::<TypingState>(&mut report, doc, "TypingState", Some(json!("noSuchState")));
    check_value_schema::<Status>(&mut report, doc, "Status", Some(json!("noSuchStatus")));
    check_value_schema::<ChosenState>(&mut report, doc, "ChosenState", Some(json!("noSuchState")));
    check_value_schema::<LastSeenTo>(&mut report, doc, "LastSeenTo", Some(json!("noSuchAudience")));
    check_value_schema::<ErrorCode>(&mut report, doc, "ErrorCode", Some(json!("no_such_code")));
    report.finish("asyncapi_shared_schemas_match_their_types");
}

// ---- error codes -----------------------------------------------------------------------------

/// (code, status) pairs a text states: a code followed by a three-digit number
/// (`rate_limited 429`), or preceded by one that follows no other code (`429 rate_limited`).
fn stated_statuses(text: &str) -> Vec<(String, u16)> {
    let is_code = |w: &str| ErrorCode::ALL.iter().any(|c| c.as_str() == w);
    let status = |w: &str| if w.len() == 3 { w.parse::<u16>().ok() } else { None };
    let words: Vec<&str> =
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    let mut found = Vec::new();
    for (i, word) in words.iter().enumerate().filter(|(_, w)| is_code(w)) {
        let after = words.get(i + 1).and_then(|w| status(w));
        let before = i.checked_sub(1).and_then(|b| status(words[b])).filter(|_| !(i >= 2 && is_code(words[i - 2])));
        if let Some(s) = after.or(before) {
            found.push((word.to_string(), s));
        }
    }
    found
}

fn descriptions(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(object) => {
            for (key, value) in object {
                match value {
                    Value::String(text) if key == "description" || key == "summary" => out.push(text.clone()),
                    _ => descriptions(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| descriptions(item, out)),
        _ => {}
    }
}

/// (status, response) for every response of every operation, `$ref`s resolved.
fn responses(doc: &Doc) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc.root.get("paths").and_then(Value::as_object).into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            for (status, response) in operation.get("responses").and_then(Value::as_object).into_iter().flatten() {
                found.push((format!("{method} {path}"), status.clone(), doc.resolve(response)));
            }
        }
    }
    found
}

fn media_examples(media: &Value) -> Vec<&Value> {
    let mut found: Vec<&Value> = media.get("example").into_iter().collect();
    found.extend(
        media
            .get("examples")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|e| e.values())
            .filter_map(|e| e.get("value")),
    );
    found
}

#[test]
fn error_codes_match_both_documents() {
    let mut report = Report::default();
    let names: BTreeSet<String> = ErrorCode::ALL.iter().map(|c| c.as_str().to_owned()).collect();
    report.same(
        "ErrorCode::ALL vs ErrorCode's variants",
        names.clone(),
        serde_variants::<ErrorCode>(json!("no_such_code")),
    );
    for code in ErrorCode::ALL {
        report.same(&format!("{code:?}: as_str vs serde"), json!(code.as_str()), to_json(&code));
    }
    let asyncapi_codes = asyncapi().schema("ErrorCode").map(|s| strings(asyncapi().resolve(s).get("enum")));
    report.same("asyncapi.yaml ErrorCode enum vs ErrorCode::ALL", asyncapi_codes, Some(names.clone()));
    let error_frame_code =
        asyncapi().schema("ServerError").and_then(|s| s.pointer("/properties/code")).map(|c| asyncapi().resolve(c));
    report.same("asyncapi.yaml ServerError.code", error_frame_code, asyncapi().schema("ErrorCode"));
    let openapi_codes = openapi()
        .schema("Error")
        .and_then(|s| s.pointer("/properties/code"))
        .map(|c| strings(openapi().resolve(c).get("enum")));
    report.same("openapi.yaml Error.code enum vs ErrorCode::ALL", openapi_codes, Some(names));

    // Wherever openapi.yaml pairs a code with an HTTP status, it is the code's status: in
    // prose, and in the examples of error responses.
    let status_of = |code: &str| ErrorCode::ALL.iter().find(|c| c.as_str() == code).map(|c| c.http_status());
    for doc in [openapi(), asyncapi()] {
        let mut texts = Vec::new();
        descriptions(&doc.root, &mut texts);
        for (code, status) in texts.iter().flat_map(|t| stated_statuses(t)) {
            report.same(
                &format!("{}: the status stated for `{code}` in prose", doc.name),
                Some(status),
                status_of(&code),
            );
        }
    }
    let doc = openapi();
    for (operation, status, response) in responses(doc) {
        for media in response.get("content").and_then(Value::as_object).into_iter().flat_map(|c| c.values()) {
            for example in media_examples(media) {
                if let Some(code) = example.get("code").and_then(Value::as_str) {
                    report.same(
                        &format!("openapi.yaml {operation}: the status of the `{code}` example"),
                        status.parse::<u16>().ok(),
                        status_of(code),
                    );
                }
            }
        }
    }
    report.finish("error_codes_match_both_documents");
}

// ---- the OpenAPI document's schemas ----------------------------------------------------------

/// Object schemas of openapi.yaml that no type of this crate describes.
const NOT_OURS: &[&str] = &[
    // API Gateway's own `{"message": ...}` answers.
    "GatewayMessage",
];

fn openapi_cases(report: &mut Report) -> Vec<Case> {
    let doc = openapi();
    let member = |role| MemberView { user_id: user("alice"), role };
    let device = DeviceView {
        device_id: "4be0643f1d98573b9795".into(),
        platform: Platform::Fcm,
        enabled: true,
        has_endpoint: true,
    };
    let channel_view = |full: bool| ChannelView {
        channel_id: channel(),
        kind: ChannelKind::Group,
        name: full.then(|| "Team".into()),
        members: vec![member(MemberRole::Owner)],
        invited: if full { vec![user("bob")] } else { Vec::new() },
        created_at: 1_795_420_000_000,
    };
    let summary = |full: bool| ChannelSummary {
        channel_id: channel(),
        kind: ChannelKind::Group,
        name: full.then(|| "Team".into()),
        peer: full.then(|| user("bob")),
        role: MemberRole::Owner,
        member_count: 3,
        seq: 42,
        last_message_id: full.then(message_id),
        unread: 2,
        mentions: u64::from(full),
        last_read_seq: 40,
        change_seq: 7,
        muted: false,
    };
    let invitation = |full: bool| Invitation {
        channel_id: channel(),
        kind: ChannelKind::Group,
        name: full.then(|| "Team".into()),
        invited_by: user("alice"),
        role: MemberRole::Member,
        invited_at: 1_795_420_000_000,
    };
    let session = Session {
        user_id: user("alice"),
        access_token: "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.e30.c2ln".into(),
        expires_in: 3600,
        refresh_token: "q3XvW8mZ0pL5tR2yN7bK4cF9hJ1dS6gA0eU3iO8wQzE".into(),
        refresh_expires_in: 2_592_000,
    };
    let grant = UploadGrant {
        url: "https://bucket.invalid/".into(),
        fields: BTreeMap::from([("key".to_owned(), "uploads/x".to_owned())]),
        key: "uploads/x".into(),
        expires_at: 1_795_423_201_353,
        max_bytes: 70_000,
    };
    let list = vec![
        // Requests.
        (
            "Credentials",
            Case::new(
                doc,
                "Credentials",
                Credentials { username: "alice".into(), password: "correct horse".into() },
                None,
            ),
        ),
        ("RefreshRequest", Case::new(doc, "RefreshRequest", RefreshRequest { refresh_token: "q3Xv".into() }, None)),
        ("SignOutRequest", Case::new(doc, "SignOutRequest", SignOutRequest { everywhere: true }, None)),
        ("NewGroup", Case::new(doc, "NewGroup", NewGroup { name: "Team".into(), members: vec![user("bob")] }, None)),
        ("DirectWith", Case::new(doc, "DirectWith", DirectWith { user_id: user("bob") }, None)),
        (
            "NewMembers",
            Case::new(doc, "NewMembers", NewMembers { user_ids: vec![user("dave")], role: MemberRole::Admin }, None),
        ),
        ("Mute", Case::new(doc, "Mute", Mute { muted: true }, None)),
        (
            "UploadRequest",
            Case::new(
                doc,
                "UploadRequest",
                UploadRequest { file_name: "cat photo.png".into(), content_type: "image/png".into(), size: 70_000 },
                None,
            ),
        ),
        ("BlockRequest", Case::new(doc, "BlockRequest", BlockRequest { user_id: user("mallory") }, None)),
        ("NewDevice", Case::new(doc, "NewDevice", NewDevice { platform: Platform::Apns, token: "fGz3".into() }, None)),
        // Answers.
        ("Session", Case::new(doc, "Session", session.clone(), Some(session))),
        ("MemberView", Case::new(doc, "MemberView", member(MemberRole::Admin), Some(member(MemberRole::Member)))),
        ("ChannelView", Case::new(doc, "ChannelView", channel_view(true), Some(channel_view(false)))),
        ("ChannelSummary", Case::new(doc, "ChannelSummary", summary(true), Some(summary(false)))),
        (
            "ChannelList",
            Case::new(
                doc,
                "ChannelList",
                ChannelList { channels: vec![summary(true)] },
                Some(ChannelList { channels: vec![] }),
            ),
        ),
        ("Invitation", Case::new(doc, "Invitation", invitation(true), Some(invitation(false)))),
        (
            "InvitationList",
            Case::new(
                doc,
                "InvitationList",
                InvitationList { invitations: vec![invitation(true)] },
                Some(InvitationList { invitations: vec![] }),
            ),
        ),
        (
            "BlockList",
            Case::new(
                doc,
                "BlockList",
                BlockList { blocked: vec![user("mallory")] },
                Some(BlockList { blocked: vec![] }),
            ),
        ),
        ("Message", Case::new(doc, "Message", message(true), Some(message(false)))),
        ("Attachment", Case::new(doc, "Attachment", attachment(true), Some(attachment(false)))),
        ("Quote", Case::new(doc, "Quote", quote(true), Some(quote(false)))),
        ("ReactionCount", Case::new(doc, "ReactionCount", reaction_count(true), Some(reaction_count(false)))),
        (
            "HistoryPage",
            Case::new(
                doc,
                "HistoryPage",
                HistoryPage { messages: vec![message(true)], next_before: Some(message_id()) },
                Some(HistoryPage { messages: vec![], next_before: None }),
            ),
        ),
        (
            "SearchPage",
            Case::new(
                doc,
                "SearchPage",
                SearchPage {
                    hits: vec![SearchHit {
                        message: message(true),
                        snippet: vec![
                            SnippetFragment { text: "see you at ".into(), highlighted: false },
                            SnippetFragment { text: "lunch".into(), highlighted: true },
                        ],
                    }],
                    next_cursor: Some("n:42.1".into()),
                },
                Some(SearchPage { hits: vec![], next_cursor: None }),
            ),
        ),
        (
            "SearchHit",
            Case::new(
                doc,
                "SearchHit",
                SearchHit {
                    message: message(true),
                    snippet: vec![SnippetFragment { text: "lunch".into(), highlighted: true }],
                },
                Some(SearchHit { message: message(false), snippet: vec![] }),
            ),
        ),
        (
            "SnippetFragment",
            Case::new(
                doc,
                "SnippetFragment",
                SnippetFragment { text: "lunch".into(), highlighted: true },
                Some(SnippetFragment { text: "see you at ".into(), highlighted: false }),
            ),
        ),
        ("UploadGrant", Case::new(doc, "UploadGrant", grant.clone(), Some(grant))),
        (
            "DownloadUrl",
            Case::new(
                doc,
                "DownloadUrl",
                DownloadUrl { url: "https://bucket.invalid/x".into() },
                Some(DownloadUrl { url: "https://bucket.invalid/x".into() }),
            ),
        ),
        ("DeviceView", Case::new(doc, "DeviceView", device.clone(), Some(device.clone()))),
        (
            "DeviceList",
            Case::new(doc, "DeviceList", DeviceList { devices: vec![device] }, Some(DeviceList { devices: vec![] })),
        ),
        // HTTP error answers are ErrorBody::new(..): never `action` or `clientMsgId`, which
        // only `error` frames echo.
        (
            "Error",
            Case::new(
                doc,
                "Error",
                ErrorBody::new(ErrorCode::RateLimited, "too many requests; retry in 3120 ms", Some(3120)),
                Some(ErrorBody::new(ErrorCode::Forbidden, "you are not a member", None)),
            ),
        ),
    ];
    cases(report, doc, list)
}

#[test]
fn openapi_schemas_match_the_http_types() {
    let doc = openapi();
    let mut report = Report::default();
    let cases = openapi_cases(&mut report);
    for case in &cases {
        check_case(&mut report, doc, case);
    }
    check_value_schema::<UserId>(&mut report, doc, "UserId", None);
    check_value_schema::<ChannelId>(&mut report, doc, "ChannelId", None);
    check_value_schema::<MessageId>(&mut report, doc, "MessageId", None);
    check_value_schema::<Emoji>(&mut report, doc, "Emoji", None);
    check_value_schema::<MemberRole>(&mut report, doc, "MemberRole", Some(json!("noSuchRole")));
    check_value_schema::<ChannelKind>(&mut report, doc, "ChannelKind", Some(json!("noSuchKind")));
    check_value_schema::<Platform>(&mut report, doc, "Platform", Some(json!("noSuchPlatform")));

    // Every object schema is checked above (or is API Gateway's), so none can drift unseen.
    let checked: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).chain(NOT_OURS.iter().copied()).collect();
    for (name, schema) in doc.root.pointer("/components/schemas").and_then(Value::as_object).into_iter().flatten() {
        if doc.resolve(schema).get("type") == Some(&json!("object")) {
            report.check(checked.contains(name.as_str()), || {
                format!("openapi.yaml: schema {name} is compared with no type")
            });
        }
    }
    report.finish("openapi_schemas_match_the_http_types");
}

#[test]
fn openapi_bodies_use_checked_schemas_and_their_examples_parse() {
    let doc = openapi();
    let mut report = Report::default();
    let cases = openapi_cases(&mut Report::default());
    let case_of = |schema: &Value| -> Option<&Case> {
        let name = schema.get("$ref")?.as_str()?.strip_prefix("#/components/schemas/")?;
        cases.iter().find(|c| c.name == name)
    };
    let mut bodies: Vec<(String, &Value)> = Vec::new();
    for (path, item) in doc.root.get("paths").and_then(Value::as_object).into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            if let Some(body) = operation.get("requestBody") {
                bodies.push((format!("{method} {path} request"), doc.resolve(body)));
            }
        }
    }
    for (operation, status, response) in responses(doc) {
        bodies.push((format!("{operation} {status}"), response));
    }
    for (what, body) in bodies {
        for (media_type, media) in body.get("content").and_then(Value::as_object).into_iter().flatten() {
            let Some(schema) = media.get("schema") else { continue };
            // A `$ref` to a named schema, or `anyOf` them: no inline schema escapes the checks.
            let alternatives: Vec<&Value> = match schema.get("anyOf").and_then(Value::as_array) {
                Some(list) => list.iter().collect(),
                None => vec![schema],
            };
            report.check(alternatives.iter().all(|s| s.get("$ref").is_some()), || {
                format!("openapi.yaml {what} {media_type}: an inline schema (name it in components/schemas and list it in openapi_cases)")
            });
            for example in media_examples(media) {
                check_valid(&mut report, doc, schema, example, &format!("{what} example {example}"));
                let takers: Vec<&Case> = alternatives.iter().filter_map(|s| case_of(s)).collect();
                if takers.is_empty() {
                    continue;
                }
                let taken =
                    takers.iter().any(|case| (case.round_trip)(example.clone()).is_ok_and(|back| kept(example, &back)));
                report.check(taken, || format!("openapi.yaml {what}: no type takes the example {example} as it is"));
            }
        }
    }
    report.finish("openapi_bodies_use_checked_schemas_and_their_examples_parse");
}

#[test]
fn every_ref_resolves() {
    let mut report = Report::default();
    fn walk(doc: &Doc, node: &Value, report: &mut Report) {
        match node {
            Value::Object(object) => {
                if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                    report
                        .check(doc.pointer(reference).is_some(), || format!("{}: dangling $ref {reference}", doc.name));
                }
                object.values().for_each(|value| walk(doc, value, report));
            }
            Value::Array(items) => items.iter().for_each(|item| walk(doc, item, report)),
            _ => {}
        }
    }
    for doc in [asyncapi(), openapi()] {
        walk(doc, &doc.root, &mut report);
    }
    report.finish("every_ref_resolves");
}
