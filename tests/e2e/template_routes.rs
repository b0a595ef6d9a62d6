//! The local gateway serves exactly the routes template.yaml declares.

use e2e::repo_root;
use local_gateway::routes::{self, HTTP_ROUTES, WEBSOCKET_ROUTES};
use local_gateway::template::{DeclaredHttpRoute, DeclaredWebSocketRoute, Template};

#[test]
fn gateway_routes_are_the_templates() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();

    let mut ours: Vec<DeclaredWebSocketRoute> = WEBSOCKET_ROUTES
        .iter()
        .map(|r| DeclaredWebSocketRoute {
            route_key: r.route_key.into(),
            function: r.function.logical_id().into(),
            two_way: r.two_way,
            authorizer_function: (r.route_key == "$connect").then(|| routes::WEBSOCKET_AUTHORIZER.logical_id().into()),
            identity_source: if r.route_key == "$connect" {
                vec![format!("route.request.querystring.{}", routes::WEBSOCKET_TOKEN_QUERY_PARAMETER)]
            } else {
                vec![]
            },
        })
        .collect();
    ours.sort();
    assert_eq!(ours, template.websocket_routes().unwrap());

    let mut ours_http: Vec<DeclaredHttpRoute> = HTTP_ROUTES
        .iter()
        .map(|r| DeclaredHttpRoute {
            method: r.method.into(),
            path: r.path.into(),
            function: r.function.logical_id().into(),
            authorized: r.authorized,
        })
        .collect();
    ours_http.sort();
    assert_eq!(ours_http, template.http_routes());
    let mut ours_schedules: Vec<(String, String, Option<String>)> = routes::SCHEDULES
        .iter()
        .map(|s| (s.function.logical_id().to_owned(), s.expression.to_owned(), s.input.map(str::to_owned)))
        .collect();
    ours_schedules.sort();
    assert_eq!(ours_schedules, template.schedules());
    assert_eq!(
        template.http_authorizer(),
        Some((routes::HTTP_AUTHORIZER.logical_id().to_owned(), vec!["Authorization".to_owned()]))
    );
}
