//! Fuzz target: `.slugignore` patterns (a tenant's file, matched by vrd against the tenant's file
//! names). The input is the file's text, then a NUL, then a path; each line is also matched
//! against the path's last name with `wildmatch`. Must not panic nor take long.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vr::model::slugignore::{wildmatch, SlugIgnore};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (patterns, path) = text.split_once('\0').unwrap_or((text, "a/b.c"));
    let ignore = SlugIgnore::parse(patterns);
    let _ = ignore.is_ignored(path, false);
    let _ = ignore.is_ignored(path, true);
    let name = path.rsplit('/').next().unwrap_or(path);
    for line in patterns.lines().take(16) {
        let _ = wildmatch(line, name);
    }
});
