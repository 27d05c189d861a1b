//! `POST /login` and `POST /logout`: browser sessions for the dashboard. A login takes a JSON
//! `{"name": ..., "password": ...}` or a form of the same fields, and answers with the session
//! cookie (Secure, HttpOnly, SameSite=Strict) and, in the body, the CSRF token the page sends
//! back. Failed logins are throttled per address and per name (`services::users`).

use http_body_util::{BodyExt, Limited};
use hyper::{Method, StatusCode};
use jsonrpsee::server::HttpResponse;

use super::auth::{cookie, same_origin, COOKIE, CSRF_HEADER};
use super::{json, plain};
use crate::services::users::{Login, Users, SESSION_LIFETIME};

/// The most a login's body may hold.
const MAX_BODY: usize = 16 * 1024;

/// `POST /login`.
pub async fn login(
    req: hyper::Request<hyper::body::Incoming>,
    from: std::net::IpAddr,
    users: &Users,
) -> HttpResponse {
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "log in with POST /login");
    }
    if !same_origin(&req) {
        return plain(StatusCode::FORBIDDEN, "a login from another site's page is refused");
    }
    let form = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|c| c.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "a login's body is at most 16 kB"),
    };
    let Some((name, password)) = credentials(&body, form) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "send {\"name\": ..., \"password\": ...} (JSON) or a form with name and password",
        );
    };
    match users.start_session(&name, &password, from).await {
        Ok(Login::Started(s)) => {
            let mut response = json(
                StatusCode::OK,
                serde_json::json!({ "user": s.user.name, "role": s.user.role, "csrf": s.csrf, "expires": s.expires }),
            );
            let cookie = format!(
                "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={SESSION_LIFETIME}",
                s.token
            );
            set_cookie(&mut response, &cookie);
            response
        }
        Ok(Login::Refused) => plain(StatusCode::UNAUTHORIZED, "wrong name or password"),
        Ok(Login::Throttled(wait)) => {
            let mut response = plain(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too many failed logins: try again in {wait} s"),
            );
            if let Ok(v) = wait.to_string().parse() {
                response.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a login failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "vrd could not log you in; see its log")
        }
    }
}

/// `GET /session`: who the session cookie is, with its CSRF token (a page reloaded needs it
/// again). Another site's page cannot read the answer (no CORS), and its `Origin` is refused.
pub async fn session<B>(req: &hyper::Request<B>, users: &Users) -> HttpResponse {
    if !same_origin(req) {
        return plain(StatusCode::FORBIDDEN, "a request from another site's page is refused");
    }
    let Some(token) = cookie(req, COOKIE) else {
        return plain(StatusCode::UNAUTHORIZED, "not logged in");
    };
    match users.session(token).await {
        Ok(Some((user, role, csrf))) => {
            json(StatusCode::OK, serde_json::json!({ "user": user, "role": role, "csrf": csrf }))
        }
        Ok(None) => plain(StatusCode::UNAUTHORIZED, "the session ended: log in again"),
        Err(e) => {
            tracing::error!(error = %e, "reading a session failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "vrd could not read the session; see its log")
        }
    }
}

/// `POST /logout`: ends the session (with its CSRF token, so no other site can log you out).
pub async fn logout(req: hyper::Request<hyper::body::Incoming>, users: &Users) -> HttpResponse {
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "log out with POST /logout");
    }
    let Some(token) = cookie(&req, COOKIE) else {
        return plain(StatusCode::UNAUTHORIZED, "not logged in");
    };
    let csrf = match users.session(token).await {
        Ok(Some((_, _, csrf))) => csrf,
        Ok(None) => return plain(StatusCode::UNAUTHORIZED, "the session ended already"),
        Err(e) => {
            tracing::error!(error = %e, "a logout failed");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "vrd could not log you out; see its log");
        }
    };
    if req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) != Some(csrf.as_str()) {
        return plain(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token");
    }
    if let Err(e) = users.end_session(token).await {
        tracing::error!(error = %e, "a logout failed");
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "vrd could not log you out; see its log");
    }
    let mut response = json(StatusCode::OK, serde_json::json!({ "logged_out": true }));
    set_cookie(&mut response, &format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"));
    response
}

fn set_cookie(response: &mut HttpResponse, value: &str) {
    if let Ok(v) = value.parse() {
        response.headers_mut().insert(hyper::header::SET_COOKIE, v);
    }
}

/// The name and password of a JSON body or a form.
fn credentials(body: &[u8], form: bool) -> Option<(String, String)> {
    if form {
        let fields: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        return Some((fields.get("name")?.clone(), fields.get("password")?.clone()));
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Credentials {
        name: String,
        password: String,
    }
    serde_json::from_slice::<Credentials>(body).ok().map(|c| (c.name, c.password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_as_json_or_a_form_and_nothing_else() {
        let pair = Some(("al".to_string(), "p w&d".to_string()));
        assert_eq!(credentials(br#"{"name":"al","password":"p w&d"}"#, false), pair);
        assert_eq!(credentials(b"name=al&password=p+w%26d", true), pair);
        assert_eq!(credentials(br#"{"name":"al"}"#, false), None);
        assert_eq!(credentials(br#"{"name":"al","password":"x","admin":true}"#, false), None);
        assert_eq!(credentials(b"name=al", true), None);
    }
}
