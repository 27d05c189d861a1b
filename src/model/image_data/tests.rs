//! image.yaml parsing: VR's keys, the env mapping vr passes on, and errors that name the key.

use std::path::Path;

use super::*;

const FULL: &str = "base_image_url: https://images.example.com/base/ubuntu-base.tar.gz?x=1
base_image_name: ubuntu_base
base_image_md5: D41D8CD98F00B204E9800998ECF8427E
new_image_name: ubuntu_20240101_1
new_image_md5: null
script_url: scripts/provision.sh
env:
  LANG: C.UTF-8
  WORKERS: 4
colour: blue
";

#[test]
fn every_key_is_read_in_order() {
    let data = ImageData::from_yaml(FULL).unwrap();
    assert_eq!(data.base_image_url, "https://images.example.com/base/ubuntu-base.tar.gz?x=1");
    assert_eq!(data.base_image_name, "ubuntu_base");
    assert_eq!(data.base_image_md5.as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
    assert_eq!(data.new_image_name, "ubuntu_20240101_1");
    assert_eq!(data.new_image_md5, None);
    assert_eq!(data.env, vec![("LANG".into(), "C.UTF-8".into()), ("WORKERS".into(), "4".into())]);
    assert_eq!(data.unknown_keys, vec!["colour".to_string()]);
    assert_eq!(data.script_name().unwrap(), "provision.sh");
    let (tarball, md5, log) = data.output_names();
    assert_eq!(
        (tarball.as_str(), md5.as_str(), log.as_str()),
        ("ubuntu_20240101_1.tar.gz", "ubuntu_20240101_1.tar.gz.md5", "ubuntu_20240101_1.log")
    );
}

#[test]
fn relative_local_paths_are_relative_to_the_client() {
    let mut data = ImageData::from_yaml(FULL).unwrap();
    data.base_image_url = "base.tar".into();
    data.resolve_relative(Path::new("/home/me/stack"));
    assert_eq!(data.base_image_url, "/home/me/stack/base.tar");
    assert_eq!(data.script_url, "/home/me/stack/scripts/provision.sh");
    let mut remote = ImageData::from_yaml(FULL).unwrap();
    remote.script_url = "file:///srv/p.sh".into();
    remote.resolve_relative(Path::new("/x"));
    assert_eq!(remote.script_url, "file:///srv/p.sh");
    assert_eq!(remote.base_image_url, "https://images.example.com/base/ubuntu-base.tar.gz?x=1");
}

#[test]
fn http_script_names_drop_the_query() {
    let yaml = FULL.replace("scripts/provision.sh", "http://h/s/setup.sh?rev=2#top");
    assert_eq!(ImageData::from_yaml(&yaml).unwrap().script_name().unwrap(), "setup.sh");
}

#[test]
fn errors_name_the_key() {
    let without = |key: &str| FULL.lines().filter(|l| !l.starts_with(key)).collect::<Vec<_>>().join("\n");
    for key in ["base_image_url", "base_image_name", "new_image_name", "script_url"] {
        let err = ImageData::from_yaml(&without(key)).unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
    }
    let cases = [
        (FULL.replace("ubuntu_base", "../etc"), "base_image_name"),
        (FULL.replace("new_image_name: ubuntu_20240101_1", "new_image_name: a/b"), "new_image_name"),
        (FULL.replace("D41D8CD98F00B204E9800998ECF8427E", "abc"), "base_image_md5"),
        (FULL.replace("scripts/provision.sh", "http://h/"), "script_url"),
        (FULL.replace("  LANG: C.UTF-8", "  1BAD: x"), "env"),
        (FULL.replace("  LANG: C.UTF-8\n  WORKERS: 4\n", " [a, b]\n"), "env"),
        (FULL.replace("ubuntu_base", "[x]"), "base_image_name"),
    ];
    for (yaml, key) in cases {
        let err = ImageData::from_yaml(&yaml).unwrap_err().to_string();
        assert!(err.contains(&format!("'{key}'")), "{key}: {err}");
    }
    assert!(ImageData::from_yaml("- a\n").unwrap_err().to_string().contains("mapping"));
    assert!(ImageData::from_yaml(": :\n  -").is_err());
}
