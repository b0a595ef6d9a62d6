//! The gateway's route table. It must be the one template.yaml declares: the test
//! `gateway_routes_are_the_templates` compares them.

/// A Lambda function of the project, named by its logical id in template.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    Authorizer,
    Connect,
    Disconnect,
    Send,
    History,
    Auth,
    Channels,
    PresenceSweep,
    Search,
    SearchIndexer,
}

impl Function {
    pub const ALL: [Function; 10] = [
        Function::Authorizer,
        Function::Connect,
        Function::Disconnect,
        Function::Send,
        Function::History,
        Function::Auth,
        Function::Channels,
        Function::PresenceSweep,
        Function::Search,
        Function::SearchIndexer,
    ];

    pub fn logical_id(self) -> &'static str {
        match self {
            Function::Authorizer => "AuthorizerFunction",
            Function::Connect => "ConnectFunction",
            Function::Disconnect => "DisconnectFunction",
            Function::Send => "SendFunction",
            Function::History => "HistoryFunction",
            Function::Auth => "AuthFunction",
            Function::Channels => "ChannelsFunction",
            Function::PresenceSweep => "PresenceSweepFunction",
            Function::Search => "SearchFunction",
            Function::SearchIndexer => "SearchIndexerFunction",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketRoute {
    pub route_key: &'static str,
    pub function: Function,
    /// Has a route response: the function's answer body goes back to the caller.
    pub two_way: bool,
}

/// Runs before `$connect`; its context reaches every route of the connection.
pub const WEBSOCKET_AUTHORIZER: Function = Function::Authorizer;
/// Where the WebSocket authorizer looks for the token (`route.request.querystring.token`).
pub const WEBSOCKET_TOKEN_QUERY_PARAMETER: &str = "token";

pub const WEBSOCKET_ROUTES: &[WebSocketRoute] = &[
    WebSocketRoute { route_key: "$connect", function: Function::Connect, two_way: false },
    WebSocketRoute { route_key: "$disconnect", function: Function::Disconnect, two_way: false },
    WebSocketRoute { route_key: "sendMessage", function: Function::Send, two_way: true },
    WebSocketRoute { route_key: "editMessage", function: Function::Send, two_way: true },
    WebSocketRoute { route_key: "deleteMessage", function: Function::Send, two_way: true },
    WebSocketRoute { route_key: "heartbeat", function: Function::Send, two_way: true },
    WebSocketRoute { route_key: "typing", function: Function::Send, two_way: true },
    WebSocketRoute { route_key: "markRead", function: Function::Send, two_way: true },
    WebSocketRoute { route_key: "getPresence", function: Function::Send, two_way: true },
    WebSocketRoute { route_key: "sync", function: Function::Send, two_way: true },
    WebSocketRoute { route_key: "$default", function: Function::Send, two_way: true },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRoute {
    pub method: &'static str,
    /// In API Gateway's syntax, which is also axum's: `/channels/{channelId}/messages`.
    pub path: &'static str,
    pub function: Function,
    /// Runs the HTTP API's Lambda authorizer first (`Authorization` header). Only the
    /// routes that hand out tokens go without.
    pub authorized: bool,
}

pub const HTTP_AUTHORIZER: Function = Function::Authorizer;

const fn http(method: &'static str, path: &'static str, function: Function, authorized: bool) -> HttpRoute {
    HttpRoute { method, path, function, authorized }
}

pub const HTTP_ROUTES: &[HttpRoute] = &[
    http("POST", "/auth/signup", Function::Auth, false),
    http("POST", "/auth/signin", Function::Auth, false),
    http("POST", "/auth/refresh", Function::Auth, false),
    http("POST", "/auth/signout", Function::Auth, true),
    http("GET", "/channels", Function::History, true),
    http("GET", "/channels/{channelId}/messages", Function::History, true),
    http("GET", "/search", Function::Search, true),
    http("POST", "/channels", Function::Channels, true),
    http("POST", "/channels/direct", Function::Channels, true),
    http("GET", "/channels/{channelId}", Function::Channels, true),
    http("POST", "/channels/{channelId}/members", Function::Channels, true),
    http("DELETE", "/channels/{channelId}/members/{userId}", Function::Channels, true),
    http("POST", "/channels/{channelId}/mute", Function::Channels, true),
    http("POST", "/channels/{channelId}/uploads", Function::Channels, true),
    http("GET", "/channels/{channelId}/attachments", Function::Channels, true),
    http("GET", "/invitations", Function::Channels, true),
    http("POST", "/invitations/{channelId}/accept", Function::Channels, true),
    http("POST", "/invitations/{channelId}/decline", Function::Channels, true),
    http("GET", "/blocks", Function::Channels, true),
    http("POST", "/blocks", Function::Channels, true),
    http("DELETE", "/blocks/{userId}", Function::Channels, true),
    http("POST", "/devices", Function::Auth, true),
    http("GET", "/devices", Function::Auth, true),
    http("DELETE", "/devices/{deviceId}", Function::Auth, true),
];

pub fn websocket_route(route_key: &str) -> Option<&'static WebSocketRoute> {
    WEBSOCKET_ROUTES.iter().find(|r| r.route_key == route_key)
}

/// A function run on a schedule (an EventBridge rule in AWS; a timer in the gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub function: Function,
    /// As in the template: `rate(1 minute)`.
    pub expression: &'static str,
    /// The rule's `Input`: the event the function gets instead of EventBridge's own.
    pub input: Option<&'static str>,
}

/// The presence sweep's rules, one per run: in AWS those past `PresenceSweepRuns` are
/// disabled (their `State`); here every one runs, and a run past `PRESENCE_SWEEP_RUNS`
/// returns at once, which is what a disabled rule amounts to.
pub const SCHEDULES: &[Schedule] = &[
    Schedule { function: Function::PresenceSweep, expression: "rate(1 minute)", input: Some(r#"{"run": 0}"#) },
    Schedule { function: Function::PresenceSweep, expression: "rate(1 minute)", input: Some(r#"{"run": 1}"#) },
    Schedule { function: Function::PresenceSweep, expression: "rate(1 minute)", input: Some(r#"{"run": 2}"#) },
    Schedule { function: Function::PresenceSweep, expression: "rate(1 minute)", input: Some(r#"{"run": 3}"#) },
    Schedule { function: Function::PresenceSweep, expression: "rate(1 minute)", input: Some(r#"{"run": 4}"#) },
    Schedule { function: Function::PresenceSweep, expression: "rate(1 minute)", input: Some(r#"{"run": 5}"#) },
    Schedule { function: Function::PresenceSweep, expression: "rate(1 minute)", input: Some(r#"{"run": 6}"#) },
    Schedule { function: Function::PresenceSweep, expression: "rate(1 minute)", input: Some(r#"{"run": 7}"#) },
];

/// A function fed by a table's DynamoDB stream (an event source mapping in AWS; a poller
/// in the gateway, `crate::streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamMapping {
    pub function: Function,
    /// Logical id of the table.
    pub table: &'static str,
}

pub const STREAM_MAPPINGS: &[StreamMapping] =
    &[StreamMapping { function: Function::SearchIndexer, table: "MessagesTable" }];
