//! The dashboard's files (issue 14 §3), compiled into vrd: no CDN, no build step, works with no
//! internet. One page, one style sheet and a few ES modules (app.js routes to the pages); they talk to `/session`, `/login`,
//! `/logout`, `/api/v1` and its streams. Served with a Content-Security-Policy that allows only
//! this origin's files (no inline script), and never framed.

use hyper::StatusCode;
use jsonrpsee::server::{HttpBody, HttpResponse};

/// Every file: its path, its text and its type.
const FILES: &[(&str, &str, &str)] = &[
    ("/", include_str!("assets/index.html"), HTML),
    ("/index.html", include_str!("assets/index.html"), HTML),
    ("/app.css", include_str!("assets/app.css"), "text/css; charset=utf-8"),
    ("/app.js", include_str!("assets/app.js"), SCRIPT),
    ("/ui.js", include_str!("assets/ui.js"), SCRIPT),
    ("/procs.js", include_str!("assets/procs.js"), SCRIPT),
    ("/swarms.js", include_str!("assets/swarms.js"), SCRIPT),
    ("/objects.js", include_str!("assets/objects.js"), SCRIPT),
    ("/activity.js", include_str!("assets/activity.js"), SCRIPT),
];
const HTML: &str = "text/html; charset=utf-8";
const SCRIPT: &str = "text/javascript; charset=utf-8";

/// The file at `path`, if it is one of the dashboard's.
pub fn file(path: &str) -> Option<HttpResponse> {
    let (_, body, kind) = FILES.iter().find(|(p, _, _)| *p == path)?;
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
