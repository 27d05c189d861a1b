//! A bounded HTTP load generator for the zero-downtime test and benchmark (one truth for both):
//! a fixed number of worker threads, each sending one `Connection: close` GET after another to a
//! loopback port, until told to stop or until a time limit. Every answer and every failure is kept
//! with its wall-clock time, so a test can line them up with vrd's own log.
//!
//! A failure is anything a user would notice: no connection, a reset, a timeout, a status other
//! than 200, or an answer with no body.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// What to load and how hard.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The address to send requests to (loopback for one host).
    pub ip: std::net::IpAddr,
    /// The port to send requests to.
    pub port: u16,
    /// The network namespace (a name under /run/netns) the workers send from; none: this one.
    pub netns: Option<String>,
    /// The path to GET.
    pub path: String,
    /// How many requests may be in flight at once.
    pub workers: usize,
    /// The longest a request may take, from connect to the last byte.
    pub timeout: Duration,
    /// Each worker's pause between two requests (keeps the machine usable for the deploys).
    pub pause: Duration,
    /// The load stops by itself after this long, even if nobody stops it.
    pub limit: Duration,
}

/// One answered request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When the last byte arrived.
    pub at: SystemTime,
    /// How long the request took.
    pub took: Duration,
    /// The body.
    pub body: String,
}

/// One failed request.
#[derive(Debug, Clone)]
pub struct Failure {
    /// When it was sent.
    pub sent: SystemTime,
    /// When it failed.
    pub at: SystemTime,
    /// What went wrong.
    pub reason: String,
}

/// Everything a load saw.
#[derive(Debug, Default)]
pub struct Report {
    /// The answers, in no particular order.
    pub answers: Vec<Answer>,
    /// The failures, in no particular order.
    pub failures: Vec<Failure>,
    /// How long the load ran.
    pub ran: Duration,
}

/// A running load; [`Load::stop`] ends it and returns what it saw. Dropped without `stop` (a
/// failing test), its workers still end at once.
pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Report>>,
    started: Instant,
}

impl Load {
    /// Starts `plan.workers` workers.
    pub fn start(plan: &Plan) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let workers = (0..plan.workers)
            .map(|_| {
                let (plan, stop) = (plan.clone(), Arc::clone(&stop));
                std::thread::spawn(move || work(&plan, &stop, started))
            })
            .collect();
        Load { stop, workers, started }
    }

    /// Stops the workers (a request in flight finishes first) and merges what they saw.
    pub fn stop(mut self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let mut report = Report::default();
        for worker in self.workers.drain(..) {
            let seen = worker.join().expect("a load worker panicked");
            report.answers.extend(seen.answers);
            report.failures.extend(seen.failures);
        }
        report.ran = self.started.elapsed();
        report
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn work(plan: &Plan, stop: &AtomicBool, started: Instant) -> Report {
    let mut seen = Report::default();
    if let Some(netns) = &plan.netns {
        enter_netns(netns);
    }
    let target = SocketAddr::new(plan.ip, plan.port);
    while !stop.load(Ordering::SeqCst) && started.elapsed() < plan.limit {
        let begun = Instant::now();
        let sent = SystemTime::now();
        match get_from(target, &plan.path, plan.timeout) {
            Ok(body) => seen.answers.push(Answer { at: SystemTime::now(), took: begun.elapsed(), body }),
            Err(reason) => seen.failures.push(Failure { sent, at: SystemTime::now(), reason }),
        }
        std::thread::sleep(plan.pause);
    }
    seen
}

/// Moves the calling thread into the network namespace `/run/netns/NAME` (a network namespace
/// is a thread's own, so only this worker moves).
fn enter_netns(name: &str) {
    let path = format!("/run/netns/{name}");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

/// One `GET path` on 127.0.0.1:port with `Connection: close`: the body of a 200 answer, or what
/// went wrong.
pub fn get(port: u16, path: &str, timeout: Duration) -> Result<String, String> {
    get_from(SocketAddr::from(([127, 0, 0, 1], port)), path, timeout)
}

/// [`get`] on any address.
pub fn get_from(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut conn = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    conn.set_write_timeout(Some(timeout)).map_err(|e| format!("socket: {e}"))?;
    // One write: a request sent in pieces waits for the proxy's delayed ACK (Nagle), 40 ms each.
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timeout: no complete answer within {timeout:?}"));
        }
        conn.set_read_timeout(Some(left)).map_err(|e| format!("socket: {e}"))?;
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("receive after {} bytes: {e}", text.len())),
        }
    }
    let text = String::from_utf8_lossy(&text);
    let status = text.lines().next().unwrap_or_default();
    if !(status.starts_with("HTTP/1.") && status.split_whitespace().nth(1) == Some("200")) {
        return Err(format!("status: {:?}", if status.is_empty() { "(empty answer)" } else { status }));
    }
    match text.split_once("\r\n\r\n") {
        Some((_, body)) if !body.is_empty() => Ok(body.to_string()),
        _ => Err(format!("no body after {status:?}")),
    }
}
