//! The browser's Socket.IO connection.
//!
//! It binds the official `socket.io-client` (an ES module fetched by
//! `build.rs` from the npm package pinned in `package.json`; wasm-bindgen
//! ships it beside the site's WASM, so our server serves it). The client
//! brings reconnection with exponential backoff, buffering and the polling
//! fallback. Every payload crosses as JSON text of the `protocol` types.
//!
//! On the server (SSR) there is no socket: [`emit`] fails and [`on`] does
//! nothing; components only call them from effects and event handlers,
//! which never run there.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::{Ack, ErrorBody, ErrorCode};

/// How long an ack may take before [`emit`] gives up.
pub const ACK_TIMEOUT_MS: u32 = 10_000;

/// What the connection is doing, for the indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// First connection under way (or not started: server-side render).
    Connecting,
    Connected,
    /// Lost; trying again (attempt number, from 1).
    Reconnecting(u32),
    /// The server refused the connection (a wrong or missing `--token`);
    /// the client does not retry on its own.
    Refused,
}

impl ConnState {
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Connecting => "connecting",
            ConnState::Connected => "connected",
            ConnState::Reconnecting(_) => "reconnecting",
            ConnState::Refused => "refused",
        }
    }

    pub fn label(self) -> String {
        match self {
            ConnState::Connecting => "Connecting…".into(),
            ConnState::Connected => "Live".into(),
            ConnState::Reconnecting(0 | 1) => "Offline, reconnecting…".into(),
            ConnState::Reconnecting(n) => format!("Offline, reconnecting (attempt {n})…"),
            ConnState::Refused => "Refused: open the page with ?token=…".into(),
        }
    }
}

fn internal(message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorCode::Internal, message)
}

#[cfg(target_arch = "wasm32")]
mod browser {
    use std::cell::OnceCell;

    use js_sys::{Array, Function, JSON, Promise};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_futures::JsFuture;

    use super::*;

    #[wasm_bindgen(module = "/node_modules/socket.io-client/dist/socket.io.esm.min.js")]
    extern "C" {
        /// `io(opts)`: connects to the page's own origin.
        #[wasm_bindgen(js_name = io)]
        fn connect(opts: &JsValue) -> Socket;

        pub type Socket;
        #[wasm_bindgen(method)]
        fn on(this: &Socket, event: &str, listener: &Function);
        #[wasm_bindgen(method)]
        fn emit(this: &Socket, event: &str, payload: &JsValue, ack: &Function);
        #[wasm_bindgen(method)]
        fn timeout(this: &Socket, ms: u32) -> Socket;
        #[wasm_bindgen(method)]
        fn disconnect(this: &Socket);
        #[wasm_bindgen(method, getter)]
        fn io(this: &Socket) -> Manager;
        /// Whether the client will retry by itself after a failed connect.
        #[wasm_bindgen(method, getter)]
        fn active(this: &Socket) -> bool;

        pub type Manager;
        #[wasm_bindgen(method, js_name = on)]
        fn on_manager(this: &Manager, event: &str, listener: &Function);
    }

    thread_local! {
        static SOCKET: OnceCell<Socket> = const { OnceCell::new() };
    }

    /// The access token the page was given (`?token=` once, then kept in
    /// this browser's local storage), for servers run with `--token`.
    pub(super) fn token() -> Option<String> {
        let window = web_sys::window()?;
        let storage = window.local_storage().ok().flatten();
        let from_url = window
            .location()
            .search()
            .ok()
            .and_then(|q| web_sys::UrlSearchParams::new_with_str(&q).ok())
            .and_then(|p| p.get("token"));
        if let (Some(t), Some(s)) = (&from_url, &storage) {
            let _ = s.set_item("taskwire.token", t);
        }
        from_url.or_else(|| storage?.get_item("taskwire.token").ok().flatten())
    }

    fn options() -> JsValue {
        let mut opts = serde_json::json!({
            "reconnectionDelay": 500,
            "reconnectionDelayMax": 5000,
            "randomizationFactor": 0.5,
        });
        // Trunk's dev proxy (the `csr` build) forwards WebSockets only.
        if cfg!(feature = "csr") {
            opts["transports"] = serde_json::json!(["websocket"]);
        }
        if let Some(token) = token() {
            opts["auth"] = serde_json::json!({ "token": token });
        }
        JSON::parse(&opts.to_string()).unwrap_or(JsValue::UNDEFINED)
    }

    pub(super) fn with_socket<R>(f: impl FnOnce(&Socket) -> R) -> R {
        SOCKET.with(|cell| f(cell.get_or_init(|| connect(&options()))))
    }

    fn to_js<T: Serialize>(value: &T) -> Result<JsValue, ErrorBody> {
        let text = serde_json::to_string(value).map_err(|e| internal(e.to_string()))?;
        JSON::parse(&text).map_err(|_| internal("payload is not JSON"))
    }

    fn from_js<T: DeserializeOwned>(value: &JsValue) -> Result<T, String> {
        let text: String = JSON::stringify(value)
            .map_err(|_| "not JSON".to_owned())?
            .into();
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    /// Sends `event` and parses its ack as `R` once it says `ok`.
    pub async fn request<T: Serialize, R: DeserializeOwned>(
        event: &str,
        payload: &T,
    ) -> Result<R, ErrorBody> {
        let data = to_js(payload)?;
        let promise = Promise::new(&mut |resolve, _reject| {
            let ack = Closure::once_into_js(move |err: JsValue, ack: JsValue| {
                let _ = resolve.call1(&JsValue::NULL, &Array::of2(&err, &ack));
            });
            with_socket(|s| {
                s.timeout(ACK_TIMEOUT_MS)
                    .emit(event, &data, ack.unchecked_ref())
            });
        });
        let pair: Array = JsFuture::from(promise)
            .await
            .map_err(|_| internal("ack lost"))?
            .unchecked_into();
        if !pair.get(0).is_null() && !pair.get(0).is_undefined() {
            return Err(internal(format!(
                "no answer from the server within {} s",
                ACK_TIMEOUT_MS / 1000
            )));
        }
        let ack: serde_json::Value =
            from_js(&pair.get(1)).map_err(|e| internal(format!("bad ack: {e}")))?;
        parse_ack(ack)
    }

    pub fn on<T: DeserializeOwned + 'static>(event: &'static str, handler: impl Fn(T) + 'static) {
        let listener =
            Closure::<dyn Fn(JsValue)>::new(move |value: JsValue| match from_js::<T>(&value) {
                Ok(v) => handler(v),
                Err(e) => web_sys::console::warn_1(&format!("bad {event} push: {e}").into()),
            });
        with_socket(|s| s.on(event, listener.as_ref().unchecked_ref()));
        listener.forget();
    }

    pub fn on_state(handler: impl Fn(ConnState) + 'static) {
        let handler = std::rc::Rc::new(handler);
        let h = handler.clone();
        let connected = Closure::<dyn Fn()>::new(move || h(ConnState::Connected));
        let h = handler.clone();
        let lost = Closure::<dyn Fn()>::new(move || h(ConnState::Reconnecting(0)));
        let h = handler.clone();
        let attempt = Closure::<dyn Fn(u32)>::new(move |n: u32| h(ConnState::Reconnecting(n)));
        // A refusal by the server (its auth middleware) is final for the
        // client; a network failure is retried.
        let h = handler;
        let failed = Closure::<dyn Fn()>::new(move || {
            if !with_socket(|s| s.active()) {
                h(ConnState::Refused);
            }
        });
        with_socket(|s| {
            s.on("connect", connected.as_ref().unchecked_ref());
            s.on("disconnect", lost.as_ref().unchecked_ref());
            s.on("connect_error", failed.as_ref().unchecked_ref());
            s.io()
                .on_manager("reconnect_attempt", attempt.as_ref().unchecked_ref());
        });
        connected.forget();
        lost.forget();
        attempt.forget();
        failed.forget();
    }
}

/// Sends `event` with its payload and waits for the ack; a refusal
/// (`{ok: false}`) is the `Err`.
pub async fn emit<T: Serialize>(event: &str, payload: &T) -> Result<Ack, ErrorBody> {
    request(event, payload).await
}

/// Sends `event` with its payload and parses its ack as `R` (for acks
/// [`Ack`] does not cover, such as `list`'s page); a refusal is the `Err`.
pub async fn request<T: Serialize, R: DeserializeOwned>(
    event: &str,
    payload: &T,
) -> Result<R, ErrorBody> {
    #[cfg(target_arch = "wasm32")]
    {
        browser::request(event, payload).await
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (event, serde_json::to_value(payload));
        Err(internal("no socket outside the browser"))
    }
}

/// An ack as `R`, or its error when it is `{ok: false, error}`.
pub fn parse_ack<R: DeserializeOwned>(ack: serde_json::Value) -> Result<R, ErrorBody> {
    if ack.get("ok").and_then(serde_json::Value::as_bool) != Some(true) {
        let refused: Ack =
            serde_json::from_value(ack).map_err(|e| internal(format!("bad ack: {e}")))?;
        refused.into_result()?;
        return Err(internal("ack without ok"));
    }
    serde_json::from_value(ack).map_err(|e| internal(format!("bad ack: {e}")))
}

/// Calls `handler` with every `event` push that parses as `T`.
pub fn on<T: DeserializeOwned + 'static>(event: &'static str, handler: impl Fn(T) + 'static) {
    #[cfg(target_arch = "wasm32")]
    browser::on(event, handler);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (event, handler);
}

/// Calls `handler` on every change of the connection's state; `Connected`
/// comes again after every reconnect.
pub fn on_state(handler: impl Fn(ConnState) + 'static) {
    #[cfg(target_arch = "wasm32")]
    browser::on_state(handler);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = handler;
}

/// `GET url` as JSON (same origin). Browser only.
pub async fn fetch_json<T: DeserializeOwned>(url: &str) -> Result<T, String> {
    fetch("GET", url).await
}

/// `POST url` without a body, its answer as JSON (same origin). Browser
/// only.
pub async fn post_json<T: DeserializeOwned>(url: &str) -> Result<T, String> {
    fetch("POST", url).await
}

/// `method url`, with the page's access token (if it has one) as the API
/// asks for it, and the answer as JSON; an error status is the `Err`, with
/// the API's message when it sent one.
async fn fetch<T: DeserializeOwned>(method: &str, url: &str) -> Result<T, String> {
    #[cfg(target_arch = "wasm32")]
    {
        use wasm_bindgen::JsCast;
        use wasm_bindgen_futures::JsFuture;
        let window = web_sys::window().ok_or("no window")?;
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        if let Some(token) = browser::token() {
            let headers = web_sys::Headers::new().map_err(|_| "no headers")?;
            headers
                .set("authorization", &format!("Bearer {token}"))
                .map_err(|_| "bad token")?;
            init.set_headers(&headers);
        }
        let res: web_sys::Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
            .await
            .map_err(|_| format!("{method} {url} failed"))?
            .unchecked_into();
        let status = res.status();
        let body = res.json().map_err(|_| "no body".to_owned())?;
        let value = JsFuture::from(body).await.ok();
        let text: Option<String> = value
            .as_ref()
            .and_then(|v| js_sys::JSON::stringify(v).ok())
            .map(Into::into);
        if !res.ok() {
            let why = text
                .and_then(|t| serde_json::from_str::<crate::protocol::HttpError>(&t).ok())
                .map(|e| e.error.message)
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(format!("{method} {url}: {why}"));
        }
        serde_json::from_str(&text.ok_or("bad JSON")?).map_err(|e| e.to_string())
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err(format!("cannot {method} {url} outside the browser"))
    }
}
