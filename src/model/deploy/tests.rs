//! Definitions: parsing with defaults, and the refusals users hit first.

use serde_json::json;

use super::*;

#[test]
fn a_swarm_gets_velociraptors_defaults_and_a_derived_name() {
    let d = Definition::from_value(Kind::Swarm, json!({"app": "hello", "version": "v1"})).unwrap();
    let Definition::Swarm(s) = d else { panic!() };
    assert_eq!(
        (s.name.as_str(), s.size, s.run_as.as_str(), s.squad.as_str()),
        ("hello-prod-web", 1, "nobody", "default")
    );
    assert_eq!(s.balancer_name(), "builtin");
}

#[test]
fn bad_definitions_say_which_field_and_what_to_do() {
    let err = |kind, v| Definition::from_value(kind, v).unwrap_err().to_string();
    let e = err(Kind::Swarm, json!({"app": "hello", "version": "v1", "sise": 2}));
    assert!(e.contains("sise"), "{e}");
    let e = err(Kind::Swarm, json!({"app": "hel-lo", "version": "v1"}));
    assert!(e.contains("hel-lo") && e.contains("'-'"), "{e}");
    let e = err(Kind::Swarm, json!({"app": "hello", "version": "v 1"}));
    assert!(e.contains("version"), "{e}");
    let e = err(Kind::Swarm, json!({"app": "hello", "version": "v1", "volumes": [["data", "/d"]]}));
    assert!(e.contains("absolute"), "{e}");
    let e = err(Kind::Swarm, json!({"app": "hello", "version": "v1", "mem_limit": "lots"}));
    assert!(e.contains("mem_limit"), "{e}");
    let e = err(Kind::Swarm, json!({"app": "hello", "version": "v1", "balancer": "web"}));
    assert!(e.contains("pool"), "{e}");
    let e = err(Kind::App, json!({"name": "a/b", "repo_url": "x", "stack": "s"}));
    assert!(e.contains("not a usable name"), "{e}");
    let e = err(Kind::App, json!({"name": "ok", "repo_url": "", "stack": "s"}));
    assert!(e.contains("repo_url"), "{e}");
}

#[test]
fn hosts_are_active_and_routed_by_name_unless_told_otherwise() {
    let Definition::Host(h) = Definition::from_value(Kind::Host, json!({"name": "web1"})).unwrap() else {
        panic!()
    };
    assert!(h.active);
    assert_eq!(h.node_address(), "web1");
}

#[test]
fn a_stacks_provisioning_script_is_a_path_or_url_vrd_can_fetch() {
    let stack = |script: &str| {
        Definition::from_value(
            Kind::Stack,
            json!({"name": "s", "base_image_url": "/b.tar", "provisioning_script": script}),
        )
    };
    for ok in ["/srv/provision.sh", "https://example.com/p.sh?x=1", "file:///srv/p.sh"] {
        assert!(stack(ok).is_ok(), "{ok}");
    }
    for bad in ["provision.sh", "./p.sh", "/srv/", "ftp://host/p.sh"] {
        let e = stack(bad).unwrap_err().to_string();
        assert!(e.contains("provisioning_script") && e.contains("absolute path"), "{bad}: {e}");
    }
}

#[test]
fn swarm_and_ingredient_env_names_must_be_variable_names() {
    let err = |kind, v| Definition::from_value(kind, v).unwrap_err().to_string();
    let e = err(Kind::Swarm, json!({"app": "hello", "version": "v1", "env": {"": "x"}}));
    assert!(e.contains("not a valid variable name"), "{e}");
    let e = err(Kind::Ingredient, json!({"name": "db", "env": {"1X": "x"}}));
    assert!(e.contains("'1X' is not a valid variable name"), "{e}");
    let e = err(Kind::Swarm, json!({"app": "hello", "version": "v1", "env": {"A": "a\u{0}b"}}));
    assert!(e.contains("NUL"), "{e}");
}
