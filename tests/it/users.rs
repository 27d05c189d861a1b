//! `vr users` and `vr tokens` through a real vrd (issue 14 §1): a user made with a password read
//! from stdin, listed without it, its role changed, tokens shown once and listed by state; the
//! audit log names the calls but never holds a password or a token.

use crate::harness::{text, TestDaemon};
use crate::require_root;

/// `vr ARGS` with `input` on stdin; (success, stdout, stderr).
fn vr_with_input(d: &TestDaemon, args: &[&str], input: &str) -> (bool, String, String) {
    let out = d.run_vr_with_input(args, input);
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

fn ok(d: &TestDaemon, args: &[&str]) -> String {
    let out = d.run_vr(args);
    assert!(out.status.success(), "vr {args:?}: {:?}", text(&out));
    text(&out).0
}

#[test]
fn users_and_tokens_are_managed_with_vr_and_no_secret_is_kept_in_the_clear() {
    require_root!("users_and_tokens_are_managed_with_vr_and_no_secret_is_kept_in_the_clear");
    let d = TestDaemon::start();
    let password = "a long enough passphrase";
    let (made, out, err) = vr_with_input(
        &d,
        &["users", "create", "alice", "--role", "deployer", "--password-stdin"],
        &format!("{password}\n"),
    );
    assert!(made, "{out}{err}");
    assert!(out.contains("user alice created (deployer)"), "{out}");
    let (again, _, err) =
        vr_with_input(&d, &["users", "create", "alice", "--password-stdin"], "another long one\n");
    assert!(!again && err.contains("exists already"), "{err}");
    let (short, _, err) = vr_with_input(&d, &["users", "create", "bob", "--password-stdin"], "short\n");
    assert!(!short && err.contains("at least 10"), "{err}");
    let (bad_role, _, err) = vr_with_input(&d, &["users", "create", "bob", "--role", "root"], "");
    assert!(!bad_role && err.contains("viewer, deployer or admin"), "{err}");

    let listed = ok(&d, &["users", "list"]);
    assert!(listed.lines().any(|l| l.starts_with("alice ") && l.contains("deployer")), "{listed}");
    assert!(ok(&d, &["users", "role", "alice", "admin"]).contains("alice is now admin"));

    let token = ok(&d, &["tokens", "create", "--user", "alice", "--name", "laptop", "--expires", "30d"]);
    let token = token.trim();
    assert!(token.starts_with("vrt_") && token.len() == 68, "{token}");
    let tokens = ok(&d, &["tokens", "list"]);
    let row = tokens.lines().find(|l| l.contains("laptop")).unwrap_or_else(|| panic!("{tokens}"));
    assert!(row.contains("alice") && row.contains("expires"), "{tokens}");
    let id = row.split_whitespace().next().unwrap();
    assert!(ok(&d, &["tokens", "revoke", id]).contains("revoked"));
    assert!(ok(&d, &["tokens", "list", "--user", "alice"]).contains("revoked"));
    let missing = d.run_vr(&["tokens", "revoke", "999"]);
    assert!(!missing.status.success() && text(&missing).1.contains("no token 999"), "{:?}", text(&missing));

    // The last admin cannot be deleted; another admin can delete the first.
    let (_, _, _) = vr_with_input(
        &d,
        &["users", "create", "carol", "--role", "admin", "--password-stdin"],
        "carol's long password\n",
    );
    assert!(ok(&d, &["users", "delete", "alice"]).contains("deleted"));
    let last = d.run_vr(&["users", "delete", "carol"]);
    assert!(!last.status.success() && text(&last).1.contains("last admin"), "{:?}", text(&last));

    // The audit log has the calls, never the password or the token.
    let audit = ok(&d, &["audit", "--json"]);
    assert!(audit.contains("users.create") && audit.contains("tokens.create"), "{audit}");
    assert!(!audit.contains(password) && !audit.contains(&token[4..]), "a secret reached the audit log");
    let mut db = std::fs::read(d.data().join("state.db")).unwrap();
    db.extend(std::fs::read(d.data().join("state.db-wal")).unwrap_or_default());
    let db = String::from_utf8_lossy(&db);
    assert!(db.contains("$argon2id$"), "the password hashes are where this test looks");
    assert!(!db.contains(password) && !db.contains(&token[4..]), "a secret is stored in the clear");
}
