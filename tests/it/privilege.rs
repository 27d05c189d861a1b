//! Who may do what (issue 12 §3): a member of the socket's group is not root. Members (uid 65534
//! in the socket's group) are refused volumes outside the configured prefixes, uid 0, local paths
//! they could not read themselves and admin operations; an admin (a member of the admins group)
//! may do all of it. The callers run `vr` with `setpriv`, so their groups are exactly the ones given.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::harness::{busybox_image, proc_yaml, text, TestDaemon};
use crate::require_root;

const SOCKET_GID: u32 = 4242;
const ADMINS_GID: u32 = 4343;

struct Site {
    d: TestDaemon,
    /// World-readable files the callers name (proc.yaml files, a copy of the image).
    open: PathBuf,
    /// The one host directory members may mount from.
    volumes: PathBuf,
}

fn site() -> Site {
    let probe = tempfile::Builder::new().prefix("vr-privilege-").tempdir().unwrap();
    let open = probe.keep();
    let volumes = open.join("volumes");
    std::fs::create_dir_all(volumes.join("data")).unwrap();
    let toml = format!(
        "socket_gid = {SOCKET_GID}\nadmins_gid = {ADMINS_GID}\nvolume_prefixes = [\"{}\"]\n",
        volumes.display()
    );
    let d = TestDaemon::start_with_config(&toml, &[]);
    // Let the callers reach the socket (its own mode 0660 and group decide) and the open files.
    for dir in [d.dir.path().to_path_buf(), d.dir.path().join("run")] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::copy(busybox_image(), open.join("busybox.tar.gz")).unwrap();
    for path in [&open, &volumes, &volumes.join("data")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(open.join("busybox.tar.gz"), std::fs::Permissions::from_mode(0o644)).unwrap();
    Site { d, open, volumes }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.open);
    }
}

impl Site {
    /// A proc.yaml (world-readable) on the readable copy of the image, with `extra` lines.
    fn proc_file(&self, name: &str, extra: &str) -> String {
        let image = self.open.join("busybox.tar.gz");
        let yaml = proc_yaml(name, 0, &format!("cmd: sleep 60\n{extra}")).replace(
            &format!("file://{}", busybox_image().display()),
            &format!("file://{}", image.display()),
        );
        let path = self.open.join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path.display().to_string()
    }

    /// Runs `vr ARGS` as uid 65534 in the socket's group, plus the admins group when `admin`.
    fn vr_as(&self, admin: bool, args: &[&str]) -> Output {
        let groups = if admin { format!("{SOCKET_GID},{ADMINS_GID}") } else { SOCKET_GID.to_string() };
        Command::new("setpriv")
            .args(["--reuid=65534", &format!("--regid={SOCKET_GID}"), &format!("--groups={groups}"), "--"])
            .arg(crate::harness::vr_client())
            .args(args)
            .env("VR_SOCKET", self.d.socket())
            .current_dir(&self.open)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn refused(out: &Output, needles: &[&str]) {
    let (_, err) = text(out);
    assert!(!out.status.success(), "expected a refusal: {:?}", text(out));
    for needle in needles {
        assert!(err.contains(needle), "the refusal does not say '{needle}': {err}");
    }
}

fn proc_dirs(d: &TestDaemon) -> usize {
    std::fs::read_dir(d.data().join("procs")).map(|r| r.count()).unwrap_or(0)
}

#[test]
fn a_member_may_not_mount_host_dirs_run_as_root_or_read_what_it_could_not() {
    require_root!("a_member_may_not_mount_host_dirs_run_as_root_or_read_what_it_could_not");
    let s = site();
    let etc = s.proc_file("etc", "volumes:\n  - [/etc, /hostetc]");
    refused(&s.vr_as(false, &["runner", "setup", &etc]), &["volume from '/etc'", "needs an admin"]);
    let root = s.proc_file("rootly", "user: root");
    refused(&s.vr_as(false, &["runner", "setup", &root]), &["user 'root'", "needs an admin"]);
    refused(&s.vr_as(false, &["runner", "run", &root]), &["needs an admin"]);

    // An image only root may read, named by the member: vrd does not read it for them.
    let secret = s.open.join("secret.tar.gz");
    std::fs::copy(busybox_image(), &secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sneaky = s.proc_file("sneaky", "");
    let text_of = std::fs::read_to_string(&sneaky).unwrap();
    let image = s.open.join("busybox.tar.gz").display().to_string();
    std::fs::write(&sneaky, text_of.replace(&image, &secret.display().to_string())).unwrap();
    refused(&s.vr_as(false, &["runner", "setup", &sneaky]), &["may not read", "secret.tar.gz"]);
    assert_eq!(proc_dirs(&s.d), 0, "nothing was set up for a refused request");

    // Admin-only operations and definitions.
    refused(&s.vr_as(false, &["hosts", "add", "h9", "--address", "10.0.0.9"]), &["admin role"]);
    refused(&s.vr_as(false, &["hosts", "delete", "h9"]), &["deleting host 'h9'", "needs an admin"]);
    let as_root = ["swarms", "create", "--set", "app=a", "--set", "version=v1", "--set", "run_as=root"];
    refused(&s.vr_as(false, &as_root), &["run_as 'root'", "needs an admin"]);

    // Within the rules a member is served.
    let inside = format!("volumes:\n  - [{}, /data]", s.volumes.join("data").display());
    let fine = s.proc_file("fine", &inside);
    let out = s.vr_as(false, &["runner", "setup", &fine]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(s.vr_as(false, &["runner", "teardown", &fine]).status.success());
}

#[test]
fn an_admin_may_mount_host_dirs_and_run_as_root() {
    require_root!("an_admin_may_mount_host_dirs_and_run_as_root");
    let s = site();
    let both = s.proc_file("both", "user: root\nvolumes:\n  - [/etc, /hostetc, ro]");
    let out = s.vr_as(true, &["runner", "setup", &both]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(s.vr_as(true, &["runner", "teardown", &both]).status.success());
    // Audited with who asked; a member's refusal too.
    refused(&s.vr_as(false, &["runner", "setup", &both]), &["needs an admin"]);
    let audit = s.d.run_vr(&["audit", "--json"]);
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&audit.stdout).unwrap();
    let setups: Vec<&serde_json::Value> =
        entries.iter().filter(|e| e["method"] == "runner.setup" && e["uid"] == 65534).collect();
    assert_eq!(setups.len(), 2, "{entries:?}");
    assert!(
        setups.iter().any(|e| e["outcome"].as_str().unwrap_or("").contains("needs an admin")),
        "{setups:?}"
    );
}

#[test]
fn one_users_stalled_requests_leave_room_for_everyone_else() {
    require_root!("one_users_stalled_requests_leave_room_for_everyone_else");
    let s = site();
    // 256 requests whose bodies never finish, from the member's uid (what used to fill the cap).
    let script = "import socket, sys, time\n\
        held = []\n\
        for _ in range(256):\n\
        \x20   c = socket.socket(socket.AF_UNIX)\n\
        \x20   c.connect(sys.argv[1])\n\
        \x20   try: c.send(b'POST / HTTP/1.1\\r\\nhost: vrd\\r\\ncontent-type: application/json\\r\\ncontent-length: 100\\r\\n\\r\\n{')\n\
        \x20   except OSError: pass\n\
        \x20   held.append(c)\n\
        print('held', flush=True)\n\
        time.sleep(120)\n";
    let mut staller = Command::new("setpriv")
        .args(["--reuid=65534", &format!("--regid={SOCKET_GID}"), &format!("--groups={SOCKET_GID}"), "--"])
        .args(["/usr/bin/python3", "-c", script])
        .arg(s.d.socket())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(staller.stdout.take().unwrap()), &mut line)
        .unwrap();
    assert_eq!(line.trim(), "held");
    let root = s.d.run_vr(&["procs", "list"]);
    let member = s.vr_as(false, &["version"]);
    let _ = staller.kill();
    let _ = staller.wait();
    assert!(root.status.success(), "root was locked out: {:?}", text(&root));
    refused(&member, &["holds 64 connections", "try again"]);
}

#[test]
fn an_image_that_makes_another_name_root_is_refused_even_for_an_admin() {
    require_root!("an_image_that_makes_another_name_root_is_refused_even_for_an_admin");
    let d = TestDaemon::start();
    // The busybox image with its app user turned into uid 0.
    let tree = d.make_dir("sneaky-image");
    let unpacked =
        Command::new("tar").arg("-C").arg(&tree).arg("-xzf").arg(busybox_image()).status().unwrap();
    assert!(unpacked.success());
    let passwd = std::fs::read_to_string(tree.join("etc/passwd")).unwrap();
    let passwd: String = passwd
        .lines()
        .map(|l| if l.starts_with("app:") { "app:x:0:0::/app:/bin/sh".to_string() } else { l.to_string() })
        .map(|l| l + "\n")
        .collect();
    assert!(passwd.contains("app:x:0:0"), "the image has an app user: {passwd}");
    std::fs::write(tree.join("etc/passwd"), passwd).unwrap();
    let image = d.dir.path().join("sneaky.tar.gz");
    crate::harness::tar_gz(&tree, &image);
    let yaml = proc_yaml("sneaky", 0, "user: app\ncmd: id")
        .replace(&format!("file://{}", busybox_image().display()), &format!("file://{}", image.display()))
        .replace("image_name: busybox", "image_name: sneaky");
    let file = d.write("sneaky.yaml", &yaml);
    let out = d.run_vr(&["runner", "setup", file.to_str().unwrap()]);
    refused(&out, &["user 'app' is uid 0", "own uid"]);
}

#[test]
fn only_admins_manage_users_and_tokens() {
    require_root!("only_admins_manage_users_and_tokens");
    let site = site();
    for args in
        [&["users", "list"][..], &["tokens", "list"], &["users", "delete", "x"], &["tokens", "revoke", "1"]]
    {
        refused(&site.vr_as(false, args), &["admin"]);
    }
    let out = site.vr_as(true, &["users", "list"]);
    assert!(out.status.success(), "{:?}", text(&out));
}
