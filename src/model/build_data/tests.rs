//! build.yaml parsing: VR's keys, errors that name the key, the singular buildpack winning, and a
//! build_result.yaml that reads back to the same data.

use super::*;

const BASE: &str = "app_name: hello\napp_repo_type: git\napp_repo_url: https://example.com/hello.git\n\
                    version: v1\nimage_url: file:///images/stack-1.tar.gz\n";

fn parse(extra: &str) -> Result<BuildData, BuildDataError> {
    BuildData::from_yaml(&format!("{BASE}{extra}"))
}

#[test]
fn velociraptor_keys_parse() {
    let data =
        parse("buildpack_urls:\n- https://example.com/a.git\n- https://example.com/b.git#v2\n").unwrap();
    assert_eq!(data.app_name, "hello");
    assert_eq!(data.app_repo_type, RepoType::Git);
    assert_eq!(data.revision(), "v1");
    assert_eq!(data.stack(), "stack-1", "image_name falls back to the file name");
    assert_eq!(
        data.buildpacks(),
        vec![
            BuildpackRef { url: "https://example.com/a.git".into(), rev: None },
            BuildpackRef { url: "https://example.com/b.git".into(), rev: Some("v2".into()) },
        ]
    );
}

#[test]
fn the_singular_buildpack_wins_and_buildpack_version_pins_it() {
    let data = parse(
        "buildpack_url: https://example.com/one.git\nbuildpack_version: abc123\nbuildpack_urls: [https://example.com/b.git]\n",
    )
    .unwrap();
    assert_eq!(
        data.buildpacks(),
        vec![BuildpackRef { url: "https://example.com/one.git".into(), rev: Some("abc123".into()) }]
    );
    let fragment = parse("buildpack_url: https://example.com/one.git#v9\nbuildpack_version: abc\n").unwrap();
    assert_eq!(fragment.buildpacks()[0].rev.as_deref(), Some("v9"), "the fragment beats buildpack_version");
}

#[test]
fn a_version_written_as_a_number_stays_as_written() {
    let data = BuildData::from_yaml(&BASE.replace("version: v1", "version: 1.0")).unwrap();
    assert_eq!(data.version, "1.0");
}

#[test]
fn app_commit_wins_over_version() {
    let hash = "0123456789abcdef0123456789abcdef01234567";
    let data = parse(&format!("app_commit: {hash}\n")).unwrap();
    assert_eq!(data.revision(), hash);
    let err = parse("app_commit: main\n").unwrap_err().to_string();
    assert!(err.contains("'app_commit'") && err.contains("hex"), "{err}");
}

#[test]
fn errors_name_the_key() {
    let cases = [
        (BASE.replace("app_name: hello\n", ""), "'app_name'"),
        (BASE.replace("app_repo_type: git", "app_repo_type: svn"), "'app_repo_type'"),
        (BASE.replace("version: v1\n", ""), "'version'"),
        (BASE.replace("image_url: file:///images/stack-1.tar.gz\n", ""), "'image_url'"),
        (format!("{BASE}buildpack_urls: https://x\n"), "'buildpack_urls'"),
        (format!("{BASE}buildpack_url: --upload-pack=evil\n"), "'buildpack_url'"),
        (format!("{BASE}buildpack_url: 'https://x#a b'\n"), "'buildpack_url'"),
        (
            BASE.replace("app_repo_url: https://example.com/hello.git", "app_repo_url: -oops"),
            "'app_repo_url'",
        ),
        (format!("{BASE}release_data: [1]\n"), "'release_data'"),
        (BASE.replace("app_name: hello", "app_name: a/b"), "app name"),
    ];
    for (yaml, want) in cases {
        let err = BuildData::from_yaml(&yaml).unwrap_err().to_string();
        assert!(err.contains(want), "{yaml}: {err} (wanted {want})");
    }
    assert!(BuildData::from_yaml("- a\n").unwrap_err().to_string().contains("mapping"));
}

#[test]
fn unknown_keys_are_reported() {
    let data = parse("colour: blue\n").unwrap();
    assert_eq!(data.unknown_keys, ["colour"]);
}

#[test]
fn a_result_reads_back_to_the_same_data() {
    let mut data = parse("buildpack_urls: [https://example.com/a.git]\n").unwrap();
    data.app_commit = Some("0123456789abcdef0123456789abcdef01234567".into());
    data.buildpack_url = Some("https://example.com/a.git#0123456789abcdef0123456789abcdef01234567".into());
    data.build_md5 = Some("d41d8cd98f00b204e9800998ecf8427e".into());
    data.release_data = Some(serde_yaml_ng::from_str("config_vars: {A: b}\n").unwrap());
    let text = data.to_yaml().unwrap();
    assert!(text.starts_with("app_name: hello\napp_repo_type: git\n"), "VR's key order: {text}");
    assert_eq!(BuildData::from_yaml(&text).unwrap(), data);
}

#[test]
fn pins_come_from_both_keys() {
    let data =
        parse("buildpack_url: https://example.com/a.git#r1\nbuildpack_urls: [https://example.com/b.git#r2, https://example.com/c.git]\n")
            .unwrap();
    let pins: Vec<String> = data.pins().iter().map(BuildpackRef::to_text).collect();
    assert_eq!(pins, ["https://example.com/a.git#r1", "https://example.com/b.git#r2"]);
}
