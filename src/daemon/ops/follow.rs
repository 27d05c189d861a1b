//! Streaming a log that some work is still writing (a build's compile.log, a stack image's build
//! log): from its start, line by line as it grows, until the work has ended and everything it
//! wrote was sent. Then the feed ends with [`FeedEnd::LogEnded`], which ends the client's stream.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use super::error::OpResult;
use super::feed::{feed, Feed, FeedEnd, Stop};
use crate::api::LogLine;
use crate::services::logs::Follower;

/// How often the log and the work's state are looked at.
const POLL: Duration = Duration::from_millis(100);

/// Every line of `path` until `running` says the work is over; stops early when the subscriber
/// goes away. `elsewhere`, when the log is not on this vrd (a standby following the leader's
/// work), is said instead of the lines, and the feed still ends when the work does.
pub(super) fn stream_log<F, Fut>(path: PathBuf, elsewhere: Option<String>, mut running: F) -> Feed<LogLine>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = OpResult<bool>> + Send,
{
    feed(FeedEnd::LogEnded, move |tx| async move {
        if let Some(note) = elsewhere.filter(|_| !path.exists()) {
            tx.send(LogLine { line: note }).await?;
            while running().await? {
                tokio::select! {
                    _ = tx.closed() => return Err(Stop::Gone),
                    _ = tokio::time::sleep(POLL * 10) => {}
                }
            }
            return Ok(());
        }
        let mut follower = Follower::from_start(&path);
        loop {
            // Asked before reading: once the work is over, everything it wrote is in the file.
            let still_running = running().await?;
            let lines = if still_running { follower.poll() } else { follower.finish() };
            for line in lines {
                tx.send(LogLine { line }).await?;
            }
            if !still_running {
                return Ok(());
            }
            tokio::select! {
                _ = tx.closed() => return Err(Stop::Gone),
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    })
}
