//! systemd's watchdog (issue 13 §3): started as systemd starts it (NOTIFY_SOCKET, WATCHDOG_USEC),
//! vrd says READY=1 and then pings WATCHDOG=1 at half the interval, for as long as it runs.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::harness::TestDaemon;
use crate::require_root;

#[test]
fn vrd_pings_the_watchdog_at_half_its_interval_once_ready() {
    require_root!("vrd_pings_the_watchdog_at_half_its_interval_once_ready");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // 400 ms: a ping every 200 ms.
    let d =
        TestDaemon::start_with_env(&[("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")]);
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while messages.iter().filter(|m: &&String| m.contains("WATCHDOG=1")).count() < 3 {
        let n =
            socket.recv(&mut buf).unwrap_or_else(|e| panic!("no notice from vrd ({e}); got {messages:?}"));
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let ready = messages.iter().position(|m| m.contains("READY=1")).expect("READY=1 first");
    let first_ping = messages.iter().position(|m| m.contains("WATCHDOG=1")).unwrap();
    assert!(ready < first_ping, "pings start once vrd is ready: {messages:?}");
    // And they keep coming at about the asked rate: in 2 s, at 200 ms each, about 10 (never a
    // burst, since a late tick is not caught up; at least a couple even on a loaded machine).
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    while socket.recv(&mut buf).is_ok() {}
    let window = Instant::now();
    let mut pings = 0;
    while window.elapsed() < Duration::from_secs(2) {
        if let Ok(n) = socket.recv(&mut buf) {
            pings += usize::from(String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1"));
        }
    }
    assert!((2..=12).contains(&pings), "{pings} pings in 2 s at one per 200 ms");
    drop(d);
}
