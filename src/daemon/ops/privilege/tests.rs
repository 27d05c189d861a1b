//! Who may do what: the unit tests of the privilege checks, with a fake caller and real files.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::json;

use super::*;
use crate::api::Kind;
use crate::daemon::ops::access::Role;
use crate::model::proc_data::ProcData;

fn member() -> Principal {
    Principal::socket(65534, 65534, vec![4242], None, &Policy::default())
}

fn admin() -> Principal {
    Principal { role: Role::Admin, ..member() }
}

fn policy() -> Policy {
    Policy { admins_gid: None, volume_prefixes: vec![PathBuf::from("/srv/vr")] }
}

fn swarm(extra: serde_json::Value) -> Definition {
    let mut spec = json!({ "name": "s", "app": "a", "version": "v1", "config_name": "prod" });
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    Definition::from_value(Kind::Swarm, spec).unwrap()
}

fn refusal(result: OpResult<()>) -> String {
    let e = result.unwrap_err();
    assert_eq!(e.code, codes::DENIED, "{e:?}");
    e.message
}

#[test]
fn a_member_may_not_run_a_swarm_as_root_by_name_or_number() {
    let (who, policy) = (member(), policy());
    let check = Privilege::of(&who, &policy);
    for name in ["root", "0", "000"] {
        let message = refusal(check.definition(&swarm(json!({ "run_as": name }))));
        assert!(message.contains("needs an admin") && message.contains(name), "{message}");
    }
    check.definition(&swarm(json!({ "run_as": "nobody" }))).unwrap();
    check.definition(&swarm(json!({ "run_as": "app10" }))).unwrap();
}

#[test]
fn a_member_mounts_volumes_only_under_the_configured_prefixes() {
    let (who, policy) = (member(), policy());
    let check = Privilege::of(&who, &policy);
    check.definition(&swarm(json!({ "volumes": [["/srv/vr/data", "/data"]] }))).unwrap();
    for outside in ["/etc", "/srv/vrx", "/srv/vr/../../etc", "/root"] {
        let message = refusal(check.definition(&swarm(json!({ "volumes": [[outside, "/data"]] }))));
        assert!(message.contains(outside) && message.contains("volume_prefixes"), "{message}");
    }
    let none = Policy::default();
    let message =
        refusal(Privilege::of(&who, &none).definition(&swarm(json!({ "volumes": [["/srv/vr/x", "/x"]] }))));
    assert!(message.contains("none are configured"), "{message}");
}

#[test]
fn an_admin_may_do_all_of_it() {
    let (who, policy) = (admin(), Policy::default());
    let check = Privilege::of(&who, &policy);
    check.definition(&swarm(json!({ "run_as": "root", "volumes": [["/etc", "/etc"]] }))).unwrap();
    let host = Definition::from_value(Kind::Host, json!({ "name": "h1" })).unwrap();
    check.definition(&host).unwrap();
}

#[test]
fn hosts_are_defined_by_admins_only() {
    let (who, policy) = (member(), policy());
    let host = Definition::from_value(Kind::Host, json!({ "name": "h1" })).unwrap();
    assert!(refusal(Privilege::of(&who, &policy).definition(&host)).contains("host 'h1'"));
    assert!(refusal(Privilege::of(&who, &policy).deletion(Kind::Host, "h1")).contains("deleting host 'h1'"));
    Privilege::of(&who, &policy).deletion(Kind::Swarm, "s").unwrap();
    Privilege::of(&admin(), &policy).deletion(Kind::Host, "h1").unwrap();
}

#[test]
fn a_member_names_only_local_paths_it_could_read_itself() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let base = dir.path().join("base.tar.gz");
    std::fs::write(&base, "x").unwrap();
    let stack = |url: String| {
        Definition::from_value(Kind::Stack, json!({ "name": "st", "base_image_url": url })).unwrap()
    };
    let (who, policy) = (member(), policy());
    let check = Privilege::of(&who, &policy);
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o644)).unwrap();
    check.definition(&stack(base.display().to_string())).unwrap();
    check.definition(&stack(format!("file://{}", base.display()))).unwrap();
    check.definition(&stack("https://example.com/base.tar.gz".into())).unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o600)).unwrap();
    for url in [base.display().to_string(), format!("file://{}", base.display())] {
        let message = refusal(check.definition(&stack(url)));
        assert!(message.contains("uid 65534 may not read") && message.contains("ask an admin"), "{message}");
    }
    let app = Definition::from_value(
        Kind::App,
        json!({ "name": "a", "repo_url": dir.path().display().to_string(), "stack": "st" }),
    )
    .unwrap();
    assert!(refusal(check.definition(&app)).contains("repo_url"), "a repository with an unreadable file");
}

#[test]
fn only_an_admin_may_run_a_proc_without_the_seccomp_filter() {
    let yaml =
        "app_name: a\nversion: v1\nconfig_name: c\nproc_name: web\nimage_url: https://example.com/i.tar.gz\n";
    let filtered = ProcData::from_yaml(yaml).unwrap().spec().unwrap();
    let unconfined = ProcData::from_yaml(&format!("{yaml}seccomp: unconfined\n")).unwrap().spec().unwrap();
    let (member, admin, policy) = (member(), admin(), policy());
    Privilege::of(&member, &policy).proc(&filtered).unwrap();
    let message = refusal(Privilege::of(&member, &policy).proc(&unconfined));
    assert!(message.contains("seccomp: unconfined"), "{message}");
    Privilege::of(&admin, &policy).proc(&unconfined).unwrap();
}

#[test]
fn only_an_admin_may_define_a_swarm_without_the_seccomp_filter() {
    let swarm = |extra: serde_json::Value| {
        let mut v = json!({ "app": "a", "version": "v1" });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Definition::from_value(Kind::Swarm, v).unwrap()
    };
    let (member, admin, policy) = (member(), admin(), policy());
    Privilege::of(&member, &policy).definition(&swarm(json!({ "network": "private" }))).unwrap();
    let unconfined = swarm(json!({ "seccomp": "unconfined" }));
    let message = refusal(Privilege::of(&member, &policy).definition(&unconfined));
    assert!(message.contains("seccomp: unconfined"), "{message}");
    Privilege::of(&admin, &policy).definition(&unconfined).unwrap();
}
