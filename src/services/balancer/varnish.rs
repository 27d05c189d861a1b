//! The varnish balancer: VR's `<include_dir>/<pool_file_prefix><pool>.vcl` pool file and its
//! `include` line in `<include_dir>/<main_pool_file>`, then `main_vcl` loaded under a new name with
//! `vcl.load` and switched to with `vcl.use` (atomic: requests see the old VCL or the new one),
//! then older vr-loaded VCLs discarded. A VCL that does not compile leaves the running one active
//! and the files restored, and the error quotes varnish's compiler.
//!
//! Deviations from VR, both forced by the Varnish that runs today:
//! - VR wrote `director <pool> round-robin { {.backend={...}} }`, Varnish 3 syntax that Varnish 4
//!   and later refuse. vr writes one `backend <pool>_<n>` per node and a `vcl_init` that builds
//!   the director `<pool>` with vmod_directors' `round_robin` (Varnish concatenates every
//!   `vcl_init`, so each pool file brings its own). VR's comment line still comes first, the file
//!   name and the include list are VR's, and each backend keeps VR's `.host="H"; .port="P"`
//!   spelling so VR's pattern reads both forms.
//! - VR wrote an empty file for a pool with no nodes, which leaves any `<pool>.backend()` in the
//!   main VCL pointing at nothing and the VCL uncompilable. vr writes the director with no
//!   backends: the VCL compiles and the pool answers 503 until it has nodes. For the same reason
//!   a pool's file and include line stay when the pool is emptied (VR never pruned them either).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use async_trait::async_trait;
use regex::Regex;

use super::check::{self, HostPort};
use super::command::{self, CONTROL_TIMEOUT};
use super::files::{self, Snapshot};
use super::{Balancer, BalancerError, Node};
use crate::model::balancer::VarnishConfig;

/// VR's pattern for a backend's address; it matches VR's files and vr's.
static BACKEND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"host="(.*?)"; .port="(.*?)""#).expect("a constant pattern"));

/// VR's first line, kept so people and tools that knew it still recognise the file.
const HEADER: &str = "// This pool was written by Velociraptor.  You probably shouldn't edit it.";

/// The names vr loads its VCLs under start with this, so it discards only its own.
const VCL_PREFIX: &str = "vr-";

/// The pool file for `pool` with the given backends (see the module comment for the form).
pub fn render(pool: &str, backends: &[HostPort<'_>]) -> String {
    let mut text =
        format!("\n{HEADER}\n// Varnish 4+ form of VR's round-robin director.\nimport directors;\n\n");
    for (i, b) in backends.iter().enumerate() {
        text += &format!("backend {pool}_{i} {{ .host=\"{}\"; .port=\"{}\"; }}\n", b.host, b.port);
    }
    text += &format!("\nsub vcl_init {{\n  new {pool} = directors.round_robin();\n");
    for i in 0..backends.len() {
        text += &format!("  {pool}.add_backend({pool}_{i});\n");
    }
    text + "}\n"
}

/// The nodes of a pool file, VR's form or vr's, read with VR's pattern.
pub fn parse(text: &str) -> BTreeSet<Node> {
    let pair = |c: regex::Captures<'_>| format!("{}:{}", &c[1], &c[2]);
    BACKEND.captures_iter(text).map(pair).collect()
}

/// VCL names a director must be: a letter first, then letters, digits, `_` or `-`.
fn vcl_pool_name(balancer: &str, pool: &str) -> Result<(), BalancerError> {
    check::pool_name(balancer, pool)?;
    if !pool.starts_with(|c: char| c.is_ascii_alphabetic()) || pool.contains('.') {
        return Err(BalancerError::Invalid(format!(
            "balancer '{balancer}': pool name '{pool}' is not a VCL name; a varnish pool starts with a \
             letter and holds only letters, digits, '_' and '-'"
        )));
    }
    Ok(())
}

/// One `[balancers.NAME]` of kind varnish.
pub struct Varnish {
    name: String,
    cfg: VarnishConfig,
    /// Every change rewrites the shared include list and loads the whole VCL, so changes of
    /// different pools go one at a time too.
    writing: tokio::sync::Mutex<()>,
}

impl Varnish {
    /// The balancer called `name`; refuses an empty admin command.
    pub fn new(name: &str, cfg: &VarnishConfig) -> Result<Varnish, BalancerError> {
        if cfg.admin_cmd.is_empty() {
            return Err(BalancerError::Invalid(format!(
                "balancer '{name}': admin_cmd is empty; give varnishadm and its flags, e.g. \
                 [\"varnishadm\", \"-n\", \"/var/lib/varnish\"]"
            )));
        }
        Ok(Varnish { name: name.to_string(), cfg: cfg.clone(), writing: tokio::sync::Mutex::default() })
    }

    fn pool_path(&self, pool: &str) -> PathBuf {
        self.cfg.include_dir.join(format!("{}{pool}.vcl", self.cfg.pool_file_prefix))
    }

    fn main_pool_path(&self) -> PathBuf {
        self.cfg.include_dir.join(&self.cfg.main_pool_file)
    }

    /// VR's include line: the pool file's full path.
    fn include_line(&self, pool: &str) -> String {
        format!("include \"{}\";", self.pool_path(pool).display())
    }

    /// Makes the pool file hold `change(current nodes)` and has varnish load it.
    async fn change(
        &self,
        pool: &str,
        change: impl FnOnce(&mut BTreeSet<Node>),
    ) -> Result<(), BalancerError> {
        vcl_pool_name(&self.name, pool)?;
        let _one_at_a_time = self.writing.lock().await;
        let pool_file = Snapshot::take(&self.pool_path(pool)).await?;
        let main_file = Snapshot::take(&self.main_pool_path()).await?;
        let mut nodes = parse(pool_file.before().unwrap_or_default());
        change(&mut nodes);
        let wanted = render(pool, &check::nodes(&self.name, pool, &nodes)?);
        let include = self.include_line(pool);
        let listed = main_file.before().unwrap_or_default();
        let include_missing = !listed.contains(&include);
        if pool_file.before() == Some(wanted.as_str()) && !include_missing {
            return Ok(());
        }
        let written =
            self.write(pool, &wanted, include_missing.then(|| format!("{listed}\n{include}"))).await;
        match written {
            Ok(()) => Ok(()),
            Err(e) => Err(files::restore_all(&[pool_file, main_file], e).await),
        }
    }

    /// Writes the pool file (and the include list when it changes) and loads the result.
    async fn write(&self, pool: &str, text: &str, main_text: Option<String>) -> Result<(), BalancerError> {
        files::put(&self.pool_path(pool), Some(text)).await?;
        if let Some(main_text) = main_text {
            files::put(&self.main_pool_path(), Some(&main_text)).await?;
        }
        self.load(pool).await
    }

    /// `vcl.load` then `vcl.use` under a fresh name, then discards the older vr-loaded VCLs.
    async fn load(&self, pool: &str) -> Result<(), BalancerError> {
        let vcl = fresh_vcl_name();
        let main = self.cfg.main_vcl.display().to_string();
        self.admin(pool, &["vcl.load", &vcl, &main]).await?;
        if let Err(e) = self.admin(pool, &["vcl.use", &vcl]).await {
            let _ = self.admin(pool, &["vcl.discard", &vcl]).await;
            return Err(e);
        }
        tracing::info!(balancer = %self.name, pool, vcl, "varnish switched to a new VCL");
        self.discard_older(pool, &vcl).await;
        Ok(())
    }

    /// Discards the vr-loaded VCLs that are no longer active. Best effort: one still busy with
    /// requests is refused and left for the next change.
    async fn discard_older(&self, pool: &str, active: &str) {
        let listed = match self.admin(pool, &["vcl.list", "-j"]).await {
            Ok(out) => out,
            Err(e) => return tracing::warn!(balancer = %self.name, "could not list VCLs to discard: {e}"),
        };
        for name in idle_vr_vcls(&listed.stdout) {
            if name != active {
                if let Err(e) = self.admin(pool, &["vcl.discard", &name]).await {
                    tracing::warn!(balancer = %self.name, vcl = name, "could not discard: {e}");
                }
            }
        }
    }

    async fn admin(&self, pool: &str, words: &[&str]) -> Result<command::Printed, BalancerError> {
        let mut argv = self.cfg.admin_cmd.clone();
        argv.extend(words.iter().map(|w| (*w).to_string()));
        let what = format!(
            "balancer '{}': `{}` after changing pool '{pool}' ({}; the previous files are back in place \
             and varnish keeps its running VCL: fix what varnish reports and retry)",
            self.name,
            command::shown(&argv),
            self.pool_path(pool).display()
        );
        command::run(&what, &argv, None, CONTROL_TIMEOUT).await
    }
}

/// A name no earlier `vcl.load` of this vrd used (time plus a counter, so two loads in one
/// nanosecond or a clock step back still differ).
fn fresh_vcl_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{VCL_PREFIX}{nanos}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The names in `vcl.list -j` output that vr loaded and that are not active.
fn idle_vr_vcls(json: &str) -> Vec<String> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str(json) else { return Vec::new() };
    items
        .iter()
        .filter(|v| v["status"].as_str().is_some_and(|s| s != "active"))
        .filter_map(|v| v["name"].as_str())
        .filter(|n| n.starts_with(VCL_PREFIX))
        .map(str::to_string)
        .collect()
}

#[async_trait]
impl Balancer for Varnish {
    async fn get_nodes(&self, pool: &str) -> Result<BTreeSet<Node>, BalancerError> {
        vcl_pool_name(&self.name, pool)?;
        Ok(files::read_optional(&self.pool_path(pool)).await?.map(|t| parse(&t)).unwrap_or_default())
    }

    async fn add_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        check::nodes(&self.name, pool, nodes)?;
        self.change(pool, |all| all.extend(nodes.iter().cloned())).await
    }

    async fn delete_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        self.change(pool, |all| all.retain(|n| !nodes.contains(n))).await
    }

    async fn delete_pool_if_empty(&self, _pool: &str) -> Result<(), BalancerError> {
        // The emptied pool's file stays (see the module comment): the main VCL may name it.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(list: &[&str]) -> BTreeSet<Node> {
        list.iter().map(|n| (*n).to_string()).collect()
    }

    #[test]
    fn renders_a_vmod_directors_pool_that_vr_pattern_still_reads() {
        let backends = [HostPort { host: "10.0.0.1", port: 5001 }, HostPort { host: "h2", port: 5002 }];
        let text = render("web", &backends);
        let expected = "\n// This pool was written by Velociraptor.  You probably shouldn't edit it.\n\
            // Varnish 4+ form of VR's round-robin director.\n\
            import directors;\n\n\
            backend web_0 { .host=\"10.0.0.1\"; .port=\"5001\"; }\n\
            backend web_1 { .host=\"h2\"; .port=\"5002\"; }\n\n\
            sub vcl_init {\n  new web = directors.round_robin();\n  web.add_backend(web_0);\n  \
            web.add_backend(web_1);\n}\n";
        assert_eq!(text, expected);
        assert_eq!(parse(&text), nodes(&["10.0.0.1:5001", "h2:5002"]));
        let empty = render("web", &[]);
        assert!(empty.contains("new web = directors.round_robin();\n}") && !empty.contains("backend web_"));
        assert_eq!(parse(&empty), BTreeSet::new());
    }

    #[test]
    fn reads_vr_varnish3_files() {
        let vr = "\n// This pool was written by Velociraptor.  You probably shouldn't edit it.\n\
            director web round-robin {\n  {.backend={.host=\"a\"; .port=\"50\";}}\n  \
            {.backend={.host=\"b\"; .port=\"9000\";}}\n}\n";
        assert_eq!(parse(vr), nodes(&["a:50", "b:9000"]));
        assert_eq!(parse(""), BTreeSet::new());
    }

    #[test]
    fn pool_names_must_be_vcl_names() {
        vcl_pool_name("v", "my-app_2").unwrap();
        for bad in ["2web", "web.prod", "_x", "a/b"] {
            assert!(vcl_pool_name("v", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_idle_vcls_vr_loaded_are_discarded() {
        let listed = r#"[ 2, ["vcl.list", "-j"], 1795680846.575,
            {"status": "available", "state": "auto", "temperature": "warm", "busy": 0, "name": "boot"},
            {"status": "available", "state": "auto", "temperature": "cold", "busy": 0, "name": "vr-1-0"},
            {"status": "active", "state": "auto", "temperature": "warm", "busy": 0, "name": "vr-2-1"}
        ]"#;
        assert_eq!(idle_vr_vcls(listed), vec!["vr-1-0".to_string()]);
        assert!(idle_vr_vcls("not json").is_empty());
        assert_ne!(fresh_vcl_name(), fresh_vcl_name());
    }
}
