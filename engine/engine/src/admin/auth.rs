//! Who may use the admin API: reads need the token when one is set (loopback clients only
//! otherwise), actions always need it; the token is compared in constant time.

use super::{error, AdminState};
use crate::admin_listener::AdminPeer;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::net::IpAddr;

/// Whether a read may be served: with a token, to whoever presents it; without one, to
/// loopback clients only.
pub(super) fn may_read(
    token: Option<&str>,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<(), (StatusCode, &'static str)> {
    match token {
        Some(token) if bearer_is(headers, token) => Ok(()),
        Some(_) => Err((
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token: every admin endpoint but /healthz and /readyz needs engine.admin.token",
        )),
        None if peer.is_loopback() => Ok(()),
        None => Err((
            StatusCode::FORBIDDEN,
            "this admin API has no token, so it serves reads to loopback clients only: set engine.admin.token_env and send it as a bearer token",
        )),
    }
}

/// Guards the read routes ([`may_read`]).
pub(super) async fn guard_reads(
    State(st): State<AdminState>,
    ConnectInfo(AdminPeer(peer)): ConnectInfo<AdminPeer>,
    request: Request,
    next: Next,
) -> Response {
    // `::ffff:127.0.0.1` on a dual-stack listener is loopback too.
    match may_read(
        st.token.as_deref(),
        request.headers(),
        peer.ip().to_canonical(),
    ) {
        Ok(()) => next.run(request).await,
        Err((status, why)) => error(status, why),
    }
}

/// Whether the request carries `Authorization: Bearer <token>` (compared in constant time).
fn bearer_is(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    })
}

/// `Err(response)` when the request may not act (boxed: a `Response` is large).
pub(super) fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = &state.token else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "admin actions are disabled: set engine.admin.token",
        )));
    };
    if bearer_is(headers, token) {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_the_token_when_there_is_one_and_loopback_when_there_is_none() {
        let remote: IpAddr = "10.1.2.3".parse().expect("ip");
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let mut with = HeaderMap::new();
        with.insert(header::AUTHORIZATION, "Bearer t0k".parse().expect("value"));
        let none = HeaderMap::new();
        assert!(may_read(Some("t0k"), &with, remote).is_ok());
        assert_eq!(
            may_read(Some("t0k"), &none, local).map_err(|e| e.0),
            Err(StatusCode::UNAUTHORIZED),
            "a token is needed from loopback too once one is set"
        );
        assert!(may_read(None, &none, local).is_ok());
        assert_eq!(
            may_read(None, &none, remote).map_err(|e| e.0),
            Err(StatusCode::FORBIDDEN)
        );
    }
}
