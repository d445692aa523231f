//! The Leptos site: server-rendered pages that hydrate in the browser, and
//! the static files `cargo leptos build` put in the site root.

use std::net::SocketAddr;
use std::path::Path;

use app::{App, shell};
use axum::Router;
use axum::http::StatusCode;
use axum::response::Html;
use leptos::prelude::LeptosOptions;
use leptos_axum::{LeptosRoutes, file_and_error_handler, generate_route_list};

/// The name cargo-leptos gives the site's JS, WASM and CSS files.
pub const OUTPUT_NAME: &str = "taskwire";

/// The site's options, or `None` when the site has not been built.
pub fn options(site_root: &Path, addr: SocketAddr) -> Option<LeptosOptions> {
    let pkg = site_root.join("pkg");
    if !pkg.join(format!("{OUTPUT_NAME}.js")).is_file() {
        return None;
    }
    Some(
        LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root(site_root.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build(),
    )
}

/// Routes of the site's pages and files.
pub fn router(options: LeptosOptions) -> Router {
    let routes = generate_route_list(App);
    Router::new()
        .leptos_routes(&options, routes, {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(file_and_error_handler(shell))
        .with_state(options)
}

/// What `/` shows when the site was not built: the API still works.
pub async fn not_built() -> (StatusCode, Html<&'static str>) {
    (
        StatusCode::NOT_FOUND,
        Html(
            "<!DOCTYPE html><title>Taskwire</title><h1>Taskwire</h1>\
             <p>The API and Socket.IO are up. The web UI has not been built: \
             run <code>cargo leptos build --release</code>.</p>",
        ),
    )
}
