//! Serves a web client's static files at `/app/` beside the APIs, so that in development
//! the browser calls the HTTP API and the WebSocket API on its own origin (no CORS). In
//! AWS the same files go to any static host. `/` redirects to `/app/`.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Where the files are mounted. One path segment cannot be a WebSocket stage and a
/// directory at once, so a gateway whose stage is `app` serves no web client.
pub const MOUNT: &str = "/app/";

/// The routes serving `dir`; merge them into the gateway's router.
pub fn router(dir: PathBuf) -> Router {
    let dir = Arc::new(dir);
    Router::new()
        .route("/", get(|| async { Redirect::temporary(MOUNT) }))
        .route("/app/", get(index))
        .route("/app/{*path}", get(file))
        .with_state(dir)
}

async fn index(State(dir): State<Arc<PathBuf>>) -> Response {
    send(&dir, "index.html").await
}

async fn file(State(dir): State<Arc<PathBuf>>, UrlPath(path): UrlPath<String>) -> Response {
    send(&dir, &path).await
}

/// `path` is relative to `dir`; anything that could leave it (`..`, absolute paths, hidden
/// files) is not found, and so is a symlink pointing out of it.
async fn send(dir: &Path, path: &str) -> Response {
    let relative = Path::new(path);
    let plain =
        relative.components().all(|c| matches!(c, Component::Normal(name) if !name.to_string_lossy().starts_with('.')));
    if path.is_empty() || !plain {
        return not_found();
    }
    let (Ok(root), Ok(mut target)) =
        (tokio::fs::canonicalize(dir).await, tokio::fs::canonicalize(dir.join(relative)).await)
    else {
        return not_found();
    };
    if !target.starts_with(&root) {
        return not_found();
    }
    if target.is_dir() {
        target.push("index.html");
    }
    match tokio::fs::read(&target).await {
        Ok(bytes) => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&target)));
            // Development: always revalidate, so an edited file shows on the next reload.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            response
        }
        Err(_) => not_found(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A raw request, so that paths reach the server exactly as written (no client
    /// normalises `..` away): (status, content type, body).
    async fn get_raw(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        let response = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        })
        .await
        .unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    l.split_once(": ").filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_owned())
                })
                .unwrap_or_default()
        };
        let kind = if status == 307 { header("location") } else { header("content-type") };
        (status, kind, body.to_owned())
    }

    #[tokio::test]
    async fn serves_files_under_the_mount_and_nothing_outside_it() {
        let base = std::env::temp_dir().join(format!("web-client-{:x}", rand::random::<u64>()));
        let dir = base.join("public");
        std::fs::create_dir_all(dir.join("js")).unwrap();
        std::fs::write(dir.join("index.html"), "<h1>chat</h1>").unwrap();
        std::fs::write(dir.join("js/app.js"), "export {}").unwrap();
        std::fs::write(dir.join(".secret"), "hidden").unwrap();
        std::fs::write(base.join("outside.txt"), "outside").unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(dir)).await });

        let html = ("text/html; charset=utf-8".to_owned(), "<h1>chat</h1>".to_owned());
        assert_eq!(get_raw(addr, "/app/").await, (200, html.0.clone(), html.1.clone()));
        assert_eq!(get_raw(addr, "/app/index.html").await, (200, html.0, html.1));
        assert_eq!(
            get_raw(addr, "/app/js/app.js").await,
            (200, "text/javascript; charset=utf-8".into(), "export {}".into())
        );
        assert_eq!(get_raw(addr, "/").await.0, 307);
        assert_eq!(get_raw(addr, "/").await.1, "/app/");
        for path in [
            "/app/../outside.txt",
            "/app/%2e%2e/outside.txt",
            "/app/js/..%2f..%2foutside.txt",
            "/app/.secret",
            "/app/nope.js",
        ] {
            let (status, _, body) = get_raw(addr, path).await;
            assert_eq!(status, 404, "{path} answered {body}");
        }
        std::fs::remove_dir_all(base).unwrap();
    }
}
