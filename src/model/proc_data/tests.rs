//! Tests of proc.yaml parsing and validation.

use super::*;

const VR_PROC_YAML: &str = r#"
app_name: node_example
app_repo_url: https://example.com/node_example
app_repo_type: git
buildpack_url: https://example.com/bp.git#abc
config_name: local
env: {GREETING: "@We're here", NUM: 3}
host: myhost
port: 5003
version: 1.0
release_hash: f96054b7
settings: {db: {host: localhost}}
user: nobody
group: nogroup
proc_name: web
build_url: file:///apps/builds/node_example-1.0-abc.tar.gz
image_url: http://example.com/images/busybox.tar.gz
image_name: busybox
mem_limit: 256M
memsw_limit: 512M
volumes: [[/srv/data, /data], [/srv/conf, /conf, ro]]
"#;

#[test]
fn reads_every_velociraptor_key() {
    let data = ProcData::from_yaml(VR_PROC_YAML).unwrap();
    assert_eq!(data.version.as_deref(), Some("1.0"), "a YAML float version stays as written");
    assert_eq!(data.env, vec![("GREETING".into(), "@We're here".into()), ("NUM".into(), "3".into())]);
    let spec = data.spec().unwrap();
    assert_eq!(spec.name.to_string(), "node_example-1.0-local-f96054b7-web-5003");
    assert_eq!(spec.image.name, "busybox");
    assert_eq!(spec.build.unwrap().name, "node_example-1.0-abc.tar.gz");
    assert_eq!(spec.limits.memory, Some(256 << 20));
    assert_eq!(spec.limits.memsw, Some(512 << 20));
    assert_eq!(spec.limits.pids_max, Some(DEFAULT_PIDS_MAX));
    assert!(spec.volumes[1].read_only && !spec.volumes[0].read_only);
}

#[test]
fn defaults_are_velociraptors() {
    let data = ProcData::from_yaml(
        "app_name: a\nversion: v1\nconfig_name: c\ncmd: sleep 1\nimage_url: /x/img.tar.gz\n",
    )
    .unwrap();
    let spec = data.spec().unwrap();
    assert_eq!(spec.user, "nobody");
    assert_eq!(spec.group, "nogroup");
    assert_eq!(spec.name.port, 0);
    assert_eq!(spec.image.name, "img");
}

#[test]
fn legacy_proc_key_is_accepted() {
    let data = ProcData::from_yaml("proc: web\n").unwrap();
    assert_eq!(data.proc_name.as_deref(), Some("web"));
}

#[test]
fn missing_keys_are_named() {
    let err = ProcData::from_yaml("app_name: a\n").unwrap().spec().unwrap_err();
    assert!(err.to_string().contains("proc_name"), "{err}");
    let err = ProcData::from_yaml("app_name: a\nversion: 1\nconfig_name: c\nproc_name: web\n")
        .unwrap()
        .spec()
        .unwrap_err();
    assert!(err.to_string().contains("image_url"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("port: 70000", "port"),
        ("mem_limit: lots", "mem_limit"),
        ("volumes: [[relative, /x]]", "volumes"),
        ("volumes: [[/a, /../etc]]", "escapes"),
        ("volumes: [[/a, /b, rx]]", "rx"),
        ("env: {1BAD: x}", "env"),
        ("cpu_quota: fast", "cpu_quota"),
    ];
    let base = "app_name: a\nversion: 1\nconfig_name: c\nproc_name: web\nimage_url: /i.tar\n";
    for (extra, needle) in cases {
        let text = format!("{base}{extra}\n");
        let err = ProcData::from_yaml(&text).and_then(|d| d.spec()).unwrap_err();
        assert!(err.to_string().contains(needle), "{extra}: {err}");
    }
}

#[test]
fn memsw_below_memory_is_refused() {
    let text = "app_name: a\nversion: 1\nconfig_name: c\nproc_name: web\nimage_url: /i.tar\nmem_limit: 1G\nmemsw_limit: 512M\n";
    let err = ProcData::from_yaml(text).unwrap().spec().unwrap_err();
    assert!(err.to_string().contains("below mem_limit"), "{err}");
}

#[test]
fn unknown_keys_are_reported_not_fatal() {
    let data = ProcData::from_yaml("proc_name: web\nfrobnicate: 1\n").unwrap();
    assert_eq!(data.unknown_keys, vec!["frobnicate".to_string()]);
}

#[test]
fn not_a_mapping() {
    assert!(ProcData::from_yaml("- a\n- b\n").unwrap_err().to_string().contains("mapping"));
}
