//! The exec balancer: an external program does the work. Each call runs `program args...` once
//! with one JSON request on stdin:
//!
//! `{"op": "get_nodes"|"add_nodes"|"delete_nodes"|"delete_pool_if_empty", "balancer": NAME,
//! "pool": POOL, "nodes": ["host:port", ...]}`
//!
//! (`nodes` is empty for get_nodes and delete_pool_if_empty). For get_nodes the program prints
//! `{"nodes": [...]}` on stdout; for the others its stdout is ignored. A non-zero exit is an error
//! carrying its stderr; a program still running after `timeout_secs` is killed.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{command, Balancer, BalancerError, Node};
use crate::model::balancer::ExecConfig;

/// What the program reads on stdin.
#[derive(Debug, Serialize)]
struct Request<'a> {
    op: &'static str,
    balancer: &'a str,
    pool: &'a str,
    nodes: Vec<&'a str>,
}

/// What get_nodes expects on stdout.
#[derive(Debug, Deserialize)]
struct NodesAnswer {
    nodes: BTreeSet<Node>,
}

/// One `[balancers.NAME]` of kind exec.
pub struct Exec {
    name: String,
    argv: Vec<String>,
    timeout: Duration,
}

impl Exec {
    /// The balancer called `name`; refuses a relative program path (vrd's working directory is
    /// not the user's).
    pub fn new(name: &str, cfg: &ExecConfig) -> Result<Exec, BalancerError> {
        if !cfg.program.is_absolute() {
            return Err(BalancerError::Invalid(format!(
                "balancer '{name}': program '{}' is not an absolute path; give the full path",
                cfg.program.display()
            )));
        }
        let mut argv = vec![cfg.program.display().to_string()];
        argv.extend(cfg.args.iter().cloned());
        Ok(Exec { name: name.to_string(), argv, timeout: Duration::from_secs(cfg.timeout_secs) })
    }

    async fn call(
        &self,
        op: &'static str,
        pool: &str,
        nodes: &BTreeSet<Node>,
    ) -> Result<command::Printed, BalancerError> {
        let request =
            Request { op, balancer: &self.name, pool, nodes: nodes.iter().map(String::as_str).collect() };
        let input = serde_json::to_vec(&request).map_err(|e| {
            BalancerError::Invalid(format!("balancer '{}': encoding the {op} request: {e}", self.name))
        })?;
        let what =
            format!("balancer '{}': {op} of pool '{pool}' by `{}`", self.name, command::shown(&self.argv));
        command::run(&what, &self.argv, Some(&input), self.timeout).await
    }
}

#[async_trait]
impl Balancer for Exec {
    async fn get_nodes(&self, pool: &str) -> Result<BTreeSet<Node>, BalancerError> {
        let out = self.call("get_nodes", pool, &BTreeSet::new()).await?;
        let answer: NodesAnswer = serde_json::from_str(&out.stdout).map_err(|e| BalancerError::Command {
            what: format!("balancer '{}': reading get_nodes' answer for pool '{pool}'", self.name),
            output: format!(
                "{e}; the program must print {{\"nodes\": [\"host:port\", ...]}}, it printed: {}",
                out.stdout.trim()
            ),
        })?;
        Ok(answer.nodes)
    }

    async fn add_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        self.call("add_nodes", pool, nodes).await.map(drop)
    }

    async fn delete_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        self.call("delete_nodes", pool, nodes).await.map(drop)
    }

    async fn delete_pool_if_empty(&self, pool: &str) -> Result<(), BalancerError> {
        self.call("delete_pool_if_empty", pool, &BTreeSet::new()).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(script: &str, timeout_secs: u64) -> Exec {
        let cfg =
            ExecConfig { program: "/bin/sh".into(), args: vec!["-c".into(), script.into()], timeout_secs };
        Exec::new("ext", &cfg).unwrap()
    }

    #[tokio::test]
    async fn the_request_is_json_on_stdin_and_get_nodes_reads_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen");
        let b = exec(&format!("cat > {}; echo '{{\"nodes\": [\"h:2\", \"h:1\"]}}'", seen.display()), 5);
        let got = b.get_nodes("web").await.unwrap();
        assert_eq!(got, BTreeSet::from(["h:1".to_string(), "h:2".to_string()]));
        b.add_nodes("web", &BTreeSet::from(["h:3".to_string()])).await.unwrap();
        let request: serde_json::Value = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
        assert_eq!(
            request,
            serde_json::json!({"op": "add_nodes", "balancer": "ext", "pool": "web", "nodes": ["h:3"]})
        );
    }

    #[tokio::test]
    async fn failures_carry_stderr_bad_answers_and_timeouts_are_explained() {
        let err = exec("echo 'pool locked' >&2; exit 1", 5).delete_nodes("web", &BTreeSet::new()).await;
        let err = err.unwrap_err().to_string();
        assert!(err.contains("delete_nodes of pool 'web'") && err.contains("pool locked"), "{err}");
        let err = exec("echo nope", 5).get_nodes("web").await.unwrap_err().to_string();
        assert!(err.contains("\"nodes\"") && err.contains("nope"), "{err}");
        let err = exec("sleep 5", 1).get_nodes("web").await.unwrap_err().to_string();
        assert!(err.contains("killed"), "{err}");
    }

    #[test]
    fn a_relative_program_is_refused() {
        let cfg = ExecConfig { program: "balance.sh".into(), args: vec![], timeout_secs: 1 };
        let err = Exec::new("ext", &cfg).err().unwrap().to_string();
        assert!(err.contains("absolute"), "{err}");
    }
}
