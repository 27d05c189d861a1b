//! Emptying a pool, as VR's docs advise ("dispatch the swarm with a size of 0") and as the seed sets
//! nginx up (a server block that proxies to the pool by name), and destroying a proc whose balancer
//! refuses to let it go.

use std::time::Duration;

use vr::model::balancer::{BalancerConfig, ExecConfig};

use crate::harness::{http_get, skip, text, wait_for_port};
use crate::proxies::{installed, TestNginx};
use crate::require_root;
use crate::swarm_fixture::Fx;

/// vrd's config with one balancer table.
fn with_balancer(name: &str, config: &BalancerConfig) -> String {
    #[derive(serde::Serialize)]
    struct Tables<'a> {
        balancers: std::collections::BTreeMap<&'a str, &'a BalancerConfig>,
    }
    let tables = Tables { balancers: [(name, config)].into_iter().collect() };
    format!("drain_secs = 0\n{}", toml::to_string(&tables).unwrap())
}

fn status_line(port: u16) -> String {
    http_get(port, "/").lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_pool_a_server_block_names_can_be_emptied_by_size_0_destroy_and_delete() {
    require_root!("a_pool_a_server_block_names_can_be_emptied_by_size_0_destroy_and_delete");
    if !installed("nginx") {
        return skip(
            "a_pool_a_server_block_names_can_be_emptied_by_size_0_destroy_and_delete",
            "nginx is not installed",
        );
    }
    // `api` is the pool nginx's server block proxies to by name (`proxy_pass http://api;`).
    let nginx = TestNginx::start("127.0.0.1:9");
    let fx = Fx::with_config(&with_balancer("edge", &BalancerConfig::Nginx(nginx.config())));
    fx.create_swarm(&["app=hello", "version=v1", "size=1", "pool=api", "balancer=edge"]);
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    assert!(wait_for_port(nginx.api_port, Duration::from_secs(5)));
    assert!(http_get(nginx.api_port, "/").contains("Hello from vr"));

    // VR's way to retire procs: the swarm at size 0.
    fx.ok(&["swarms", "edit", "hello-prod-web", "--set", "size=0"]);
    let out = fx.ok(&["swarm", "hello-prod-web", "-"]);
    assert!(out.contains("finished"), "{out}");
    assert!(fx.procs().is_empty(), "{:?}", fx.procs());
    assert!(status_line(nginx.api_port).contains("502"), "an empty pool answers 502 at once");

    // Destroying the last proc of the pool.
    fx.ok(&["swarms", "edit", "hello-prod-web", "--set", "size=1"]);
    fx.ok(&["swarm", "hello-prod-web", "-"]);
    let procs = fx.procs();
    assert_eq!(procs.len(), 1);
    fx.ok(&["procs", "destroy", &procs[0]]);
    assert!(fx.procs().is_empty());
    assert!(status_line(nginx.api_port).contains("502"));

    // Deleting the swarm.
    fx.ok(&["swarm", "hello-prod-web", "-"]);
    assert_eq!(fx.procs().len(), 1);
    fx.ok(&["swarms", "delete", "hello-prod-web"]);
    assert!(fx.procs().is_empty());
    let pool = std::fs::read_to_string(nginx.pools().join("api.conf")).unwrap();
    assert!(pool.contains("upstream api {") && pool.contains(" down;"), "nginx still names the pool: {pool}");
}

/// An exec balancer that keeps its pools in a JSON file and refuses every removal while `refuse`
/// exists beside it, as a hardware balancer behind a failing API would.
const REFUSING: &str = r#"#!/usr/bin/env python3
import json, os, sys
state = sys.argv[1]
req = json.load(sys.stdin)
pools = json.load(open(state)) if os.path.exists(state) else {}
nodes = set(pools.get(req["pool"], []))
if req["op"] == "get_nodes":
    print(json.dumps({"nodes": sorted(nodes)}))
    sys.exit(0)
if req["op"] == "delete_nodes" and os.path.exists(state + ".refuse"):
    print("the balancer's API answered 503", file=sys.stderr)
    sys.exit(1)
if req["op"] == "add_nodes":
    nodes |= set(req["nodes"])
elif req["op"] == "delete_nodes":
    nodes -= set(req["nodes"])
pools[req["pool"]] = sorted(nodes)
json.dump(pools, open(state, "w"))
"#;

#[test]
fn a_destroy_a_balancer_refuses_says_so_keeps_the_proc_and_can_be_forced() {
    require_root!("a_destroy_a_balancer_refuses_says_so_keeps_the_proc_and_can_be_forced");
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("f5");
    std::fs::write(&program, REFUSING).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("pools.json");
    let config = ExecConfig { program, args: vec![state.display().to_string()], timeout_secs: 30 };
    let fx = Fx::with_config(&with_balancer("f5", &BalancerConfig::Exec(config)));
    fx.create_swarm(&["app=hello", "version=v1", "size=1", "pool=web", "balancer=f5"]);
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    let proc = fx.procs().remove(0);
    std::fs::write(dir.path().join("pools.json.refuse"), "").unwrap();

    let out = fx.vr(&["procs", "destroy", &proc]);
    let err = text(&out).1;
    assert!(!out.status.success());
    assert!(err.contains("503") && err.contains("was NOT destroyed") && err.contains("--force"), "{err}");
    assert_eq!(fx.procs(), std::slice::from_ref(&proc), "the proc keeps running and serving");

    let out = fx.vr(&["procs", "destroy", &proc, "--force"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(fx.procs().is_empty());
    let pools: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(pools["web"].as_array().unwrap().len(), 1, "the node stays listed: the balancer refused");
}
