//! Streams, transport-neutral: an operation that follows something (events, the deployment log, a
//! build's log) returns a [`Feed`]; a task of its own produces the items, and the transport (a
//! JSON-RPC subscription today, server-sent events next) forwards them until the subscriber goes
//! away, which the producer notices at its next send or while it waits ([`FeedTx::closed`]).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::error::OpResult;
use crate::api::ApiError;

/// How many items wait for a slow subscriber before the producer waits too.
const BUFFER: usize = 64;

/// How a feed whose producer has finished ends for its subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEnd {
    /// Nothing more will come (the daemon is stopping, or a finite stream is complete): the
    /// subscription just ends.
    Quiet,
    /// The log's writer has ended: the subscriber is told ([`crate::api::LOG_ENDED`]).
    LogEnded,
}

/// The items of a stream, as a transport reads them.
pub struct Feed<T> {
    items: mpsc::Receiver<OpResult<T>>,
    /// How it ends once its producer is done.
    pub end: FeedEnd,
}

impl<T> Feed<T> {
    /// The next item; `None` when the producer is done; an error ends the stream.
    pub async fn next(&mut self) -> Option<OpResult<T>> {
        self.items.recv().await
    }
}

/// Why a producer stops early.
#[derive(Debug)]
pub enum Stop {
    /// The subscriber went away.
    Gone,
    /// The producer failed; the subscriber is told why.
    Failed(ApiError),
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Stop {
        Stop::Failed(e)
    }
}

/// The producer's end of a feed.
pub struct FeedTx<T>(mpsc::Sender<OpResult<T>>);

impl<T> FeedTx<T> {
    /// Sends one item; `Stop::Gone` when the subscriber has gone.
    pub async fn send(&self, item: T) -> Result<(), Stop> {
        self.0.send(Ok(item)).await.map_err(|_| Stop::Gone)
    }

    /// Resolves when the subscriber has gone (for a producer that waits between items).
    pub async fn closed(&self) {
        self.0.closed().await
    }
}

/// Starts `produce` on a task of its own and returns the feed it fills.
pub fn feed<T, F, Fut>(end: FeedEnd, produce: F) -> Feed<T>
where
    T: Send + 'static,
    F: FnOnce(FeedTx<T>) -> Fut,
    Fut: Future<Output = Result<(), Stop>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(BUFFER);
    let failed = tx.clone();
    let work = produce(FeedTx(tx));
    tokio::spawn(async move {
        if let Err(Stop::Failed(e)) = work.await {
            let _ = failed.send(Err(e)).await;
        }
    });
    Feed { items: rx, end }
}

/// Items with ids that only grow (events, deployment log entries).
pub trait Numbered {
    /// The item's id.
    fn id(&self) -> u64;
}

/// Sends the stored items after `after` (read in pages by `stored`), then the live ones, with no
/// gap between the two and no item twice; a lagging subscriber catches up from the store. Items
/// `keep` refuses are skipped; the feed ends after an item `last` accepts. `live` must have been
/// subscribed before this is called, so nothing falls between the replay and the live stream.
pub async fn replay_then_live<T, L, S, Fut>(
    tx: &FeedTx<T>,
    after: u64,
    mut live: tokio::sync::broadcast::Receiver<Arc<L>>,
    stored: S,
    keep: impl Fn(&T) -> bool,
    last: impl Fn(&T) -> bool,
) -> Result<(), Stop>
where
    T: Numbered + From<L>,
    L: Clone,
    S: Fn(u64) -> Fut,
    Fut: Future<Output = OpResult<Vec<T>>>,
{
    use tokio::sync::broadcast::error::RecvError;
    let mut seen = after;
    if catch_up(tx, &mut seen, &stored, &keep, &last).await? {
        return Ok(());
    }
    loop {
        let item = tokio::select! {
            _ = tx.closed() => return Err(Stop::Gone),
            received = live.recv() => match received {
                Ok(item) => T::from(Arc::unwrap_or_clone(item)),
                Err(RecvError::Lagged(_)) => {
                    if catch_up(tx, &mut seen, &stored, &keep, &last).await? {
                        return Ok(());
                    }
                    continue;
                }
                Err(RecvError::Closed) => return Ok(()),
            },
        };
        if item.id() <= seen {
            continue;
        }
        seen = item.id();
        if send_kept(tx, item, &keep, &last).await? {
            return Ok(());
        }
    }
}

/// Sends every stored item after `seen`, page by page; true when the last one wanted was sent.
async fn catch_up<T, S, Fut>(
    tx: &FeedTx<T>,
    seen: &mut u64,
    stored: &S,
    keep: &impl Fn(&T) -> bool,
    last: &impl Fn(&T) -> bool,
) -> Result<bool, Stop>
where
    T: Numbered,
    S: Fn(u64) -> Fut,
    Fut: Future<Output = OpResult<Vec<T>>>,
{
    loop {
        let page = stored(*seen).await?;
        if page.is_empty() {
            return Ok(false);
        }
        for item in page {
            *seen = item.id();
            if send_kept(tx, item, keep, last).await? {
                return Ok(true);
            }
        }
    }
}

/// Sends `item` if `keep` takes it; true when it was the last one wanted.
async fn send_kept<T>(
    tx: &FeedTx<T>,
    item: T,
    keep: &impl Fn(&T) -> bool,
    last: &impl Fn(&T) -> bool,
) -> Result<bool, Stop> {
    if !keep(&item) {
        return Ok(false);
    }
    let end = last(&item);
    tx.send(item).await?;
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Item(u64);
    impl Numbered for Item {
        fn id(&self) -> u64 {
            self.0
        }
    }

    #[tokio::test]
    async fn the_replay_and_the_live_stream_join_without_a_gap_or_a_repeat() {
        let (live_tx, live) = tokio::sync::broadcast::channel(16);
        // Item 3 is both stored and live (it happened during the replay).
        live_tx.send(Arc::new(Item(3))).unwrap();
        live_tx.send(Arc::new(Item(4))).unwrap();
        let stored =
            |after: u64| async move { Ok((1..=3).filter(|i| *i > after).map(Item).collect::<Vec<_>>()) };
        let mut feed = feed(FeedEnd::Quiet, move |tx| async move {
            replay_then_live(&tx, 0, live, stored, |i: &Item| i.0 != 2, |i| i.0 == 4).await
        });
        let mut got = Vec::new();
        while let Some(item) = feed.next().await {
            got.push(item.unwrap());
        }
        assert_eq!(got, [Item(1), Item(3), Item(4)]);
    }

    #[tokio::test]
    async fn a_failing_producer_tells_the_subscriber_why() {
        let mut feed: Feed<Item> = feed(FeedEnd::Quiet, |_tx| async {
            Err(Stop::Failed(ApiError::new(11, "the state database failed")))
        });
        let first = feed.next().await.unwrap();
        assert_eq!(first.unwrap_err().message, "the state database failed");
        assert!(feed.next().await.is_none());
    }
}
