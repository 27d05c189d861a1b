//! REST/JSON under `/api/v1` (issue 14 §2), for scripts and the dashboard's forms: the objects
//! (apps, buildpacks, stacks, squads, hosts, ingredients, swarms) listed (paged, filtered),
//! shown, created, updated and deleted; procs listed and acted on; swarms dispatched (202, VR's
//! `swarms/<id>/swarm/`) and rolled back; releases, builds, events and users read. Every route
//! calls the operations layer as the request's user, so it is authorised and audited as any call.
//!
//! [`ROUTES`] is the one list of routes: the router matches against it, and `GET
//! /api/v1/openapi.json` describes exactly it (a test checks each described route is served).

use http_body_util::{BodyExt, Limited};
use hyper::{Method, StatusCode};
use jsonrpsee::server::HttpResponse;
use serde_json::{json, Value};

use super::{json, plain, status_of};
use crate::api::{ApiError, Kind, SwarmChanges};
use crate::daemon::ops::{Ops, Principal};

/// One route: its method, its path (`{name}` for a parameter) and what it does.
pub struct Route {
    /// GET, POST, PUT or DELETE.
    pub method: &'static str,
    /// Under /api/v1.
    pub path: &'static str,
    /// What it does, for the OpenAPI description.
    pub summary: &'static str,
}

const fn route(method: &'static str, path: &'static str, summary: &'static str) -> Route {
    Route { method, path, summary }
}

/// Every REST route.
pub const ROUTES: &[Route] = &[
    route("GET", "/api/v1/{kind}", "List objects of a kind (apps, buildpacks, stacks, squads, hosts, ingredients, swarms); ?filter=, ?offset=, ?limit="),
    route("POST", "/api/v1/{kind}", "Create an object from its JSON definition"),
    route("GET", "/api/v1/{kind}/{name}", "Show an object"),
    route("PUT", "/api/v1/{kind}/{name}", "Replace an object's definition"),
    route("DELETE", "/api/v1/{kind}/{name}", "Delete an object"),
    route("GET", "/api/v1/procs", "List every host's procs; ?filter=, ?offset=, ?limit="),
    route("POST", "/api/v1/procs/{name}/{action}", "Act on a proc: start, stop, restart or destroy"),
    route("POST", "/api/v1/swarms/{name}/swarm", "Dispatch a swarm (body {\"version\": V}, or {} to keep its version); 202 with the trace to follow"),
    route("POST", "/api/v1/swarms/{name}/rollback", "Roll a swarm back (body {\"number\": N}, or {} for the one before)"),
    route("GET", "/api/v1/swarms/{name}/releases", "A swarm's numbered releases"),
    route("GET", "/api/v1/builds", "Builds, newest first; ?app=, ?offset=, ?limit="),
    route("GET", "/api/v1/builds/{id}", "One build"),
    route("GET", "/api/v1/events", "Proc events after ?after= (at most ?limit=, default 100)"),
    route("GET", "/api/v1/users", "Users (admins only)"),
    route("POST", "/api/v1/users", "Make a user (body {\"name\", \"role\", \"password\"}; admins only)"),
    route("PUT", "/api/v1/users/{name}", "Change a user's role and/or password (body {\"role\"?, \"password\"?}; admins only)"),
    route("DELETE", "/api/v1/users/{name}", "Delete a user and its tokens (admins only)"),
    route("GET", "/api/v1/deploys", "The deployment log: ?trace=, entries after ?after=, at most ?limit= (default 100)"),
    route("GET", "/api/v1/releases/{id}", "One release"),
    route("GET", "/api/v1/stacks/{name}/images", "A stack's images"),
    route("GET", "/api/v1/openapi.json", "This description"),
];

/// The kinds of objects by their plural path segment.
fn kind_of(segment: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| format!("{}s", k.as_str()) == segment)
}

/// The route `path` matches, with its parameters.
fn find<'a>(method: &str, path: &'a str) -> Option<(&'static Route, Vec<&'a str>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    // Fixed routes win over `{kind}` ones (`/api/v1/procs` is not a kind).
    let mut candidates: Vec<&'static Route> = ROUTES.iter().filter(|r| r.method == method).collect();
    candidates.sort_by_key(|r| r.path.matches('{').count());
    candidates.into_iter().find_map(|r| {
        let pattern: Vec<&str> = r.path.split('/').collect();
        if pattern.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, s) in pattern.iter().zip(&segments) {
            if p.starts_with('{') {
                if *p == "{kind}" && kind_of(s).is_none() {
                    return None;
                }
                params.push(*s);
            } else if p != s {
                return None;
            }
        }
        Some((r, params))
    })
}

/// Answers a request under /api/v1 of `who`.
pub async fn answer(req: hyper::Request<hyper::body::Incoming>, ops: &Ops, who: &Principal) -> HttpResponse {
    let (method, path, query) =
        (req.method().clone(), req.uri().path().to_string(), req.uri().query().map(str::to_string));
    let Some((route, params)) = find(method.as_str(), &path) else {
        let allowed = ROUTES.iter().any(|r| find(r.method, &path).is_some());
        return if allowed {
            plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "that method is not served here: /api/v1/openapi.json lists the routes",
            )
        } else {
            plain(StatusCode::NOT_FOUND, "no such route: /api/v1/openapi.json lists them")
        };
    };
    let body = if method == Method::POST || method == Method::PUT {
        match read_json(req).await {
            Ok(v) => v,
            Err(refusal) => return refusal,
        }
    } else {
        Value::Null
    };
    let q = |key: &str| {
        query.as_deref().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
        })
    };
    let result = handle(route, &params, body, &q, ops, who).await;
    match result {
        Ok((status, value)) => json(status, value),
        Err(e) => json(status_of(e.code), json!({ "error": e.full(), "code": e.code })),
    }
}

type Answer = Result<(StatusCode, Value), ApiError>;

async fn handle(
    route: &Route,
    params: &[&str],
    body: Value,
    q: &(dyn Fn(&str) -> Option<String> + Sync),
    ops: &Ops,
    who: &Principal,
) -> Answer {
    let ok = |v: Value| Ok((StatusCode::OK, v));
    let kind = || params.first().and_then(|k| kind_of(k)).ok_or_else(|| invalid("no such kind of object"));
    let name = |i: usize| params.get(i).map(|s| s.to_string()).unwrap_or_default();
    match (route.method, route.path) {
        ("GET", "/api/v1/{kind}") => ok(page(ops.objects_list(who, kind()?).await?, q)?),
        ("POST", "/api/v1/{kind}") => {
            Ok((StatusCode::CREATED, ops.objects_create(who, kind()?, body).await?))
        }
        ("GET", "/api/v1/{kind}/{name}") => ok(ops.objects_get(who, kind()?, name(1)).await?),
        ("PUT", "/api/v1/{kind}/{name}") => {
            if body.get("name").and_then(Value::as_str).is_some_and(|n| n != params[1]) {
                return Err(invalid(
                    "the body's name differs from the path's: rename by creating and deleting",
                ));
            }
            ok(ops.objects_update(who, kind()?, body).await?)
        }
        ("DELETE", "/api/v1/{kind}/{name}") => {
            ops.objects_delete(who, kind()?, name(1)).await?;
            ok(json!({ "deleted": name(1) }))
        }
        ("GET", "/api/v1/procs") => ok(page(to_values(ops.procs_list(who).await?)?, q)?),
        ("POST", "/api/v1/procs/{name}/{action}") => {
            ops.procs_act(who, name(0), name(1)).await?;
            ok(json!({ "proc": name(0), "done": name(1) }))
        }
        ("POST", "/api/v1/swarms/{name}/swarm") => {
            let version = body.get("version").and_then(Value::as_str).map(str::to_string);
            let changes = SwarmChanges { version, ..SwarmChanges::default() };
            let filter = format!("^{}$", regex::escape(&name(0)));
            let started = ops.swarms_dispatch(who, filter, changes, None, false).await?;
            Ok((StatusCode::ACCEPTED, to_value(&started)?))
        }
        ("POST", "/api/v1/swarms/{name}/rollback") => {
            let number = body.get("number").and_then(Value::as_u64);
            Ok((StatusCode::ACCEPTED, to_value(&ops.swarms_rollback(who, name(0), number).await?)?))
        }
        ("GET", "/api/v1/swarms/{name}/releases") => ok(to_value(&ops.swarms_releases(who, name(0)).await?)?),
        ("GET", "/api/v1/builds") => ok(page(to_values(ops.builds_list(who, q("app")).await?)?, q)?),
        ("GET", "/api/v1/builds/{id}") => {
            let id = name(0).parse().map_err(|_| invalid("a build id is a number"))?;
            ok(to_value(&ops.builds_show(who, id).await?)?)
        }
        ("GET", "/api/v1/events") => {
            let after = q("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let limit = q("limit").and_then(|l| l.parse().ok()).unwrap_or(100).min(1000);
            ok(to_value(&ops.events_list(who, after, limit).await?)?)
        }
        ("GET", "/api/v1/users") => ok(to_value(&ops.users_list(who).await?)?),
        ("POST", "/api/v1/users") => {
            let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
            let role =
                field("role").unwrap_or_else(|| "viewer".into()).parse().map_err(|e: String| invalid(&e))?;
            let (name, password) = (field("name").unwrap_or_default(), field("password").unwrap_or_default());
            Ok((StatusCode::CREATED, to_value(&ops.users_create(who, name, role, password).await?)?))
        }
        ("PUT", "/api/v1/users/{name}") => {
            let role = match body.get("role").and_then(Value::as_str) {
                Some(r) => Some(r.parse().map_err(|e: String| invalid(&e))?),
                None => None,
            };
            let password = body.get("password").and_then(Value::as_str).map(str::to_string);
            ok(to_value(&ops.users_update(who, name(0), role, password).await?)?)
        }
        ("DELETE", "/api/v1/users/{name}") => {
            ops.users_delete(who, name(0)).await?;
            ok(json!({ "deleted": name(0) }))
        }
        ("GET", "/api/v1/deploys") => {
            let after = q("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let limit = q("limit").and_then(|l| l.parse().ok()).unwrap_or(100).min(1000);
            ok(to_value(&ops.deploys_log(who, q("trace"), after, limit).await?)?)
        }
        ("GET", "/api/v1/releases/{id}") => {
            let id = name(0).parse().map_err(|_| invalid("a release id is a number"))?;
            ok(to_value(&ops.releases_show(who, id).await?)?)
        }
        ("GET", "/api/v1/stacks/{name}/images") => ok(to_value(&ops.stacks_images(who, name(0)).await?)?),
        ("GET", "/api/v1/openapi.json") => ok(openapi()),
        _ => Err(ApiError::new(
            crate::api::codes::INTERNAL,
            format!("route {} {} has no handler", route.method, route.path),
        )),
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(crate::api::codes::INVALID, message.to_string())
}

fn to_value(v: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::new(crate::api::codes::INTERNAL, e.to_string()))
}

fn to_values<T: serde::Serialize>(items: Vec<T>) -> Result<Vec<Value>, ApiError> {
    items.iter().map(to_value).collect()
}

/// `?filter=` (a part of the name), then `?offset=` and `?limit=` (default 100, at most 1000).
fn page(items: Vec<Value>, q: &(dyn Fn(&str) -> Option<String> + Sync)) -> Result<Value, ApiError> {
    let filter = q("filter");
    let number = |key: &str, default: usize| -> Result<usize, ApiError> {
        q(key).map_or(Ok(default), |v| v.parse().map_err(|_| invalid(&format!("?{key}= takes a number"))))
    };
    let (offset, limit) = (number("offset", 0)?, number("limit", 100)?.min(1000));
    let matching: Vec<Value> = items
        .into_iter()
        .filter(|v| filter.as_deref().is_none_or(|f| v["name"].as_str().is_some_and(|n| n.contains(f))))
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    Ok(json!({ "items": items, "total": total, "offset": offset, "limit": limit }))
}

/// The body as JSON (at most 1 MiB).
async fn read_json(req: hyper::Request<hyper::body::Incoming>) -> Result<Value, HttpResponse> {
    let bytes = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(plain(StatusCode::PAYLOAD_TOO_LARGE, "a request body is at most 1 MiB")),
    };
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| plain(StatusCode::BAD_REQUEST, &format!("the body is not JSON: {e}")))
}

/// The OpenAPI 3 description of [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let parameters: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let operation = json!({
            "summary": r.summary,
            "parameters": parameters,
            "security": [{ "token": [] }, { "session": [] }],
            "responses": {
                "200": { "description": "OK (201 for a creation, 202 for a dispatch)" },
                "default": { "description": "An error: {\"error\": what to do, \"code\": the API's code}" }
            }
        });
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "vrd", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": { "securitySchemes": {
            "token": { "type": "http", "scheme": "bearer" },
            "session": { "type": "apiKey", "in": "cookie", "name": "vr_session" }
        } }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_routes_win_and_kinds_are_checked() {
        assert_eq!(find("GET", "/api/v1/procs").map(|(r, _)| r.path), Some("/api/v1/procs"));
        assert_eq!(
            find("GET", "/api/v1/apps").map(|(r, p)| (r.path, p)),
            Some(("/api/v1/{kind}", vec!["apps"]))
        );
        assert_eq!(
            find("GET", "/api/v1/swarms/web/releases").map(|(r, _)| r.path),
            Some("/api/v1/swarms/{name}/releases")
        );
        assert!(find("GET", "/api/v1/cats").is_none(), "not a kind");
        assert!(find("PATCH", "/api/v1/apps/x").is_none());
    }

    #[test]
    fn the_description_has_every_route_once() {
        let doc = openapi();
        for r in ROUTES {
            assert!(doc["paths"][r.path][r.method.to_lowercase()].is_object(), "{} {}", r.method, r.path);
        }
    }
}
