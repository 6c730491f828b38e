//! The console's pages, built into the binary: hand-written ES modules and
//! CSS from `console/web/` (no build step), and the map data that `make
//! console` prepares (see `build.rs`). Nothing comes from elsewhere at run
//! time, and the Content-Security-Policy says so to the browser.

use super::guard::Refusal;
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

include!(concat!(env!("OUT_DIR"), "/world.rs"));

macro_rules! web {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../console/web/", $name)))),*]
    };
}

/// Every file of `console/web/`, by name.
const FILES: &[(&str, &[u8])] = web!(
    "index.html",
    "style.css",
    "app.js",
    "util.js",
    "map.js",
    "chart.js",
    "stats.js",
    "nodes.js",
    "jobs.js",
    "job.js",
    "submit.js",
);

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
    script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'none'";

/// `/`, `/<file>` and `/world.json`.
pub(super) fn router() -> Router {
    Router::new()
        .route("/", get(|| async { file("index.html") }))
        .route("/world.json", get(world))
        .route(
            "/{name}",
            get(|Path(name): Path<String>| async move { file(&name) }),
        )
}

fn kind(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, x)| x) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => "application/json",
    }
}

fn serve(name: &str, bytes: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind(name)),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response()
}

fn file(name: &str) -> Response {
    match FILES.iter().find(|(n, _)| *n == name) {
        Some((n, bytes)) => serve(n, bytes),
        None => Refusal::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no page {name:?}"),
        )
        .into_response(),
    }
}

async fn world() -> Response {
    match WORLD {
        Some(bytes) => serve("world.json", bytes),
        None => Refusal::new(
            StatusCode::NOT_FOUND,
            "no-map-data",
            "this vantage was built without the console's map data; run `make console`, then rebuild",
        )
        .into_response(),
    }
}
