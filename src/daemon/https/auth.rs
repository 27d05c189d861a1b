//! Who an HTTPS request is: the user of its API token (`Authorization: Bearer`), or of its
//! browser session (the `vr_session` cookie). A session's requests must also prove they come
//! from vrd's own pages: a POST carries the session's CSRF token in `X-CSRF-Token`, and any
//! `Origin` must be this listener's (a WebSocket or a stream, which cannot carry the header, is checked by
//! `Origin` alone, which browsers always send with one).

use hyper::StatusCode;
use jsonrpsee::server::HttpResponse;

use super::{plain, unauthorized};
use crate::daemon::ops::Principal;
use crate::services::users::Users;

/// The session cookie's name.
pub const COOKIE: &str = "vr_session";
/// The header a page sends its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The request's principal, or the answer that refuses it.
pub async fn principal<B>(
    req: &hyper::Request<B>,
    users: &Users,
    csrf_exempt: bool,
) -> Result<Principal, HttpResponse> {
    let failed = |e: crate::services::users::UsersError| {
        tracing::error!(error = %e, "failed to check a caller's credentials");
        plain(StatusCode::INTERNAL_SERVER_ERROR, "vrd could not check the credentials; see its log")
    };
    if let Some(token) = bearer(req) {
        return match users.authenticate(token).await.map_err(failed)? {
            Some((name, role)) => Ok(Principal::user(name, role)),
            None => Err(unauthorized("the API token is unknown, revoked or expired: make a new one")),
        };
    }
    let Some(session) = cookie(req, COOKIE) else {
        return Err(unauthorized(
            "no API token: send Authorization: Bearer TOKEN (vr tokens create), or log in",
        ));
    };
    let Some((name, role, csrf)) = users.session(session).await.map_err(failed)? else {
        return Err(unauthorized("the session ended (logged out, idle or expired): log in again"));
    };
    if !same_origin(req) {
        return Err(plain(StatusCode::FORBIDDEN, "a request from another site's page is refused"));
    }
    let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !csrf_exempt && sent != Some(csrf.as_str()) {
        return Err(plain(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token: send the one /login gave"));
    }
    Ok(Principal::user(name, role))
}

fn bearer<B>(req: &hyper::Request<B>) -> Option<&str> {
    let value = req.headers().get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// The value of cookie `name`.
pub fn cookie<'a, B>(req: &'a hyper::Request<B>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// No `Origin`, or one whose host:port is the `Host` the request was sent to.
pub fn same_origin<B>(req: &hyper::Request<B>) -> bool {
    let Some(origin) = req.headers().get(hyper::header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = req.headers().get(hyper::header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.strip_prefix("https://");
    origin_host.is_some() && origin_host == host
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> hyper::Request<()> {
        let mut b = hyper::Request::builder().uri("/rpc");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let r = req(&[("cookie", "a=1; vr_session=abc; b=2")]);
        assert_eq!(cookie(&r, COOKIE), Some("abc"));
        assert_eq!(cookie(&req(&[("cookie", "vr_session_x=1")]), COOKIE), None);
    }

    #[test]
    fn only_this_listeners_pages_are_the_same_origin() {
        assert!(same_origin(&req(&[("host", "web1:8443")])));
        assert!(same_origin(&req(&[("host", "web1:8443"), ("origin", "https://web1:8443")])));
        assert!(!same_origin(&req(&[("host", "web1:8443"), ("origin", "https://evil.example")])));
        assert!(!same_origin(&req(&[("host", "web1:8443"), ("origin", "http://web1:8443")])));
        assert!(!same_origin(&req(&[("origin", "https://web1:8443")])));
    }
}
