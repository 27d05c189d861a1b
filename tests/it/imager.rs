//! Stack images (`vr imager build`, VR's vimage) end to end: a real vrd provisions the busybox
//! image with a script in a real container, and the new image then boots as a proc.

use std::path::{Path, PathBuf};
use std::process::Output;

use flate2::read::GzDecoder;
use md5::{Digest, Md5};
use tar::EntryType;

use crate::harness::{busybox_image, text, TestDaemon};
use crate::require_root;

/// One entry of a built tarball.
#[derive(Debug)]
struct Entry {
    path: String,
    kind: EntryType,
    uid: u64,
    mode: u32,
    link: Option<String>,
}

/// The entries of a .tar.gz, with `./` prefixes and trailing slashes removed (the root is `.`).
fn entries(tarball: &Path) -> Vec<Entry> {
    let mut archive = tar::Archive::new(GzDecoder::new(std::fs::File::open(tarball).unwrap()));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let raw = entry.path().unwrap().display().to_string();
        let path = raw.trim_start_matches("./").trim_end_matches('/').to_string();
        out.push(Entry {
            path: if path.is_empty() { ".".into() } else { path },
            kind: entry.header().entry_type(),
            uid: entry.header().uid().unwrap(),
            mode: entry.header().mode().unwrap(),
            link: entry.link_name().unwrap().map(|l| l.display().to_string()),
        });
    }
    out
}

fn find<'a>(entries: &'a [Entry], path: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.path == path)
}

/// A directory holding an image.yaml and its script, where `vr imager build` runs.
struct Stack {
    dir: PathBuf,
}

impl Stack {
    fn new(d: &TestDaemon, name: &str) -> Stack {
        let dir = d.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Stack { dir }
    }

    /// Writes `script` and an image.yaml for it (the script's path relative, as VR users wrote).
    fn write(&self, base: &Path, base_name: &str, new_name: &str, script: &str, env: &str) -> PathBuf {
        std::fs::write(self.dir.join("provision.sh"), script).unwrap();
        let yaml = format!(
            "base_image_url: {}\nbase_image_name: {base_name}\nnew_image_name: {new_name}\nscript_url: provision.sh\n{env}",
            base.display()
        );
        let file = self.dir.join(format!("{new_name}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        file
    }

    fn build(&self, d: &TestDaemon, yaml: &Path) -> Output {
        let mut cmd = d.vr();
        cmd.current_dir(&self.dir).args(["imager", "build", yaml.file_name().unwrap().to_str().unwrap()]);
        cmd.stdin(std::process::Stdio::null()).output().unwrap()
    }
}

const PROVISION: &str = r#"#!/bin/sh
set -e
echo "provisioning for $GREETING as $(id -u), HOME=$HOME"
mkdir -p /usr/local/bin
printf '#!/bin/sh\necho hello from the %s stack\n' "$GREETING" > /usr/local/bin/hello-stack
chmod 755 /usr/local/bin/hello-stack
ln /usr/local/bin/hello-stack /usr/local/bin/hello-again
echo "$PATH" > /etc/provisioned-path
touch /home/app/owned && chown 1000:1000 /home/app/owned
rm /bin/vi
echo done >&2
"#;

#[test]
fn an_image_holds_what_its_script_made_and_boots_as_a_proc() {
    require_root!("an_image_holds_what_its_script_made_and_boots_as_a_proc");
    let d = TestDaemon::start();
    let stack = Stack::new(&d, "stack");
    let yaml =
        stack.write(busybox_image(), "busybox", "stack-1", PROVISION, "env:\n  GREETING: provisioned\n");
    let out = stack.build(&d, &yaml);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("provisioning for provisioned as 0, HOME=/root\n"), "live output: {stdout}");
    assert!(stderr.contains("done\n"), "the script's stderr reaches ours: {stderr}");
    let log = std::fs::read_to_string(stack.dir.join("stack-1.log")).unwrap();
    assert!(log.contains("provisioning for provisioned") && log.contains("done"), "{log}");

    let tarball = stack.dir.join("stack-1.tar.gz");
    let md5 = format!("{:x}", Md5::digest(std::fs::read(&tarball).unwrap()));
    assert_eq!(
        std::fs::read_to_string(stack.dir.join("stack-1.tar.gz.md5")).unwrap(),
        format!("{md5}  stack-1.tar.gz\n")
    );
    assert!(stdout.ends_with(&format!("{md5}  stack-1.tar.gz\n")), "{stdout}");

    let all = entries(&tarball);
    let made = find(&all, "usr/local/bin/hello-stack").or(find(&all, "usr/local/bin/hello-again"));
    assert!(made.is_some_and(|e| e.mode == 0o755), "what the script made is in the image");
    let kinds: Vec<_> = ["usr/local/bin/hello-stack", "usr/local/bin/hello-again"]
        .iter()
        .map(|p| find(&all, p).unwrap().kind)
        .collect();
    assert!(kinds.contains(&EntryType::Link), "a hardlink stays a hardlink: {kinds:?}");
    assert!(find(&all, "bin/vi").is_none(), "a deleted file is gone");
    assert!(find(&all, "provision.sh").is_none(), "the script is not left in the image");
    assert!(find(&all, "etc/resolv.conf").is_none(), "no empty mount point left behind");
    assert_eq!(find(&all, "home/app/owned").unwrap().uid, 1000, "ownership is kept");
    assert_eq!(find(&all, "bin/sh").unwrap().link.as_deref(), Some("/bin/busybox"), "symlinks stay symlinks");
    assert_eq!(find(&all, "tmp").unwrap().mode, 0o1777);

    let proc_yaml = format!(
        "app_name: stacked\nversion: '1'\nconfig_name: test\nrelease_hash: abcd1234\nproc_name: web\nport: 0\n\
         host: 127.0.0.1\nimage_url: file://{}\nimage_name: stack-1\nimage_md5: {md5}\ncmd: hello-stack\n",
        tarball.display()
    );
    let file = d.write("stacked.yaml", &proc_yaml);
    let setup = d.run_vr(&["runner", "setup", file.to_str().unwrap()]);
    assert!(setup.status.success(), "{:?}", text(&setup));
    let run = d.run_vr(&["runner", "run", file.to_str().unwrap()]);
    assert_eq!(text(&run).0, "hello from the provisioned stack\n", "{:?}", text(&run));
    assert!(run.status.success());
}

#[test]
fn a_failing_script_fails_the_build_and_keeps_only_the_log() {
    require_root!("a_failing_script_fails_the_build_and_keeps_only_the_log");
    let d = TestDaemon::start();
    let stack = Stack::new(&d, "failing");
    let script = "#!/bin/sh\necho about to fail\nexit 3\n";
    let yaml = stack.write(busybox_image(), "busybox", "broken", script, "");
    let out = stack.build(&d, &yaml);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("/provision.sh failed with code 3") && stderr.contains("broken.log"), "{stderr}");
    assert_eq!(std::fs::read_to_string(stack.dir.join("broken.log")).unwrap(), "about to fail\n");
    let mut left: Vec<_> = std::fs::read_dir(&stack.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["broken.log", "broken.yaml", "provision.sh"], "no tarball, no md5, no temporary files");
    let work = d.data().join("imager");
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0, "the work dir is removed");
}

#[test]
fn docker_export_bz2_and_xz_tarballs_work_as_bases() {
    require_root!("docker_export_bz2_and_xz_tarballs_work_as_bases");
    let d = TestDaemon::start();
    d.make_dir("base-root");
    let sh = |script: &str| {
        let status =
            std::process::Command::new("sh").arg("-c").arg(script).current_dir(d.dir.path()).status();
        assert!(status.unwrap().success(), "{script}");
    };
    sh(&format!("tar -C base-root -xzf {}", busybox_image().display()));
    // `docker export`: entries without a leading ./ and no entry for the root itself.
    sh("tar -C base-root -cf docker.tar $(ls base-root)");
    sh("tar -C base-root -cjf base.tar.bz2 .");
    sh("tar -C base-root -cJf base.tar.xz .");
    let stack = Stack::new(&d, "bases");
    for (kind, archive) in [("docker", "docker.tar"), ("bz2", "base.tar.bz2"), ("xz", "base.tar.xz")] {
        let script = "#!/bin/sh\ntouch /made-on-$BASE\n";
        let base = d.dir.path().join(archive);
        let yaml =
            stack.write(&base, &format!("base-{kind}"), kind, script, &format!("env: {{BASE: {kind}}}\n"));
        let out = stack.build(&d, &yaml);
        assert!(out.status.success(), "{kind}: {:?}", text(&out));
        let all = entries(&stack.dir.join(format!("{kind}.tar.gz")));
        assert!(find(&all, &format!("made-on-{kind}")).is_some(), "{kind}: the script ran");
        assert!(find(&all, "bin/busybox").is_some(), "{kind}: the base is there");
        assert_eq!(find(&all, ".").map(|e| e.mode), Some(0o755), "{kind}: the root is 0755");
    }
}

#[test]
fn shell_is_a_terminal_in_the_provisioning_container() {
    require_root!("shell_is_a_terminal_in_the_provisioning_container");
    let d = TestDaemon::start();
    let stack = Stack::new(&d, "shell");
    let yaml = stack.write(busybox_image(), "busybox", "shelled", PROVISION, "env:\n  GREETING: hi-there\n");
    let mut cmd = d.vr();
    cmd.current_dir(&stack.dir).args(["imager", "shell", yaml.to_str().unwrap()]);
    let input = b"tty; echo \"[$GREETING]\"; ls /provision.sh; exit 5\n";
    let (status, seen) = crate::harness::run_in_pty(cmd, input, "/provision.sh\r\n");
    assert_eq!(status.code(), Some(5), "{seen}");
    assert!(seen.contains("/dev/pts/0") && seen.contains("[hi-there]"), "{seen}");
    let left: Vec<_> = std::fs::read_dir(&stack.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "a shell writes nothing: {left:?}");
}
