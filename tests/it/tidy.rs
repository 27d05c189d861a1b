//! House rules, checked so they cannot drift: unsafe only in src/sys with SAFETY comments, libc
//! only in src/sys, a `//!` header on every file, and the layering bin → daemon → services → host →
//! sys (model and api anywhere).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn src() -> PathBuf {
    crate::harness::repo().join("src")
}

fn layer(path: &Path) -> &'static str {
    let rel = path.strip_prefix(src()).unwrap().to_string_lossy().to_string();
    ["bin", "daemon", "services", "host", "sys", "model", "api", "cli", "config"]
        .into_iter()
        .find(|l| rel.starts_with(l))
        .unwrap_or("root")
}

#[test]
fn unsafe_and_libc_live_only_in_sys() {
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).unwrap();
        if layer(&file) == "sys" {
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if line.contains("unsafe {") || line.trim_start().starts_with("unsafe fn") {
                    let before = lines[..i].iter().rev().take(4).any(|l| l.contains("SAFETY:"));
                    assert!(before, "{}:{} has unsafe without a // SAFETY: comment", file.display(), i + 1);
                }
            }
            continue;
        }
        assert!(!text.contains("unsafe {"), "{} uses unsafe outside src/sys", file.display());
        assert!(!text.contains("libc::"), "{} uses libc outside src/sys", file.display());
    }
}

#[test]
fn every_file_says_what_it_is() {
    for file in rust_files(&src()).into_iter().chain(rust_files(&crate::harness::repo().join("tests"))) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("//!"), "{} does not start with a //! comment", file.display());
    }
}

#[test]
fn layers_depend_only_downwards() {
    let allowed: &[(&str, &[&str])] = &[
        ("sys", &[]),
        ("model", &[]),
        ("api", &["model"]),
        ("config", &["model"]),
        ("host", &["sys", "model", "config"]),
        // `api` is the wire contract: services speak it to peers (the host API).
        ("services", &["host", "sys", "model", "api", "config"]),
        ("daemon", &["services", "host", "sys", "model", "api", "config"]),
        ("cli", &["api", "model", "config", "sys"]),
    ];
    for file in rust_files(&src()) {
        let own = layer(&file);
        let Some((_, ok)) = allowed.iter().find(|(l, _)| *l == own) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        for used in text.split("crate::").skip(1) {
            let target = used.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("");
            if target != own && !target.is_empty() {
                assert!(
                    ok.contains(&target),
                    "{} ({own}) uses crate::{target}, against the layering",
                    file.display()
                );
            }
        }
    }
}
