//! Streaming a log that some work is still writing (a build's compile.log, a stack image's build
//! log) to a subscriber: from its start, line by line as it grows, until the work has ended and
//! everything it wrote was sent. Then the subscription is closed from this side (jsonrpsee's
//! close notification, [`LOG_ENDED`]), which ends the client's stream.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::SubscriptionSink;

use crate::api::{LogLine, LOG_ENDED};
use crate::services::logs::Follower;

/// How often the log and the work's state are looked at.
const POLL: Duration = Duration::from_millis(100);

/// Sends every line of `path` to `sink` until `running` says the work is over, then closes the
/// subscription; ends early when the subscriber goes away.
pub(super) async fn stream_log<F, Fut>(
    sink: SubscriptionSink,
    path: PathBuf,
    mut running: F,
) -> SubscriptionResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = RpcResult<bool>>,
{
    let mut follower = Follower::from_start(&path);
    loop {
        // Asked before reading: once the work is over, everything it wrote is in the file.
        let still_running = running().await?;
        let lines = if still_running { follower.poll() } else { follower.finish() };
        for line in lines {
            sink.send(serde_json::value::to_raw_value(&LogLine { line })?).await?;
        }
        if !still_running {
            return Err(LOG_ENDED.into());
        }
        tokio::select! {
            _ = sink.closed() => return Ok(()),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
