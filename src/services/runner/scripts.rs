//! The files vr writes into a proc's root (VR §3.3–3.4): /proc.sh, /env.sh, /settings.yaml, and the
//! uptest driver. Pure text generation, so the exact environment order is unit-tested.

/// Quotes a value for a POSIX shell: single quotes, with `'` written as `'\''`. VR wrote values
/// unescaped, so a `"` or `$` in config broke or changed them.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// /env.sh: one `export NAME='value'` line per proc.yaml `env` entry, in file order.
pub fn env_sh(env: &[(String, String)]) -> String {
    let mut out = String::from("# Written by vr from proc.yaml `env`.\n");
    for (name, value) in env {
        out.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    out
}

/// The default search path, set first so buildpacks' .profile.d scripts can prepend to it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Shell builtins and keywords: `exec` cannot run them, so commands starting with one go through
/// `sh -c` (e.g. `exit 3`, `cd app && ./web`, `ulimit -n 4096; ./web`).
const SHELL_ONLY: &[&str] = &[
    ".", ":", "alias", "bg", "break", "case", "cd", "command", "continue", "do", "done", "elif", "else",
    "esac", "eval", "exec", "exit", "export", "fg", "fi", "for", "function", "getopts", "hash", "if", "jobs",
    "local", "read", "readonly", "return", "select", "set", "shift", "source", "then", "time", "times",
    "trap", "type", "ulimit", "umask", "unalias", "unset", "until", "wait", "while", "!", "{", "}",
];

/// Whether a command is a plain program with arguments (variables allowed), which proc.sh can
/// `exec` itself; anything with shell syntax goes through `sh -c`.
fn is_simple_command(command: &str) -> bool {
    let first_word = command.split_whitespace().next().unwrap_or("");
    !command.is_empty()
        && !first_word.contains('=')
        && !SHELL_ONLY.contains(&first_word)
        && !command.contains("$(")
        && !command.chars().any(|c| ";&|<>()`\\\"'*?[]{}#~\n".contains(c))
}

/// The line of proc.sh that starts the command: `exec CMD` for a simple command (VR's form; `$VARS`
/// expand, bb #26), else `exec /bin/sh -c 'CMD'` as Heroku runs Procfile lines, so `a && b` or
/// `a; b` work (VR's bare `exec` broke on them). Either way the app itself ends up pid 1.
fn exec_line(command: &str) -> String {
    if is_simple_command(command) {
        format!("exec {command}")
    } else {
        format!("exec /bin/sh -c {}", shell_quote(command))
    }
}

/// The argv of a command that needs no shell at all: simple (see [`is_simple_command`]) and without
/// `$`, so splitting on whitespace is exactly what the shell would do. `None` sends it via proc.sh.
pub fn direct_argv(command: &str) -> Option<Vec<String>> {
    (is_simple_command(command) && !command.contains('$'))
        .then(|| command.split_whitespace().map(str::to_string).collect())
}

/// The environment proc.sh exports, in its order (a later entry replaces an earlier one of the same
/// name), for a proc without .profile.d scripts: the launcher can then exec the app directly.
pub fn direct_env(env: &[(String, String)], port: u16) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let base = [("PATH", DEFAULT_PATH), ("HOME", "/app"), ("TMPDIR", "/tmp")];
    let pairs = base.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain(env.iter().cloned());
    let tail = [
        ("APP_SETTINGS_YAML".to_string(), "/settings.yaml".to_string()),
        ("PORT".to_string(), port.to_string()),
    ];
    for (name, value) in pairs.chain(tail) {
        out.retain(|(k, _)| *k != name);
        out.push((name, value));
    }
    out
}

/// /proc.sh in Heroku's order: PATH, HOME and TMPDIR → env.sh (the release's config and env) →
/// .profile.d (so a buildpack's script builds on the config, e.g. prepends `.apt/usr/bin` to a
/// PATH the config set) → APP_SETTINGS_YAML → PORT (last, so nothing overrides it). VR sourced
/// .profile.d first, so config_vars' PATH erased what the scripts had added. `proc.sh run` starts the command (see [`exec_line`]);
/// `proc.sh PROGRAM ARGS...` execs that instead (shells and uptests get the same environment).
pub fn proc_sh(command: &str, port: u16) -> String {
    format!(
        r#"#!/bin/sh
# Written by vr. Sets the app's environment, then starts it.
export PATH={path}
export HOME=/app
export TMPDIR=/tmp
cd /app 2>/dev/null || cd /
. /env.sh
for f in /app/.profile.d/*; do
  [ -f "$f" ] && . "$f"
done
export APP_SETTINGS_YAML=/settings.yaml
export PORT={port}
if [ "$1" = run ]; then
  {exec_line}
fi
exec "$@"
"#,
        path = DEFAULT_PATH,
        exec_line = exec_line(command),
    )
}

/// Where the uptest driver and its results live inside the uptest container.
pub const UPTEST_DIR: &str = "/.vr-uptest";

/// The uptest driver (VR's uptester, in shell): runs each executable regular file of
/// /app/uptests/<proc> in name order (the glob skips dotfiles) as `<test> <host> <port>`, keeping
/// its combined output and exit code as `N.name`, `N.out`, `N.rc` in the results dir.
pub fn uptest_sh(proc_type: &str, host: &str, port: u16) -> String {
    format!(
        r#"#!/bin/sh
# Written by vr: runs the uptests of one proc.
out={dir}
n=0
for t in /app/uptests/{proc}/*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  n=$((n + 1))
  printf '%s' "${{t##*/}}" > "$out/$n.name"
  "$t" {host} {port} > "$out/$n.out" 2>&1
  echo $? > "$out/$n.rc"
done
"#,
        dir = UPTEST_DIR,
        proc = proc_type,
        host = shell_quote(host),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_quoted_exactly() {
        let env = vec![("A".to_string(), "it's \"$HOME\"".to_string())];
        assert_eq!(env_sh(&env).lines().nth(1).unwrap(), r#"export A='it'\''s "$HOME"'"#);
    }

    #[test]
    fn port_is_set_after_everything_that_could_override_it() {
        let sh = proc_sh("busybox httpd -f -p $PORT", 5000);
        let at = |needle: &str| sh.find(needle).unwrap_or_else(|| panic!("{needle} missing"));
        assert!(at("HOME=/app") < at(". /env.sh"));
        assert!(at(". /env.sh") < at(".profile.d"), "config first, .profile.d builds on it (Heroku)");
        assert!(at(".profile.d") < at("APP_SETTINGS_YAML"));
        assert!(at("APP_SETTINGS_YAML") < at("PORT=5000"));
        assert!(sh.contains("\n  exec busybox httpd -f -p $PORT\n"));
    }

    #[test]
    fn only_commands_without_shell_work_skip_the_shell() {
        assert_eq!(direct_argv("/bin/true"), Some(vec!["/bin/true".to_string()]));
        assert_eq!(
            direct_argv("busybox  httpd -f"),
            Some(vec!["busybox".into(), "httpd".into(), "-f".into()])
        );
        assert_eq!(direct_argv("httpd -p $PORT"), None, "variables need the shell");
        assert_eq!(direct_argv("a && b"), None);
    }

    #[test]
    fn the_direct_environment_matches_proc_sh_order() {
        let env = vec![("PORT".to_string(), "1".to_string()), ("HOME".to_string(), "/x".to_string())];
        let out = direct_env(&env, 5000);
        let get = |k: &str| out.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PORT"), Some("5000"), "PORT is last and wins");
        assert_eq!(get("HOME"), Some("/x"), "proc.yaml env comes after the defaults, as in proc.sh");
        assert_eq!(out.last().unwrap().0, "PORT");
        assert_eq!(out.iter().filter(|(k, _)| k == "PORT").count(), 1);
    }

    #[test]
    fn shell_syntax_goes_through_sh_c() {
        assert_eq!(exec_line("./web --port $PORT"), "exec ./web --port $PORT");
        assert_eq!(exec_line("cd app && ./web"), "exec /bin/sh -c 'cd app && ./web'");
        assert_eq!(exec_line("FOO=1 ./web"), "exec /bin/sh -c 'FOO=1 ./web'");
        assert_eq!(exec_line("exit 3"), "exec /bin/sh -c 'exit 3'", "a builtin can't be exec'd");
        assert_eq!(exec_line("echo $(date)"), "exec /bin/sh -c 'echo $(date)'");
        assert_eq!(exec_line("trap 'x' TERM; y"), "exec /bin/sh -c 'trap '\\''x'\\'' TERM; y'");
    }
}
