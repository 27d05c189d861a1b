//! vrd started the way systemd starts it, with its stderr on a real systemd-journald: its log goes
//! to the journal natively, with the fields operators query (PROC, SWARM, TRACE, UID), and no
//! text on stderr. journald runs in a mount namespace of the test's own (tmpfs on /run/systemd,
//! /run/log and /var/log/journal), so the host's journal, if any, is not touched.

use std::path::Path;
use std::process::Command;

use crate::harness::{busybox_image, text};
use crate::require_root;

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// Runs in `unshare -m`: $1 vrd, $2 vr, $3 work dir, $4 cgroup parent, $5 busybox image. Prints the
/// journal as JSON lines after a line `--journal--`.
const SCRIPT: &str = r#"
set -eu
vrd=$1 vr=$2 work=$3 parent=$4 image=$5
mount --make-rprivate /
for d in /run/systemd /run/log /var/log/journal; do
    mkdir -p "$d"
    mount -t tmpfs journal-test "$d"
done
mkdir -p /run/systemd/journal
cleanup() {
    [ -z "${vrd_pid:-}" ] || kill -9 "$vrd_pid" 2>/dev/null || true
    for cg in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
        [ -d "$cg" ] || continue
        find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    done
    [ -z "${journald_pid:-}" ] || kill "$journald_pid" 2>/dev/null || true
}
trap cleanup EXIT
/lib/systemd/systemd-journald & journald_pid=$!
for _ in $(seq 100); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.1; done
# What systemd does for a service whose stderr is the journal: the stream, and JOURNAL_STREAM.
systemd-cat -t vrd-stderr sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" daemon \
    --data-dir "$1/data" --run-dir "$1/run" --cgroup-parent "$2"' "$vrd" "$work" "$parent" &
vrd_pid=$!
export VR_SOCKET="$work/run/vrd.sock"
for _ in $(seq 200); do "$vr" procs list >/dev/null 2>&1 && break; sleep 0.1; done
# A swarm whose stack has no image: its dispatch writes a trace, then aborts.
"$vr" stacks create bare --set "base_image_url=file://$work/none.tar.gz" >/dev/null
"$vr" apps create lone --set "repo_url=$work/none" --set stack=bare >/dev/null
"$vr" swarms create --set app=lone --set version=v1 --set size=1 >/dev/null
"$vr" swarm lone-prod-web v1 >/dev/null 2>&1 || true
cat >"$work/p.yaml" <<YAML
app_name: jour
version: v1
config_name: test
release_hash: abcd1234
proc_name: web
port: 0
host: 127.0.0.1
image_url: file://$image
image_name: busybox
cmd: sleep 600
YAML
"$vr" proc deploy "$work/p.yaml" >/dev/null
for _ in $(seq 100); do "$vr" procs list | grep -q RUNNING && break; sleep 0.1; done
# A proc whose container cannot start: its BACKOFF line must say why.
sed -e 's/proc_name: web/proc_name: nowhere/' -e '$a volumes: [[/nonexistent/vr-journal-test, /data]]' \
    "$work/p.yaml" >"$work/bad.yaml"
"$vr" proc deploy "$work/bad.yaml" >/dev/null
for _ in $(seq 100); do "$vr" procs list | grep -q BACKOFF && break; sleep 0.1; done
"$vr" procs destroy jour-v1-test-abcd1234-nowhere-0 >/dev/null
"$vr" procs stop jour-v1-test-abcd1234-web-0 >/dev/null
"$vr" procs destroy jour-v1-test-abcd1234-web-0 >/dev/null
kill -TERM "$vrd_pid"; wait "$vrd_pid" || true; vrd_pid=""
echo --journal--
journalctl --no-pager -o json
"#;

#[test]
fn under_systemd_vrd_logs_to_the_journal_with_structured_fields() {
    require_root!("under_systemd_vrd_logs_to_the_journal_with_structured_fields");
    assert!(Path::new(JOURNALD).exists(), "{JOURNALD} is missing: apt-get install systemd");
    let work = tempfile::Builder::new().prefix("vrd-journal-").tempdir().unwrap();
    let parent = format!("vrd-test-journal-{}", std::process::id());
    let _cgroups = CgroupGuard(parent.clone());
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", SCRIPT, "journal-test"])
        .arg(env!("CARGO_BIN_EXE_vrd"))
        .arg(crate::harness::vr_client())
        .arg(work.path())
        .arg(&parent)
        .arg(busybox_image())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the script failed:\n{stderr}");
    let journal: Vec<serde_json::Value> = stdout
        .split_once("--journal--\n")
        .map(|(_, j)| j.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default();
    let vrd: Vec<&serde_json::Value> = journal.iter().filter(|e| e["SYSLOG_IDENTIFIER"] == "vrd").collect();
    let has = |pred: &dyn Fn(&serde_json::Value) -> bool| vrd.iter().any(|e| pred(e));
    let all = || format!("{vrd:#?}");
    let proc = "jour-v1-test-abcd1234-web-0";
    assert!(
        has(&|e| e["PROC"] == "jour-v1-test-abcd1234-nowhere-0"
            && e["STATE"] == "BACKOFF"
            && e["ERROR"]
                .as_str()
                .is_some_and(|m| m.contains("/nonexistent/vr-journal-test does not exist"))),
        "a failed start's state line with the launcher's error: {}",
        all()
    );
    assert!(has(&|e| e["MESSAGE"] == "vrd is serving"), "vrd's own lines: {}", all());
    assert!(
        has(&|e| e["MESSAGE"] == "proc state" && e["PROC"] == proc && e["STATE"] == "RUNNING"),
        "a state change with PROC and STATE: {}",
        all()
    );
    assert!(
        has(&|e| e["METHOD"] == "procs.stop" && e["PROC"] == proc && e["UID"] == "0" && e["OUTCOME"] == "ok"),
        "an audited call with PROC and UID: {}",
        all()
    );
    assert!(
        has(&|e| e["SWARM"] == "lone-prod-web" && e["TRACE"].as_str().is_some_and(|t| !t.is_empty())),
        "a dispatch's steps with SWARM and TRACE: {}",
        all()
    );
    let text_lines: Vec<&serde_json::Value> =
        journal.iter().filter(|e| e["SYSLOG_IDENTIFIER"] == "vrd-stderr").collect();
    assert!(text_lines.is_empty(), "nothing went to stderr as text: {text_lines:#?}");
}

/// Removes the test's cgroups, whatever happened.
struct CgroupGuard(String);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let hierarchies =
            std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path());
        for dir in std::iter::once("/sys/fs/cgroup".into())
            .chain(hierarchies)
            .map(|h: std::path::PathBuf| h.join(&self.0))
        {
            if dir.is_dir() {
                let _ = Command::new("find").arg(&dir).args(["-depth", "-type", "d", "-delete"]).status();
            }
        }
    }
}
