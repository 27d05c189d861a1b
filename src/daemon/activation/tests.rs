//! Tests of socket activation and sd_notify. The socket checks run in-process on sockets made here;
//! whatever needs fd 3 or the environment runs in a fresh process of this test binary (the
//! `child_role` test, selected by `VR_ACTIVATION_ROLE`), so no other test thread shares them; and
//! one test goes through the real `systemd-socket-activate`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, IntoRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

const ROLE: &str = "VR_ACTIVATION_ROLE";
const SOCK: &str = "VR_ACTIVATION_SOCK";

/// This test's name as libtest knows it (the module path without the crate name).
fn child_test_name() -> String {
    let module = module_path!();
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    format!("{module}::child_role")
}

/// libtest arguments that run `child_role` alone, on one thread.
fn child_args() -> [String; 4] {
    [child_test_name(), "--exact".into(), "--nocapture".into(), "--test-threads=1".into()]
}

/// Runs `child_role` in a new process of this test binary as `role`, with `envs` set.
fn run_child(role: &str, envs: &[(&str, &Path)]) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args(child_args()).env(ROLE, role).env_remove("LISTEN_PID").env_remove("LISTEN_FDS");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn the test binary")
}

fn assert_child_passed(role: &str, out: &Output) {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child role {role} failed:\n{text}");
    assert!(text.contains(&format!("child role {role} done")), "child role {role} did not run:\n{text}");
}

/// Binds a socket in the child and makes sure it is fd 3, where systemd would put it.
fn at_fd3(fd: OwnedFd) {
    let raw = fd.into_raw_fd();
    assert_eq!(raw, 3, "fd 3 was already open in the child (inherited?), so the socket landed on {raw}");
}

fn pretend_activated() {
    std::env::set_var("LISTEN_PID", std::process::id().to_string());
    std::env::set_var("LISTEN_FDS", "1");
}

/// The child side: does nothing in a normal test run (no role set).
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let sock = std::env::var_os(SOCK).map(std::path::PathBuf::from);
    match role.as_str() {
        "listener" => {
            let sock = sock.expect("socket path");
            at_fd3(UnixListener::bind(&sock).expect("bind").into());
            pretend_activated();
            let listener = systemd_listener().expect("a usable socket").expect("activated");
            assert_eq!(listener.local_addr().expect("addr").as_pathname(), Some(sock.as_path()));
            let err = listener.accept().expect_err("no connection yet");
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "the listener must be non-blocking");
            let _client = UnixStream::connect(&sock).expect("connect");
            listener.accept().expect("accept the queued connection");
            assert!(systemd_listener().expect("second call").is_none(), "only the first call takes fd 3");
        }
        "datagram" => {
            let sock = sock.expect("socket path");
            at_fd3(UnixDatagram::bind(&sock).expect("bind").into());
            pretend_activated();
            let err = systemd_listener().expect_err("a datagram socket is refused").to_string();
            assert!(err.contains("a Unix datagram socket at"), "{err}");
            assert!(err.contains(&sock.display().to_string()), "{err}");
        }
        "other-pid" => {
            at_fd3(UnixListener::bind(sock.expect("socket path")).expect("bind").into());
            std::env::set_var("LISTEN_PID", (std::process::id() + 1).to_string());
            std::env::set_var("LISTEN_FDS", "1");
            assert!(systemd_listener().expect("not for us").is_none());
        }
        "notify" => {
            notify_ready("serving /run/vrd/vrd.sock");
            notify_stopping();
        }
        "socket-activate" => {
            // Started by systemd-socket-activate on the first connection: serve that one.
            let listener = systemd_listener().expect("a usable socket").expect("activated");
            listener.set_nonblocking(false).expect("blocking");
            let (mut conn, _) = listener.accept().expect("accept");
            conn.write_all(b"hello from fd 3").expect("write");
        }
        other => panic!("unknown child role {other}"),
    }
    println!("child role {role} done");
}

#[test]
fn not_activated_is_none() {
    // LISTEN_PID is not set for this test binary (cargo test), so there is nothing to take.
    assert!(std::env::var_os("LISTEN_PID").is_none(), "run the tests outside socket activation");
    assert!(systemd_listener().expect("no error").is_none());
}

#[test]
fn activated_listener_is_taken_and_non_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("vrd.sock");
    assert_child_passed("listener", &run_child("listener", &[(SOCK, &sock)]));
}

#[test]
fn activation_for_another_pid_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("vrd.sock");
    assert_child_passed("other-pid", &run_child("other-pid", &[(SOCK, &sock)]));
}

#[test]
fn a_datagram_socket_on_fd3_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("vrd.sock");
    assert_child_passed("datagram", &run_child("datagram", &[(SOCK, &sock)]));
}

#[test]
fn checks_accept_only_listening_unix_stream_sockets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ok.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    assert_eq!(check_listening_unix_stream(listener.as_fd()).expect("ok"), path.display().to_string());

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let err = check_listening_unix_stream(tcp.as_fd()).expect_err("tcp").to_string();
    assert!(err.contains("it is an IPv4 socket,"), "{err}");

    let (a, _b) = UnixStream::pair().expect("pair");
    let err = check_listening_unix_stream(a.as_fd()).expect_err("connected").to_string();
    assert!(err.contains("not listening"), "{err}");

    let file = std::fs::File::open("/dev/null").expect("open");
    let err = check_listening_unix_stream(file.as_fd()).expect_err("file").to_string();
    assert!(err.contains("it is not a socket"), "{err}");
    assert!(err.contains("ListenStream=/run/vrd/vrd.sock"), "every error says what to do: {err}");
}

#[test]
fn notify_sends_ready_status_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&path).expect("bind");
    notify.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    assert_child_passed("notify", &run_child("notify", &[("NOTIFY_SOCKET", &path)]));
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("the ready message");
    assert_eq!(String::from_utf8_lossy(&buf[..n]), "READY=1\nSTATUS=serving /run/vrd/vrd.sock\n");
    let n = notify.recv(&mut buf).expect("the stopping message");
    assert_eq!(String::from_utf8_lossy(&buf[..n]), "STOPPING=1\nSTATUS=stopping; procs keep running\n");
}

#[test]
fn notify_without_notify_socket_does_nothing() {
    // NOTIFY_SOCKET is unset under cargo test; neither call may fail or panic.
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        notify_ready("ready");
        notify_stopping();
    }
}

/// End to end through systemd's own tool: `systemd-socket-activate -l SOCK` binds the socket,
/// starts the child on the first connection with LISTEN_PID/LISTEN_FDS set, and the child serves it.
#[test]
fn systemd_socket_activate_passes_a_usable_socket() {
    let tool = "systemd-socket-activate";
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    if !found {
        let reason =
            format!("SKIPPED {}: {tool} is not installed (Debian package systemd)", child_test_name());
        assert!(std::env::var("VRD_TEST_STRICT").as_deref() != Ok("1"), "{reason}, and VRD_TEST_STRICT=1");
        println!("{reason}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("vrd.sock");
    let exe = std::env::current_exe().expect("the test binary's path");
    // The tool passes on only LISTEN_* and the variables named with -E, not its whole environment.
    let mut child = Command::new(tool)
        .arg("-l")
        .arg(&sock)
        .arg(format!("-E{ROLE}=socket-activate"))
        .arg(exe)
        .args(child_args())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn systemd-socket-activate");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        match UnixStream::connect(&sock) {
            Ok(conn) => break conn,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => {
                let _ = child.kill();
                panic!("{tool} never listened on {}: {err}", sock.display());
            }
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut got = String::new();
    let read = conn.read_to_string(&mut got);
    let out = child.wait_with_output().expect("wait for the child");
    assert_child_passed("socket-activate", &out);
    read.expect("read the greeting");
    assert_eq!(got, "hello from fd 3");
}
