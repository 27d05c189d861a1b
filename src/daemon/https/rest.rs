//! REST/JSON under `/api/v1` (issue 14 §2), for scripts and the dashboard's forms: the objects
//! (apps, buildpacks, stacks, squads, hosts, ingredients, swarms) listed (paged, filtered),
//! shown, created, updated and deleted; procs listed and acted on; swarms dispatched (202, VR's
//! `swarms/<id>/swarm/`) and rolled back; releases, builds, events and users read. Every route
//! calls the operations layer as the request's user, so it is authorised and audited as any call.
//!
//! [`ROUTES`] is the one list of routes: the router matches against it, and `GET
//! /api/v1/openapi.json` describes exactly it (a test checks each described route is served).

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use jsonrpsee::server::HttpResponse;
use serde_json::{json, Value};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{json, plain, status_of};
use crate::api::{ApiError, Kind, SwarmChanges};
use crate::daemon::ops::{Ops, Principal};

/// One route: its method, its path (`{name}` for a parameter) and what it does.
pub struct Route {
    /// GET, POST, PUT or DELETE.
    pub method: &'static str,
    /// Under /api/v1.
    pub path: &'static str,
    /// The operation whose role it needs (`vrd.version`: any user's), checked before its body is
    /// read, so a refusal never depends on what was sent.
    pub op: &'static str,
    /// What it does, for the OpenAPI description.
    pub summary: &'static str,
}

const fn route(method: &'static str, path: &'static str, op: &'static str, summary: &'static str) -> Route {
    Route { method, path, op, summary }
}

/// Every REST route.
pub const ROUTES: &[Route] = &[
    route("GET", "/api/v1/{kind}", "objects.list", "List objects of a kind (apps, buildpacks, stacks, squads, hosts, ingredients, swarms); ?filter=, ?offset=, ?limit="),
    route("POST", "/api/v1/{kind}", "objects.create", "Create an object from its JSON definition"),
    route("GET", "/api/v1/{kind}/{name}", "objects.get", "Show an object"),
    route("PUT", "/api/v1/{kind}/{name}", "objects.update", "Replace an object's definition"),
    route("DELETE", "/api/v1/{kind}/{name}", "objects.delete", "Delete an object"),
    route("GET", "/api/v1/procs", "procs.list", "List every host's procs; ?filter=, ?offset=, ?limit="),
    route("POST", "/api/v1/procs/{name}/{action}", "procs.start", "Act on a proc: start, stop, restart or destroy"),
    route("POST", "/api/v1/swarms/{name}/swarm", "swarms.dispatch", "Dispatch a swarm (body {\"version\": V}, or {} to keep its version); 202 with the trace to follow"),
    route("POST", "/api/v1/swarms/{name}/rollback", "swarms.rollback", "Roll a swarm back (body {\"number\": N}, or {} for the one before)"),
    route("GET", "/api/v1/swarms/{name}/releases", "swarms.releases", "A swarm's numbered releases"),
    route("GET", "/api/v1/builds", "builds.list", "Builds, newest first; ?app=, ?offset=, ?limit="),
    route("GET", "/api/v1/builds/{id}", "builds.show", "One build"),
    route("GET", "/api/v1/events", "events.list", "Proc events after ?after=, or the newest ?last=N (at most ?limit=, default 100)"),
    route("GET", "/api/v1/users", "users.list", "Users (admins only)"),
    route("POST", "/api/v1/users", "users.create", "Make a user (body {\"name\", \"role\", \"password\"}; admins only)"),
    route("PUT", "/api/v1/users/{name}", "users.update", "Change a user's role and/or password (body {\"role\"?, \"password\"?}; admins only)"),
    route("DELETE", "/api/v1/users/{name}", "users.delete", "Delete a user and its tokens (admins only)"),
    route("GET", "/api/v1/deploys", "deploys.log", "The deployment log: ?trace=, entries after ?after=, at most ?limit= (default 100)"),
    route("GET", "/api/v1/releases/{id}", "releases.show", "One release"),
    route("GET", "/api/v1/stacks/{name}/images", "stacks.images", "A stack's images"),
    route("POST", "/api/v1/stacks/{name}/build", "stacks.build", "Build a new image of a stack (body {}); 202 with the image, whose log /api/v1/streams/stacks/NAME/IMAGE follows"),
    route("POST", "/api/v1/stacks/{name}/activate", "stacks.activate", "Make one of a stack's images its active one (body {\"image\": I})"),
    route("POST", "/api/v1/apps/{name}/build", "apps.build", "Build an app at a version (body {\"version\": V}); 202 with the trace to follow"),
    route("GET", "/api/v1/fleet", "hosts.list", "Every host with its state (local, up, suspect, down), last heartbeat, procs and version"),
    route("GET", "/api/v1/leader", "hosts.leader", "Which coordinator leads: the lease's holder, address, epoch and time left, and whether this one leads"),
    route("GET", "/api/v1/audit", "audit.list", "The audit log, newest first; at most ?limit= (default 100)"),
    route("POST", "/api/v1/yaml", "vrd.version", "Parse YAML text (body {\"text\": T, \"mapping\": true if it must be `key: value` lines}) as vr reads it; the value as JSON, or where it is wrong"),
    route("GET", "/api/v1/openapi.json", "vrd.version", "This description"),
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
    if let Err(e) = crate::daemon::ops::access::authorize(who, route.op) {
        return json(status_of(e.code), json!({ "error": e.full(), "code": e.code }));
    }
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
            let DispatchBody { version } = body_of(body)?;
            let changes = SwarmChanges { version, ..SwarmChanges::default() };
            let filter = format!("^{}$", regex::escape(&name(0)));
            let started = ops.swarms_dispatch(who, filter, changes, None, false).await?;
            Ok((StatusCode::ACCEPTED, to_value(&started)?))
        }
        ("POST", "/api/v1/swarms/{name}/rollback") => {
            let RollbackBody { number } = body_of(body)?;
            Ok((StatusCode::ACCEPTED, to_value(&ops.swarms_rollback(who, name(0), number).await?)?))
        }
        ("GET", "/api/v1/swarms/{name}/releases") => ok(to_value(&ops.swarms_releases(who, name(0)).await?)?),
        ("GET", "/api/v1/builds") => ok(page(to_values(ops.builds_list(who, q("app")).await?)?, q)?),
        ("GET", "/api/v1/builds/{id}") => {
            let id = name(0).parse().map_err(|_| invalid("a build id is a number"))?;
            ok(to_value(&ops.builds_show(who, id).await?)?)
        }
        ("GET", "/api/v1/events") => {
            let limit = limit_of(q);
            let after = match q("last").map(|n| n.parse::<u64>()) {
                // The newest N: ids only grow, so they are the ones after newest - N.
                Some(Ok(n)) => ops.events_latest(who).await?.saturating_sub(n),
                Some(Err(_)) => return Err(invalid("?last= takes a number")),
                None => q("after").and_then(|a| a.parse().ok()).unwrap_or(0),
            };
            ok(to_value(&ops.events_list(who, after, limit).await?)?)
        }
        ("GET", "/api/v1/users") => ok(to_value(&ops.users_list(who).await?)?),
        ("POST", "/api/v1/users") => {
            let UserBody { name, role, password } = body_of(body)?;
            let role = role.as_deref().unwrap_or("viewer").parse().map_err(|e: String| invalid(&e))?;
            let (name, password) = (name.unwrap_or_default(), password.unwrap_or_default());
            Ok((StatusCode::CREATED, to_value(&ops.users_create(who, name, role, password).await?)?))
        }
        ("PUT", "/api/v1/users/{name}") => {
            let UserBody { name: named, role, password } = body_of(body)?;
            if named.is_some_and(|n| n != params[0]) {
                return Err(invalid(
                    "the body's name differs from the path's: a user is renamed by making a new one",
                ));
            }
            let role = role.map(|r| r.parse().map_err(|e: String| invalid(&e))).transpose()?;
            ok(to_value(&ops.users_update(who, name(0), role, password).await?)?)
        }
        ("DELETE", "/api/v1/users/{name}") => {
            ops.users_delete(who, name(0)).await?;
            ok(json!({ "deleted": name(0) }))
        }
        ("GET", "/api/v1/deploys") => {
            let after = q("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let limit = limit_of(q);
            ok(to_value(&ops.deploys_log(who, q("trace"), after, limit).await?)?)
        }
        ("GET", "/api/v1/releases/{id}") => {
            let id = name(0).parse().map_err(|_| invalid("a release id is a number"))?;
            ok(to_value(&ops.releases_show(who, id).await?)?)
        }
        ("GET", "/api/v1/stacks/{name}/images") => ok(to_value(&ops.stacks_images(who, name(0)).await?)?),
        ("POST", "/api/v1/stacks/{name}/build") => {
            let NoBody {} = body_of(body)?;
            Ok((StatusCode::ACCEPTED, to_value(&ops.stacks_build(who, name(0)).await?)?))
        }
        ("POST", "/api/v1/stacks/{name}/activate") => {
            let ActivateBody { image } = body_of(body)?;
            ok(to_value(&ops.stacks_activate(who, name(0), image).await?)?)
        }
        ("POST", "/api/v1/apps/{name}/build") => {
            let BuildBody { version } = body_of(body)?;
            Ok((StatusCode::ACCEPTED, to_value(&ops.apps_build(who, name(0), version).await?)?))
        }
        ("GET", "/api/v1/fleet") => ok(to_value(&ops.hosts_list(who).await?)?),
        ("GET", "/api/v1/leader") => ok(to_value(&ops.hosts_leader(who).await?)?),
        ("GET", "/api/v1/audit") => {
            let limit = limit_of(q);
            ok(to_value(&ops.audit_list(who, limit).await?)?)
        }
        ("POST", "/api/v1/yaml") => {
            let YamlBody { text, mapping } = body_of(body)?;
            let value = if mapping {
                crate::model::yaml::mapping(&text).map(Value::Object)
            } else {
                crate::model::yaml::parse::<Value>(&text)
            };
            ok(json!({ "value": value.map_err(|e| invalid(&e.to_string()))? }))
        }
        ("GET", "/api/v1/openapi.json") => ok(openapi()),
        _ => Err(ApiError::new(
            crate::api::codes::INTERNAL,
            format!("route {} {} has no handler", route.method, route.path),
        )),
    }
}

/// `{"version": V}` or `{}` (keep the swarm's version).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DispatchBody {
    version: Option<String>,
}

/// `{"number": N}` or `{}` (the release before).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    number: Option<u64>,
}

/// A user's fields; which are needed depends on the route.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    name: Option<String>,
    role: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    image: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildBody {
    version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlBody {
    text: String,
    /// Whether it must be a mapping of fields (as a definition, or a swarm's config and env).
    #[serde(default)]
    mapping: bool,
}

/// `{}`: the route takes no fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoBody {}

/// An action's body as its type; a missing field, a wrong type or an unknown field is refused
/// before anything is done.
fn body_of<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    crate::model::typed::from_json(body).map_err(|e| {
        invalid(&format!("the body does not fit this route: {e} (/api/v1/openapi.json describes each route)"))
    })
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

/// `?limit=` of a log's entries: 100 by default, at most 1000.
fn limit_of(q: &(dyn Fn(&str) -> Option<String> + Sync)) -> usize {
    q("limit").and_then(|l| l.parse().ok()).unwrap_or(100).min(1000)
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

/// The largest request body.
const MAX_BODY: usize = 1 << 20;
/// How much of a too large body is still read (and dropped) before the 413 goes out: a client
/// still sending would otherwise find the connection closed under it (a broken pipe) and never
/// read the answer. Past this, the connection is closed anyway.
const MAX_DRAINED: usize = 16 << 20;

/// The body as JSON (at most [`MAX_BODY`]).
async fn read_json(req: hyper::Request<hyper::body::Incoming>) -> Result<Value, HttpResponse> {
    let mut body = req.into_body();
    let (mut bytes, mut seen) = (Vec::new(), 0usize);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| plain(StatusCode::BAD_REQUEST, &format!("the body could not be read: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen <= MAX_BODY {
            bytes.extend_from_slice(&data);
        } else if seen > MAX_DRAINED {
            break;
        }
    }
    if seen > MAX_BODY {
        return Err(plain(StatusCode::PAYLOAD_TOO_LARGE, "a request body is at most 1 MiB"));
    }
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
        let role = crate::daemon::ops::access::needed(r.op).map(|role| format!("{role:?}").to_lowercase());
        let operation = json!({
            "summary": r.summary,
            "x-vr-operation": r.op,
            "x-vr-least-role": role,
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
    fn every_route_needs_the_role_of_an_operation_the_access_table_knows() {
        for r in ROUTES {
            assert!(crate::daemon::ops::access::needed(r.op).is_some(), "{} {}: {}", r.method, r.path, r.op);
        }
    }

    #[test]
    fn action_bodies_refuse_unknown_fields_and_wrong_types() {
        assert!(body_of::<DispatchBody>(json!({})).is_ok_and(|b| b.version.is_none()));
        let wrong = body_of::<DispatchBody>(json!({ "version": 2 })).err().unwrap();
        assert!(wrong.message.contains("invalid type"), "{wrong:?}");
        let unknown = body_of::<RollbackBody>(json!({ "numbr": 2 })).err().unwrap();
        assert!(unknown.message.contains("unknown field `numbr`"), "{unknown:?}");
        assert!(body_of::<NoBody>(json!({ "x": 1 })).is_err());
    }

    #[test]
    fn the_description_has_every_route_once() {
        let doc = openapi();
        for r in ROUTES {
            assert!(doc["paths"][r.path][r.method.to_lowercase()].is_object(), "{} {}", r.method, r.path);
        }
    }
}
