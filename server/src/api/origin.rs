//! Who may use the server from a web page. Browsers let any page open a
//! websocket or send a form or a simple `POST` to any address, the
//! server's loopback one included: only the server can tell such a request
//! apart, by the `Origin` header the browser adds to it.
//!
//! - `Origin` is checked on every Socket.IO request (the Engine.IO
//!   handshake, polling and websocket upgrades alike, before any namespace)
//!   and on every state-changing HTTP request (`POST`, `PUT`, `PATCH`,
//!   `DELETE`). Allowed: the server's own origin (the request's `Host`, over
//!   `http` or `https`) and the `--allowed-origin`s. A request without
//!   `Origin` is not from a browser page (CLI, curl, Node clients) and is
//!   let through: browsers always send it on cross-origin requests and
//!   websocket upgrades.
//! - A server listening on a loopback address answers only to loopback
//!   `Host` names (and those of the allowed origins): a site whose name an
//!   attacker re-points at 127.0.0.1 (DNS rebinding) would otherwise be
//!   "same-origin" with this server.
//! - Pages of an allowed origin get CORS headers, so their Socket.IO client
//!   can also poll.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use app::{ErrorBody, ErrorCode};
use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// `http` or `https`: the only schemes a page talking to us can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A web origin, `scheme://host[:port]`, as a browser sends it in `Origin`.
/// The host is kept lowercase (IPv6 in brackets), the port explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebOrigin {
    scheme: Scheme,
    host: String,
    port: u16,
}

impl FromStr for WebOrigin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not an origin (scheme://host[:port])"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("{s:?}: scheme {other:?} is not http or https")),
        };
        // A trailing slash is a common way to write one; anything more is a URL.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "{s:?} is a URL, not an origin: write only scheme://host[:port]"
            ));
        }
        let authority: Authority = rest
            .parse()
            .map_err(|e| format!("{s:?} has no valid host: {e}"))?;
        if authority.host().is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        // `Authority` parses an out-of-range port as no port at all.
        let written_port = authority.as_str().len() > authority.host().len();
        let port = match authority.port_u16() {
            Some(port) => port,
            None if written_port => return Err(format!("{s:?} has no valid port")),
            None => scheme.default_port(),
        };
        Ok(Self {
            scheme,
            host: authority.host().to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for WebOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        if self.port == self.scheme.default_port() {
            write!(f, "{scheme}://{}", self.host)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// One `--allowed-origin`: an origin, or `*` for any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigin {
    Any,
    Origin(WebOrigin),
}

impl FromStr for AllowedOrigin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "*" => Ok(AllowedOrigin::Any),
            origin => origin.parse().map(AllowedOrigin::Origin),
        }
    }
}

/// The rules above, built once at start.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    any: bool,
    allowed: Vec<WebOrigin>,
    /// The server listens on a loopback address: check `Host` too.
    loopback: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl OriginPolicy {
    pub fn new(allowed: &[AllowedOrigin], listen: SocketAddr) -> Self {
        Self {
            any: allowed.contains(&AllowedOrigin::Any),
            allowed: allowed
                .iter()
                .filter_map(|a| match a {
                    AllowedOrigin::Origin(o) => Some(o.clone()),
                    AllowedOrigin::Any => None,
                })
                .collect(),
            loopback: listen.ip().is_loopback(),
        }
    }

    /// Whether pages of other origins may use the server at all (then
    /// they need CORS headers).
    pub fn allows_cross_origin(&self) -> bool {
        self.any || !self.allowed.is_empty()
    }

    /// Checks one request; `Err` says why it is refused.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        uri_authority: Option<&Authority>,
    ) -> Result<(), Refusal> {
        let host = match headers.get(header::HOST) {
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|h| h.parse::<Authority>().ok())
                    .ok_or_else(|| Refusal("the Host header is not a valid host".into()))?,
            ),
            None => uri_authority.cloned(),
        };
        if let Some(host) = &host
            && !self.host_allowed(host)
        {
            return Err(Refusal(format!(
                "host {host} is not allowed: this server listens on a loopback address and \
                 answers only to localhost, 127.0.0.1 or [::1] (or the hosts of --allowed-origin)"
            )));
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        if !needs_origin_check(method, path) || self.any {
            return Ok(());
        }
        let origin_text = String::from_utf8_lossy(origin.as_bytes());
        let allowed = origin_text.parse::<WebOrigin>().is_ok_and(|o| {
            host.as_ref().is_some_and(|h| is_own_origin(&o, h)) || self.allowed.contains(&o)
        });
        if allowed {
            return Ok(());
        }
        let own = host.map_or_else(
            || "unknown (no Host header)".to_owned(),
            |h| format!("http(s)://{h}"),
        );
        Err(Refusal(format!(
            "origin {origin_text} is not allowed to use this server (its own origin is {own}); \
             start it with --allowed-origin {origin_text} to allow pages of that origin"
        )))
    }

    /// Whether a page of `origin` (another origin) may read our answers.
    fn allows_cross(&self, origin: &HeaderValue) -> bool {
        self.any
            || origin
                .to_str()
                .ok()
                .and_then(|o| o.parse::<WebOrigin>().ok())
                .is_some_and(|o| self.allowed.contains(&o))
    }

    fn host_allowed(&self, host: &Authority) -> bool {
        if !self.loopback || self.any {
            return true;
        }
        let name = host.host().to_ascii_lowercase();
        is_loopback_name(&name) || self.allowed.iter().any(|o| o.host == name)
    }

    /// The CORS layer for the allowed origins (`None` when there are none:
    /// the server's own pages need no CORS).
    pub fn cors(self: &Arc<Self>) -> Option<CorsLayer> {
        if !self.allows_cross_origin() {
            return None;
        }
        let policy = Arc::clone(self);
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::predicate(move |origin, _| {
                    policy.allows_cross(origin)
                }))
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT]),
        )
    }
}

/// Socket.IO requests (every transport and step) and state-changing HTTP
/// methods. Other reads need no check: without CORS headers a page of
/// another origin cannot read what they answer.
fn needs_origin_check(method: &Method, path: &str) -> bool {
    let socket_io = path == "/socket.io" || path.starts_with("/socket.io/");
    socket_io || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The page was served by this server under the same name: same host and
/// port (a `Host` without a port means the origin scheme's default one).
/// Names are compared as written: `localhost` and `127.0.0.1` are different
/// origins to the browser, and so here.
fn is_own_origin(origin: &WebOrigin, host: &Authority) -> bool {
    origin.host == host.host().to_ascii_lowercase()
        && origin.port == host.port_u16().unwrap_or(origin.scheme.default_port())
}

/// `localhost` or a loopback IP literal (`127.0.0.0/8`, `[::1]`).
fn is_loopback_name(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    literal.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The middleware: refuses with `403` `{error: {code: "unauthorized", ...}}`.
pub async fn guard(State(policy): State<Arc<OriginPolicy>>, req: Request, next: Next) -> Response {
    match policy.check(
        req.method(),
        req.uri().path(),
        req.headers(),
        req.uri().authority(),
    ) {
        Ok(()) => next.run(req).await,
        Err(Refusal(message)) => {
            tracing::info!(method = %req.method(), path = req.uri().path(), %message, "refused");
            super::http::error_response(
                StatusCode::FORBIDDEN,
                ErrorBody::new(ErrorCode::Unauthorized, message),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> WebOrigin {
        s.parse().unwrap()
    }

    fn policy(allowed: &[&str], listen: &str) -> OriginPolicy {
        let allowed: Vec<AllowedOrigin> = allowed.iter().map(|a| a.parse().unwrap()).collect();
        OriginPolicy::new(&allowed, listen.parse().unwrap())
    }

    fn headers(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(host) = host {
            h.insert(header::HOST, host.parse().unwrap());
        }
        if let Some(origin) = origin {
            h.insert(header::ORIGIN, origin.parse().unwrap());
        }
        h
    }

    fn check(
        p: &OriginPolicy,
        method: Method,
        path: &str,
        host: &str,
        origin: Option<&str>,
    ) -> bool {
        p.check(&method, path, &headers(Some(host), origin), None)
            .is_ok()
    }

    #[test]
    fn origins_parse_to_scheme_host_and_port() {
        assert_eq!(
            origin("http://127.0.0.1:3000"),
            origin("HTTP://127.0.0.1:3000/")
        );
        assert_eq!(
            origin("http://Example.COM"),
            origin("http://example.com:80")
        );
        assert_eq!(origin("https://example.com").port, 443);
        assert_eq!(origin("http://[::1]:8080").host, "[::1]");
        assert_eq!(
            origin("https://example.com:443").to_string(),
            "https://example.com"
        );
        assert_eq!(
            origin("http://localhost:8080").to_string(),
            "http://localhost:8080"
        );
        for bad in [
            "null",
            "",
            "example.com",
            "ftp://example.com",
            "http://",
            "http://example.com/path",
            "http://example.com?q",
            "http://user@example.com",
            "http://example.com:99999",
            "http://example.com:",
        ] {
            assert!(bad.parse::<WebOrigin>().is_err(), "{bad:?}");
        }
        assert_eq!("*".parse::<AllowedOrigin>(), Ok(AllowedOrigin::Any));
    }

    #[test]
    fn own_origin_is_the_host_with_either_scheme() {
        let p = policy(&[], "127.0.0.1:3000");
        let post = |origin| check(&p, Method::POST, "/tasks", "127.0.0.1:3000", origin);
        assert!(post(None));
        assert!(post(Some("http://127.0.0.1:3000")));
        assert!(post(Some("https://127.0.0.1:3000")));
        for other in [
            "http://127.0.0.1:8080",
            "http://localhost:3000",
            "http://[::1]:3000",
            "http://evil.example",
            "null",
            "garbage",
        ] {
            assert!(!post(Some(other)), "{other}");
        }
        // Reads other than Socket.IO are not checked: no CORS, no reading.
        assert!(check(
            &p,
            Method::GET,
            "/tasks/x",
            "127.0.0.1:3000",
            Some("http://evil.example")
        ));
        assert!(!check(
            &p,
            Method::DELETE,
            "/tasks/x",
            "127.0.0.1:3000",
            Some("http://evil.example")
        ));
        // Every Socket.IO request is.
        for method in [Method::GET, Method::POST, Method::OPTIONS] {
            assert!(!check(
                &p,
                method,
                "/socket.io/",
                "127.0.0.1:3000",
                Some("http://evil.example")
            ));
        }
        // Behind a TLS proxy: Host without port, origin on 443.
        let p = policy(&[], "0.0.0.0:3000");
        assert!(check(
            &p,
            Method::POST,
            "/tasks",
            "tasks.example.com",
            Some("https://tasks.example.com")
        ));
        assert!(check(
            &p,
            Method::POST,
            "/tasks",
            "Tasks.Example.com",
            Some("http://tasks.example.com")
        ));
        assert!(!check(
            &p,
            Method::POST,
            "/tasks",
            "tasks.example.com",
            Some("https://tasks.example.com:8443")
        ));
    }

    #[test]
    fn allowed_origins_and_any() {
        let p = policy(&["http://127.0.0.1:8080"], "127.0.0.1:3000");
        let post = |origin| check(&p, Method::POST, "/tasks", "127.0.0.1:3000", Some(origin));
        assert!(post("http://127.0.0.1:8080"));
        assert!(!post("http://127.0.0.1:8081"));
        assert!(!post("https://127.0.0.1:8080"));
        assert!(p.allows_cross(&HeaderValue::from_static("http://127.0.0.1:8080")));
        assert!(!p.allows_cross(&HeaderValue::from_static("http://127.0.0.1:9")));
        let p = policy(&["*"], "127.0.0.1:3000");
        assert!(check(
            &p,
            Method::POST,
            "/socket.io/",
            "127.0.0.1:3000",
            Some("null")
        ));
        assert!(check(
            &p,
            Method::POST,
            "/tasks",
            "rebound.example:3000",
            Some("http://x")
        ));
        assert!(!policy(&[], "127.0.0.1:3000").allows_cross_origin());
    }

    #[test]
    fn a_loopback_server_answers_only_to_loopback_names() {
        let p = policy(&["http://dev.example:8080"], "127.0.0.1:3000");
        for host in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST",
            "[::1]:3000",
            "127.1.2.3",
            "dev.example:3000",
        ] {
            assert!(check(&p, Method::GET, "/tasks/x", host, None), "{host}");
        }
        for host in [
            "evil.example:3000",
            "localhost.evil.example",
            "10.0.0.1:3000",
        ] {
            assert!(!check(&p, Method::GET, "/tasks/x", host, None), "{host}");
        }
        // A server on a public address has no such list (use --token).
        let p = policy(&[], "0.0.0.0:3000");
        assert!(check(
            &p,
            Method::GET,
            "/tasks/x",
            "evil.example:3000",
            None
        ));
        // No Host at all (HTTP/1.0): not a browser.
        let p = policy(&[], "127.0.0.1:3000");
        assert!(
            p.check(&Method::POST, "/tasks", &headers(None, None), None)
                .is_ok()
        );
        assert!(
            p.check(
                &Method::POST,
                "/tasks",
                &headers(None, Some("http://127.0.0.1:3000")),
                None
            )
            .is_err()
        );
    }
}
