//! Server-sent event streams (issue 14 §2, VR's /api/streams/...): the operations layer's feeds,
//! framed as `text/event-stream` for browsers' EventSource and for curl. Every event has an id;
//! a client that reconnects with `Last-Event-ID` (EventSource does so by itself) gets what came
//! after it, with nothing lost or repeated:
//!
//! - `GET /api/v1/streams/events[?after=ID|now]`: proc changes (`event: proc`; id: the event's
//!   id); `now`: only changes from now on.
//! - `GET /api/v1/streams/deploys[?trace=ID]`: the deployment log, or one dispatch's
//!   (`event: deploy`; id: the entry's id).
//! - `GET /api/v1/streams/builds/ID`: a build's compile output (`event: line`; id: the line's
//!   number).
//! - `GET /api/v1/streams/stacks/STACK/IMAGE`: an image's build log (`event: line`; id: the
//!   line's number).
//! - `GET /api/v1/streams/logs/PROC[?tail=N]`: a proc's log, live (`event: line`; id: the
//!   line's time and its place among the lines of that time).
//!
//! A comment line every 15 s keeps proxies from closing a quiet stream; a failure is sent as
//! `event: error` with the API's error, and ends the stream.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::StatusCode;
use jsonrpsee::server::{HttpBody, HttpResponse};
use serde::Serialize;

use super::plain;
use crate::api::LogLine;
use crate::daemon::ops::feed::Feed;
use crate::daemon::ops::{Ops, Principal};

/// How often a quiet stream sends a comment.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Answers a `GET /api/v1/streams/...` of `who`.
pub async fn stream<B>(req: &hyper::Request<B>, ops: &Ops, who: &Principal) -> HttpResponse {
    let path = req.uri().path().trim_end_matches('/');
    let resume = last_event_id(req);
    let parts: Vec<&str> = path.trim_start_matches("/api/v1/streams/").split('/').collect();
    match parts.as_slice() {
        ["events"] => {
            // `?after=now`: only what comes next (a page that has just read the list).
            let after = match resume {
                None if query(req, "after").as_deref() == Some("now") => match ops.events_latest(who).await {
                    Ok(latest) => latest,
                    Err(e) => return refused(e),
                },
                _ => resume.unwrap_or(0),
            };
            match ops.events_follow(who, after).await {
                Ok(feed) => sse(feed, |item| (item.id, "proc")),
                Err(e) => refused(e),
            }
        }
        ["deploys"] => match ops.deploys_follow(who, query(req, "trace"), resume.unwrap_or(0)).await {
            Ok(feed) => sse(feed, |entry| (entry.id, "deploy")),
            Err(e) => refused(e),
        },
        ["builds", id] => {
            let Ok(id) = id.parse() else { return plain(StatusCode::BAD_REQUEST, "a build id is a number") };
            match ops.builds_follow(who, id).await {
                // Lines have no id of their own: their number is, and a resume skips as many.
                Ok(feed) => numbered_sse(feed, resume.unwrap_or(0)),
                Err(e) => refused(e),
            }
        }
        ["stacks", stack, image] => match ops.stacks_follow(who, stack.to_string(), image.to_string()).await {
            // An image's build log, numbered as a build's is.
            Ok(feed) => numbered_sse(feed, resume.unwrap_or(0)),
            Err(e) => refused(e),
        },
        ["logs", name] => {
            // A resume id is TIME/K; a first connection may ask for the last lines (?tail=N).
            let resume = text_event_id(req).and_then(|id| {
                let (time, k) = id.rsplit_once('/')?;
                Some((time.to_string(), k.parse().ok()?))
            });
            let since = resume.as_ref().map(|(time, _)| time.clone());
            let tail = if since.is_some() { None } else { query(req, "tail").and_then(|t| t.parse().ok()) };
            match ops.logs_follow(who, name.to_string(), since, tail).await {
                Ok(feed) => log_sse(feed, resume),
                Err(e) => refused(e),
            }
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "streams: /api/v1/streams/events, /deploys[?trace=ID], /builds/ID, /stacks/STACK/IMAGE, /logs/PROC[?tail=N]",
        ),
    }
}

/// `Last-Event-ID` as it is.
fn text_event_id<B>(req: &hyper::Request<B>) -> Option<String> {
    req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// `Last-Event-ID`, else `?after=`.
fn last_event_id<B>(req: &hyper::Request<B>) -> Option<u64> {
    let header =
        req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    header.or_else(|| query(req, "after").and_then(|a| a.parse().ok()))
}

fn query<B>(req: &hyper::Request<B>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn refused(e: crate::api::ApiError) -> HttpResponse {
    super::json(super::status_of(e.code), serde_json::json!({ "error": e.full(), "code": e.code }))
}

/// One event's text.
fn frame(id: &str, event: &str, data: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    Bytes::from(format!("id: {id}\nevent: {event}\ndata: {data}\n\n"))
}

/// A feed whose items carry their ids.
fn sse<T: Serialize + Send + 'static>(feed: Feed<T>, id_of: fn(&T) -> (u64, &'static str)) -> HttpResponse {
    body(feed, move |item| {
        let (id, event) = id_of(item);
        Some(frame(&id.to_string(), event, item))
    })
}

/// A feed whose items are numbered from 1; the first `skip` are not sent again.
fn numbered_sse<T: Serialize + Send + 'static>(feed: Feed<T>, skip: u64) -> HttpResponse {
    let mut n = 0u64;
    body(feed, move |item| {
        n += 1;
        (n > skip).then(|| frame(&n.to_string(), "line", item))
    })
}

/// A proc's log: each line's id is its time and its place among the lines of that time
/// (`TIME/K`), so a resume from `since` = TIME skips exactly what was sent.
fn log_sse(feed: Feed<LogLine>, resume: Option<(String, u64)>) -> HttpResponse {
    let mut last: (String, u64) = (String::new(), 0);
    body(feed, move |item: &LogLine| {
        let time = item.line.split(' ').next().unwrap_or_default().to_string();
        last = if time == last.0 { (time, last.1 + 1) } else { (time, 0) };
        let seen = resume.as_ref().is_some_and(|(t, k)| *t == last.0 && last.1 <= *k);
        (!seen).then(|| frame(&format!("{}/{}", last.0, last.1), "line", item))
    })
}

/// Streams `feed`, each item as `render` frames it (`None`: already sent before a resume).
fn body<T: Send + 'static>(
    mut feed: Feed<T>,
    mut render: impl FnMut(&T) -> Option<Bytes> + Send + 'static,
) -> HttpResponse {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        loop {
            let chunk = tokio::select! {
                item = feed.next() => match item {
                    None => break,
                    Some(Ok(item)) => match render(&item) {
                        Some(frame) => frame,
                        None => continue,
                    },
                    Some(Err(e)) => {
                        let error = serde_json::json!({ "error": e.full(), "code": e.code });
                        let _ = tx.send(Bytes::from(format!("event: error\ndata: {error}\n\n"))).await;
                        break;
                    }
                },
                _ = keepalive.tick() => Bytes::from_static(b": keepalive\n\n"),
                // The client went away: dropping the feed tells its producer.
                _ = tx.closed() => break,
            };
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = HttpResponse::new(HttpBody::new(StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/event-stream"));
    headers.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-cache"));
    response
}
