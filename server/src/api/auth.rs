//! The optional access token (`--token`): the one place that compares a
//! presented token with it, for Socket.IO (`/`, `/worker`) and HTTP alike.

use std::fmt;

use app::{ErrorBody, ErrorCode};
use axum::http::{HeaderMap, header};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The server's access token, if it has one.
///
/// Only its SHA-256 digest is kept: tokens are compared digest to digest, in
/// constant time, so neither the bytes nor the length of the token leak
/// through timing.
#[derive(Clone, Default)]
pub struct AccessToken(Option<[u8; 32]>);

impl AccessToken {
    /// `None`: no token required, everything is allowed.
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(digest))
    }

    /// Whether a token is required at all.
    pub fn required(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `presented` grants access: always when no token is
    /// configured, otherwise only the exact token.
    pub fn allows(&self, presented: Option<&str>) -> bool {
        match (&self.0, presented) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(want), Some(got)) => want.ct_eq(&digest(got)).into(),
        }
    }

    /// The error a refused client gets.
    pub fn refusal(how: &str) -> ErrorBody {
        ErrorBody::new(
            ErrorCode::Unauthorized,
            format!("a valid access token is required ({how})"),
        )
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.required() { "set" } else { "none" };
        write!(f, "AccessToken({state})")
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The `token` of a Socket.IO handshake `auth` (`{token: "..."}`).
pub fn auth_token(auth: &Value) -> Option<&str> {
    auth.get("token").and_then(Value::as_str)
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_token_allows_everything() {
        let t = AccessToken::new(None);
        assert!(!t.required());
        assert!(t.allows(None));
        assert!(t.allows(Some("anything")));
    }

    #[test]
    fn a_token_allows_only_itself() {
        let t = AccessToken::new(Some("s3cret"));
        assert!(t.required());
        assert!(t.allows(Some("s3cret")));
        for bad in [
            None,
            Some(""),
            Some("s3cre"),
            Some("s3cret "),
            Some("S3CRET"),
        ] {
            assert!(!t.allows(bad), "{bad:?}");
        }
        assert_eq!(format!("{t:?}"), "AccessToken(set)");
    }

    #[test]
    fn tokens_from_auth_and_headers() {
        assert_eq!(auth_token(&json!({"token": "x"})), Some("x"));
        assert_eq!(auth_token(&json!({"token": 1})), None);
        assert_eq!(auth_token(&Value::Null), None);
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }
}
