//! Connection slots per caller: each non-root uid may hold at most [`PER_UID`] connections to the
//! socket at once, so one user's stalled or abandoned requests cannot take every connection
//! jsonrpsee allows ([`MAX_CONNECTIONS`]) and leave other users, and root, with "429 Too Many
//! Requests". Root is never limited here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Connections one non-root uid may hold at once.
pub const PER_UID: usize = 64;

/// Connections the server takes in all (jsonrpsee's cap): room for root beside four full uids.
pub const MAX_CONNECTIONS: u32 = 512;

/// The connections each uid holds.
#[derive(Debug, Default)]
pub struct Slots {
    held: Mutex<HashMap<u32, usize>>,
}

/// One held connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    uid: u32,
}

impl Slots {
    /// A slot for a connection of `uid`, or `None` when that uid holds [`PER_UID`] already.
    pub fn take(self: &Arc<Self>, uid: u32) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(uid).or_default();
        if uid != 0 && *count >= PER_UID {
            return None;
        }
        *count += 1;
        Some(Slot { slots: Arc::clone(self), uid })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.uid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.uid);
            }
        }
    }
}

/// Answers a refused connection's first request with [`refusal`] and closes it. The request is
/// read first (at most 64 kB, for at most 2 s), so the answer carries its JSON-RPC id and a client
/// still sending does not miss it.
pub async fn refuse(mut stream: impl AsyncRead + AsyncWrite + Unpin, uid: u32) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let read_request = async {
        while request.len() < 64 << 10 && !complete(&request) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read_request).await;
    let _ = stream.write_all(&refusal(uid, request_id(&request))).await;
    let _ = stream.shutdown().await;
}

/// Whether `request` holds an HTTP head and as many body bytes as its content-length says.
fn complete(request: &[u8]) -> bool {
    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    request.len() >= end + 4 + length
}

/// The JSON-RPC id of the request's body, or null.
fn request_id(request: &[u8]) -> serde_json::Value {
    let body = request.windows(4).position(|w| w == b"\r\n\r\n").map(|end| &request[end + 4..]);
    body.and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// The HTTP answer a refused connection gets: a JSON-RPC error for request `id`, which the client
/// shows like any other error.
pub fn refusal(uid: u32, id: serde_json::Value) -> Vec<u8> {
    let message = format!(
        "uid {uid} holds {PER_UID} connections to vrd already (the most one user may hold at once); \
         close some (stalled clients, vr logs -f) and try again"
    );
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": crate::api::codes::TOO_MANY_CONNECTIONS, "message": message },
    })
    .to_string();
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_holds_at_most_its_share_and_a_freed_slot_is_taken_again() {
        let slots = Arc::new(Slots::default());
        let held: Vec<Slot> = (0..PER_UID).map(|_| slots.take(1000).unwrap()).collect();
        assert!(slots.take(1000).is_none(), "one more than the share");
        assert!(slots.take(1001).is_some(), "another uid is not affected");
        let root: Vec<Slot> = (0..PER_UID * 2).map(|_| slots.take(0).unwrap()).collect();
        assert_eq!(root.len(), PER_UID * 2, "root is never limited");
        drop(held.into_iter().next());
        assert!(slots.take(1000).is_some(), "a dropped slot is free again");
    }

    #[test]
    fn the_refusal_answers_the_request_by_its_id_and_says_what_to_do() {
        let request =
            b"POST / HTTP/1.1\r\nContent-Length: 37\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"x\"}";
        assert!(complete(request));
        assert!(!complete(&request[..request.len() - 1]), "one body byte short");
        let text = String::from_utf8(refusal(1000, request_id(request))).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let answer: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(answer["id"], 7);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("uid 1000") && message.contains("try again"), "{message}");
        assert_eq!(request_id(b"garbage"), serde_json::Value::Null);
    }
}
