//! The dashboard's files (issue 14 §3), compiled into vrd: no CDN, no build step, works with no
//! internet. One page, one script, one style sheet; the script talks to `/session`, `/login`,
//! `/logout`, `/api/v1` and its streams. Served with a Content-Security-Policy that allows only
//! this origin's files (no inline script), and never framed.

use hyper::StatusCode;
use jsonrpsee::server::{HttpBody, HttpResponse};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// The file at `path`, if it is one of the dashboard's.
pub fn file(path: &str) -> Option<HttpResponse> {
    let (body, kind) = match path {
        "/" | "/index.html" => (INDEX, "text/html; charset=utf-8"),
        "/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut response = HttpResponse::new(HttpBody::from(body.to_string()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    let set = |h: &mut hyper::HeaderMap, k: hyper::header::HeaderName, v: &'static str| {
        h.insert(k, hyper::header::HeaderValue::from_static(v));
    };
    set(headers, hyper::header::CONTENT_TYPE, kind);
    set(headers, hyper::header::CACHE_CONTROL, "no-cache");
    set(headers, hyper::header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        headers,
        hyper::header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    );
    set(headers, hyper::header::REFERRER_POLICY, "no-referrer");
    Some(response)
}
