//! Reads template.yaml, so that the local stack is built from the same declarations AWS
//! gets: the DynamoDB tables (keys, indexes, TTL) and the API routes.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use serde_yaml::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template.yaml: {0}")]
    Shape(String),
    #[error("DynamoDB: {0}")]
    Aws(String),
}

pub struct Template {
    resources: BTreeMap<String, Value>,
    parameters: BTreeMap<String, Value>,
    globals: Value,
}

/// What the template's references resolve to on this machine: resources are named
/// `{prefix}{LogicalId}` (buckets in lower case), the WebSocket API has a fixed id.
#[derive(Debug, Clone)]
pub struct LocalNames {
    pub prefix: String,
    pub stage: String,
    pub websocket_api_id: String,
}

/// The id the local gateway's WebSocket API answers to (in `execute-api` ARNs).
pub const LOCAL_WEBSOCKET_API_ID: &str = "local";

/// A WebSocket route as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeclaredWebSocketRoute {
    pub route_key: String,
    pub function: String,
    pub two_way: bool,
    pub authorizer_function: Option<String>,
    pub identity_source: Vec<String>,
}

/// A DynamoDB stream event source mapping, as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSource {
    pub function: String,
    /// The table whose stream feeds it (logical id).
    pub table: String,
    pub batch_size: usize,
    /// `TRIM_HORIZON` or `LATEST`.
    pub starting_position: String,
    pub batching_window_s: u64,
    /// -1: until the record expires.
    pub maximum_retry_attempts: i64,
    pub bisect_on_error: bool,
    /// Logical id of the on-failure destination (an SQS queue).
    pub on_failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeclaredHttpRoute {
    pub method: String,
    pub path: String,
    pub function: String,
    /// False where the event says `Auth: {Authorizer: NONE}`.
    pub authorized: bool,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TemplateError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let root: Value = serde_yaml::from_str(text)?;
        let section = |name: &str| -> BTreeMap<String, Value> {
            root.get(name)
                .and_then(Value::as_mapping)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
                .collect()
        };
        let resources = section("Resources");
        if resources.is_empty() {
            return Err(TemplateError::Shape("no Resources".into()));
        }
        let globals = root.get("Globals").and_then(|g| g.get("Function")).cloned().unwrap_or(Value::Null);
        Ok(Self { resources, parameters: section("Parameters"), globals })
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources.iter().filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
    }

    fn property<'a>(&'a self, resource: &str, name: &str) -> Option<&'a Value> {
        self.resources.get(resource)?.get("Properties")?.get(name)
    }

    pub fn websocket_routes(&self) -> Result<Vec<DeclaredWebSocketRoute>, TemplateError> {
        let mut routes = Vec::new();
        for (logical_id, route) in self.of_type("AWS::ApiGatewayV2::Route") {
            let props = route.get("Properties").ok_or_else(|| shape(logical_id, "no Properties"))?;
            let route_key =
                props.get("RouteKey").and_then(Value::as_str).ok_or_else(|| shape(logical_id, "no RouteKey"))?;
            let target = props.get("Target").and_then(intrinsic_text).ok_or_else(|| shape(logical_id, "no Target"))?;
            let integration = references(target)
                .into_iter()
                .next()
                .ok_or_else(|| shape(logical_id, "Target names no integration"))?;
            let function = self
                .property(&integration, "IntegrationUri")
                .and_then(intrinsic_text)
                .and_then(function_of_uri)
                .ok_or_else(|| shape(&integration, "IntegrationUri names no function"))?;
            let two_way = self.of_type("AWS::ApiGatewayV2::RouteResponse").any(|(_, rr)| {
                rr.get("Properties").and_then(|p| p.get("RouteId")).and_then(reference) == Some(logical_id.as_str())
            });
            let authorizer = props.get("AuthorizerId").and_then(reference).map(str::to_owned);
            let authorizer_function = match &authorizer {
                Some(a) => Some(
                    self.property(a, "AuthorizerUri")
                        .and_then(intrinsic_text)
                        .and_then(function_of_uri)
                        .ok_or_else(|| shape(a, "AuthorizerUri names no function"))?,
                ),
                None => None,
            };
            let identity_source = authorizer
                .as_deref()
                .and_then(|a| self.property(a, "IdentitySource"))
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            routes.push(DeclaredWebSocketRoute {
                route_key: route_key.to_owned(),
                function,
                two_way,
                authorizer_function,
                identity_source,
            });
        }
        routes.sort();
        Ok(routes)
    }

    pub fn http_routes(&self) -> Vec<DeclaredHttpRoute> {
        let mut routes = Vec::new();
        for (function, resource) in self.of_type("AWS::Serverless::Function") {
            let events = resource.get("Properties").and_then(|p| p.get("Events")).and_then(Value::as_mapping);
            for event in events.into_iter().flat_map(|m| m.values()) {
                if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                    continue;
                }
                let props = event.get("Properties");
                let method = props.and_then(|p| p.get("Method")).and_then(Value::as_str).unwrap_or("ANY");
                let path = props.and_then(|p| p.get("Path")).and_then(Value::as_str).unwrap_or("/");
                let authorizer =
                    props.and_then(|p| p.get("Auth")).and_then(|a| a.get("Authorizer")).and_then(Value::as_str);
                routes.push(DeclaredHttpRoute {
                    method: method.to_uppercase(),
                    path: path.to_owned(),
                    function: function.clone(),
                    authorized: authorizer != Some("NONE"),
                });
            }
        }
        routes.sort();
        routes
    }

    /// Functions run on a schedule: (function, schedule expression, the rule's `Input`).
    pub fn schedules(&self) -> Vec<(String, String, Option<String>)> {
        let mut schedules = Vec::new();
        for (function, resource) in self.of_type("AWS::Serverless::Function") {
            let events = resource.get("Properties").and_then(|p| p.get("Events")).and_then(Value::as_mapping);
            for event in events.into_iter().flat_map(|m| m.values()) {
                if event.get("Type").and_then(Value::as_str) != Some("Schedule") {
                    continue;
                }
                let properties = event.get("Properties");
                if let Some(expression) = properties.and_then(|p| p.get("Schedule")).and_then(Value::as_str) {
                    let input = properties.and_then(|p| p.get("Input")).and_then(Value::as_str).map(str::to_owned);
                    schedules.push((function.clone(), expression.to_owned(), input));
                }
            }
        }
        schedules.sort();
        schedules
    }

    /// The HTTP API's default authorizer function and its identity headers.
    pub fn http_authorizer(&self) -> Option<(String, Vec<String>)> {
        let (_, api) = self.of_type("AWS::Serverless::HttpApi").next()?;
        let auth = api.get("Properties")?.get("Auth")?;
        let name = auth.get("DefaultAuthorizer")?.as_str()?;
        let authorizer = auth.get("Authorizers")?.get(name)?;
        let function = authorizer.get("FunctionArn").and_then(get_att_resource)?;
        let headers = authorizer
            .get("Identity")
            .and_then(|i| i.get("Headers"))
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        Some((function, headers))
    }

    /// The template's DynamoDB stream event source mappings (`AWS::Lambda::EventSourceMapping`
    /// over a table's `StreamArn`), with their settings.
    pub fn stream_sources(&self) -> Vec<StreamSource> {
        let mut sources = Vec::new();
        for (_, resource) in self.of_type("AWS::Lambda::EventSourceMapping") {
            let Some(props) = resource.get("Properties") else { continue };
            let Some(function) = props.get("FunctionName").and_then(reference).map(str::to_owned) else { continue };
            let Some(table) = props.get("EventSourceArn").and_then(get_att_resource) else { continue };
            let number = |name: &str, default: u64| props.get(name).and_then(Value::as_u64).unwrap_or(default);
            let on_failure = props
                .get("DestinationConfig")
                .and_then(|d| d.get("OnFailure"))
                .and_then(|o| o.get("Destination"))
                .and_then(|d| reference(d).map(str::to_owned).or_else(|| get_att_resource(d)));
            sources.push(StreamSource {
                function,
                table,
                batch_size: number("BatchSize", 100) as usize,
                starting_position: props
                    .get("StartingPosition")
                    .and_then(Value::as_str)
                    .unwrap_or("TRIM_HORIZON")
                    .to_owned(),
                batching_window_s: number("MaximumBatchingWindowInSeconds", 0),
                maximum_retry_attempts: props.get("MaximumRetryAttempts").and_then(Value::as_i64).unwrap_or(-1),
                bisect_on_error: props.get("BisectBatchOnFunctionError").and_then(Value::as_bool).unwrap_or(false),
                on_failure,
            });
        }
        sources.sort_by(|a, b| a.function.cmp(&b.function));
        sources
    }

    /// Creates every `AWS::S3::Bucket` of the template, named `{prefix}{LogicalId}` in lower
    /// case (bucket names allow no capitals). Existing buckets are kept.
    pub async fn create_buckets(
        &self,
        client: &aws_sdk_s3::Client,
        prefix: &str,
    ) -> Result<Vec<String>, TemplateError> {
        let mut created = Vec::new();
        for (logical_id, _) in self.of_type("AWS::S3::Bucket") {
            let name = format!("{prefix}{logical_id}").to_lowercase();
            match client.create_bucket().bucket(&name).send().await {
                Ok(_) => created.push(name),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()) => {}
                Err(err) => {
                    return Err(TemplateError::Aws(
                        aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
                    ));
                }
            }
        }
        Ok(created)
    }

    /// Creates every `AWS::SNS::Topic` of the template (`{prefix}{LogicalId}`); answers
    /// logical id -> topic ARN. Creating a topic that exists answers its ARN.
    pub async fn create_topics(
        &self,
        client: &aws_sdk_sns::Client,
        prefix: &str,
    ) -> Result<BTreeMap<String, String>, TemplateError> {
        let mut topics = BTreeMap::new();
        for (logical_id, _) in self.of_type("AWS::SNS::Topic") {
            let out = client.create_topic().name(format!("{prefix}{logical_id}")).send().await.map_err(|e| {
                TemplateError::Aws(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
            })?;
            if let Some(arn) = out.topic_arn() {
                topics.insert(logical_id.clone(), arn.to_owned());
            }
        }
        Ok(topics)
    }

    /// Creates every `AWS::DynamoDB::Table` of the template, named `{prefix}{LogicalId}`,
    /// with its keys, indexes and TTL. Tables that exist already are left as they are.
    pub async fn create_tables(
        &self,
        client: &aws_sdk_dynamodb::Client,
        prefix: &str,
    ) -> Result<Vec<String>, TemplateError> {
        let mut created = Vec::new();
        for (logical_id, table) in self.of_type("AWS::DynamoDB::Table") {
            let props = table.get("Properties").ok_or_else(|| shape(logical_id, "no Properties"))?;
            let name = format!("{prefix}{logical_id}");
            let mut request = client
                .create_table()
                .table_name(&name)
                .billing_mode(BillingMode::PayPerRequest)
                .set_attribute_definitions(Some(attribute_definitions(logical_id, props)?))
                .set_key_schema(Some(key_schema(logical_id, props.get("KeySchema"))?));
            for index in props.get("GlobalSecondaryIndexes").and_then(Value::as_sequence).into_iter().flatten() {
                let index_name = index
                    .get("IndexName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| shape(logical_id, "index without IndexName"))?;
                let projection = index
                    .get("Projection")
                    .and_then(|p| p.get("ProjectionType"))
                    .and_then(Value::as_str)
                    .unwrap_or("ALL");
                request = request.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(index_name)
                        .set_key_schema(Some(key_schema(logical_id, index.get("KeySchema"))?))
                        .projection(Projection::builder().projection_type(ProjectionType::from(projection)).build())
                        .build()
                        .map_err(|e| shape(logical_id, &e.to_string()))?,
                );
            }
            let stream = props.get("StreamSpecification").and_then(|s| s.get("StreamViewType")).and_then(Value::as_str);
            if let Some(view) = stream {
                request = request.stream_specification(
                    StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(StreamViewType::from(view))
                        .build()
                        .map_err(|e| shape(logical_id, &e.to_string()))?,
                );
            }
            match request.send().await {
                Ok(_) => created.push(name.clone()),
                Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {
                    continue;
                }
                Err(err) => {
                    return Err(TemplateError::Aws(
                        aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
                    ));
                }
            }
            let ttl = props.get("TimeToLiveSpecification");
            if let Some(attribute) = ttl.and_then(|t| t.get("AttributeName")).and_then(Value::as_str) {
                client
                    .update_time_to_live()
                    .table_name(&name)
                    .time_to_live_specification(
                        TimeToLiveSpecification::builder()
                            .attribute_name(attribute)
                            .enabled(true)
                            .build()
                            .map_err(|e| shape(logical_id, &e.to_string()))?,
                    )
                    .send()
                    .await
                    .map_err(|e| {
                        TemplateError::Aws(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
                    })?;
            }
        }
        Ok(created)
    }
}

fn shape(resource: &str, problem: &str) -> TemplateError {
    TemplateError::Shape(format!("{resource}: {problem}"))
}

fn attribute_definitions(logical_id: &str, props: &Value) -> Result<Vec<AttributeDefinition>, TemplateError> {
    let mut definitions = Vec::new();
    for definition in props.get("AttributeDefinitions").and_then(Value::as_sequence).into_iter().flatten() {
        let name = definition.get("AttributeName").and_then(Value::as_str);
        let kind = definition.get("AttributeType").and_then(Value::as_str);
        let (Some(name), Some(kind)) = (name, kind) else {
            return Err(shape(logical_id, "incomplete AttributeDefinition"));
        };
        definitions.push(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind))
                .build()
                .map_err(|e| shape(logical_id, &e.to_string()))?,
        );
    }
    Ok(definitions)
}

fn key_schema(logical_id: &str, schema: Option<&Value>) -> Result<Vec<KeySchemaElement>, TemplateError> {
    let mut keys = Vec::new();
    for key in schema.and_then(Value::as_sequence).into_iter().flatten() {
        let name = key.get("AttributeName").and_then(Value::as_str);
        let kind = key.get("KeyType").and_then(Value::as_str);
        let (Some(name), Some(kind)) = (name, kind) else {
            return Err(shape(logical_id, "incomplete KeySchema"));
        };
        keys.push(
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind))
                .build()
                .map_err(|e| shape(logical_id, &e.to_string()))?,
        );
    }
    if keys.is_empty() {
        return Err(shape(logical_id, "no KeySchema"));
    }
    Ok(keys)
}

/// The text of a plain string or of a `!Sub` / `Fn::Sub`.
fn intrinsic_text(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str(),
        Value::Mapping(m) => m.get("Fn::Sub").and_then(Value::as_str),
        _ => None,
    }
}

/// The resource named by `!Ref X` / `{Ref: X}`.
fn reference(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        Value::Mapping(m) => m.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

/// The resource of `!GetAtt X.Arn`.
fn get_att_resource(value: &Value) -> Option<String> {
    let text = match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => tagged.value.as_str()?.to_owned(),
        Value::Mapping(m) => {
            let parts = m.get("Fn::GetAtt")?.as_sequence()?;
            parts.first()?.as_str()?.to_owned()
        }
        _ => return None,
    };
    Some(text.split('.').next()?.to_owned())
}

/// `!GetAtt X.Attr` as `X.Attr` (`X.Arn` when no attribute is named).
fn get_att(value: &Value) -> Option<String> {
    let text = match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => tagged.value.as_str()?.to_owned(),
        Value::Mapping(m) => {
            let parts = m.get("Fn::GetAtt")?.as_sequence()?;
            parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(".")
        }
        _ => return None,
    };
    Some(if text.contains('.') { text } else { format!("{text}.Arn") })
}

/// `${Name}` and `${Name.Attr}` references inside a `!Sub` string, pseudo-parameters excluded.
fn references(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split('}').next())
        .filter(|r| !r.starts_with("AWS::"))
        .map(|r| r.split('.').next().unwrap_or(r).to_owned())
        .collect()
}

/// The function in `…/functions/${XFunction.Arn}/invocations`.
fn function_of_uri(uri: &str) -> Option<String> {
    uri.split("${")
        .skip(1)
        .filter_map(|rest| rest.split('}').next())
        .find_map(|r| r.strip_suffix(".Arn").map(str::to_owned))
}

/// Functions: their policies, timeouts and environment, as Lambda would get them.
impl Template {
    /// Logical ids of the template's functions.
    pub fn functions(&self) -> Vec<String> {
        self.of_type("AWS::Serverless::Function").map(|(id, _)| id.clone()).collect()
    }

    /// A function's `Timeout` (else the `Globals` one, else Lambda's default of 3 s).
    pub fn function_timeout_s(&self, function: &str) -> u64 {
        self.property(function, "Timeout").or_else(|| self.globals.get("Timeout")).and_then(Value::as_u64).unwrap_or(3)
    }

    /// The environment variables a function gets: `Globals` merged with its own.
    pub fn function_environment(&self, function: &str) -> BTreeMap<String, Value> {
        let variables = |v: &Value| -> BTreeMap<String, Value> {
            v.get("Environment")
                .and_then(|e| e.get("Variables"))
                .and_then(Value::as_mapping)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
                .collect()
        };
        let mut all = variables(&self.globals);
        if let Some(props) = self.resources.get(function).and_then(|r| r.get("Properties")) {
            all.extend(variables(props));
        }
        all
    }

    /// Every function's identity policy, with references resolved to local names. Only
    /// inline `Statement` policies with `Effect`, `Action` and `Resource` are understood;
    /// anything else is an error, so that no permission passes unchecked.
    pub fn function_policies(&self, names: &LocalNames) -> Result<BTreeMap<String, crate::iam::Policy>, TemplateError> {
        use crate::iam::{Effect, Grant, Policy, ResourcePattern, Statement};
        let mut policies = BTreeMap::new();
        for (function, resource) in self.of_type("AWS::Serverless::Function") {
            let mut statements = Vec::new();
            let declared = resource.get("Properties").and_then(|p| p.get("Policies"));
            for policy in declared.and_then(Value::as_sequence).into_iter().flatten() {
                let Some(list) = policy.get("Statement").and_then(Value::as_sequence) else {
                    return Err(shape(function, "only inline `- Statement:` policies are understood by the local IAM"));
                };
                for statement in list {
                    if let Some(mapping) = statement.as_mapping() {
                        for key in mapping.keys().filter_map(Value::as_str) {
                            if !matches!(key, "Effect" | "Action" | "Resource" | "Sid") {
                                return Err(shape(function, &format!("policy key {key} is not understood locally")));
                            }
                        }
                    }
                    let effect = match statement.get("Effect").and_then(Value::as_str) {
                        Some("Allow") => Effect::Allow,
                        Some("Deny") => Effect::Deny,
                        _ => return Err(shape(function, "a statement without Effect Allow or Deny")),
                    };
                    let actions = one_or_many(statement.get("Action"))
                        .iter()
                        .map(|a| {
                            a.as_str().map(str::to_owned).ok_or_else(|| shape(function, "an Action that is not text"))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let resources = one_or_many(statement.get("Resource"))
                        .iter()
                        .map(|r| Ok(ResourcePattern { arn: self.resolve(r, names)?, declared: declared_text(r) }))
                        .collect::<Result<Vec<_>, TemplateError>>()?;
                    if actions.is_empty() || resources.is_empty() {
                        return Err(shape(function, "a statement without Action or Resource"));
                    }
                    statements.push(Statement { effect, actions, resources });
                }
            }
            let mut justified = BTreeMap::new();
            let reasons = resource.get("Metadata").and_then(|m| m.get("UnexercisedPermissions"));
            for entry in reasons.and_then(Value::as_sequence).into_iter().flatten() {
                let text = |key: &str| entry.get(key).map(declared_text).filter(|t| !t.is_empty());
                let (Some(action), Some(resource), Some(why)) = (text("Action"), text("Resource"), text("Why")) else {
                    return Err(shape(function, "UnexercisedPermissions entries need Action, Resource and Why"));
                };
                justified.insert(Grant { function: function.clone(), action, resource }, why);
            }
            policies.insert(function.clone(), Policy { function: function.clone(), statements, justified });
        }
        Ok(policies)
    }

    /// A value with `!Ref`, `!GetAtt X.Arn` or `!Sub`, as a string of local names.
    fn resolve(&self, value: &Value, names: &LocalNames) -> Result<String, TemplateError> {
        if let Some(name) = reference(value) {
            return self.resolve_name(name, names);
        }
        if let Some(attribute) = get_att(value) {
            return self.resolve_name(&attribute, names);
        }
        let text = intrinsic_text(value).ok_or_else(|| TemplateError::Shape(format!("cannot resolve {value:?}")))?;
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or_else(|| TemplateError::Shape(format!("unclosed ${{ in {text}")))?;
            out.push_str(&self.resolve_name(&rest[start + 2..start + end], names)?);
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `AWS::Region`, a parameter, `Resource` (its `Ref`) or `Resource.Arn`.
    fn resolve_name(&self, name: &str, names: &LocalNames) -> Result<String, TemplateError> {
        use crate::iam::{LOCAL_ACCOUNT, LOCAL_REGION};
        let unknown = || TemplateError::Shape(format!("the local stack cannot resolve ${{{name}}}"));
        match name {
            "AWS::Partition" => return Ok("aws".into()),
            "AWS::Region" => return Ok(LOCAL_REGION.into()),
            "AWS::AccountId" => return Ok(LOCAL_ACCOUNT.into()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
            "StageName" => return Ok(names.stage.clone()),
            _ => {}
        }
        if let Some(parameter) = self.parameters.get(name) {
            return parameter.get("Default").and_then(scalar_text).ok_or_else(unknown);
        }
        let (logical, attribute) = match name.split_once('.') {
            Some((logical, attribute)) => (logical, Some(attribute)),
            None => (name, None),
        };
        let kind =
            self.resources.get(logical).and_then(|r| r.get("Type")).and_then(Value::as_str).ok_or_else(unknown)?;
        let local = format!("{}{logical}", names.prefix);
        let resolved = match (kind, attribute) {
            ("AWS::DynamoDB::Table", None) => local,
            ("AWS::DynamoDB::Table", Some("Arn")) => {
                format!("arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT}:table/{local}")
            }
            // The label is the stream's creation time, known only once the table exists.
            ("AWS::DynamoDB::Table", Some("StreamArn")) => {
                format!("arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT}:table/{local}/stream/*")
            }
            ("AWS::S3::Bucket", None) => local.to_lowercase(),
            ("AWS::S3::Bucket", Some("Arn")) => format!("arn:aws:s3:::{}", local.to_lowercase()),
            ("AWS::SNS::Topic", None) => format!("arn:aws:sns:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{local}"),
            ("AWS::ApiGatewayV2::Api", None) => names.websocket_api_id.clone(),
            _ => return Err(unknown()),
        };
        Ok(resolved)
    }
}

fn one_or_many(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Sequence(items)) => items.clone(),
        Some(other) => vec![other.clone()],
        None => vec![],
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// How a report names a resource: the template's own text (`${ChannelsTable.Arn}/index/X`,
/// `MessagesTable.Arn`, `Ref PushTopic`).
fn declared_text(value: &Value) -> String {
    if let Some(name) = reference(value) {
        return format!("Ref {name}");
    }
    match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => tagged.value.as_str().unwrap_or_default().to_owned(),
        _ => intrinsic_text(value).map(str::to_owned).or_else(|| scalar_text(value)).unwrap_or_default(),
    }
}
