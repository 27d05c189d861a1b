//! Fuzz target: Procfile text through `procfile::entries` and `procfile::command`. Every entry
//! found must be what `command` returns for its type (the first one, when a type repeats).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vr::model::procfile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let entries = procfile::entries(text);
    for (kind, _) in &entries {
        let first = entries.iter().find(|(k, _)| k == kind).map(|(_, c)| c.clone());
        assert_eq!(procfile::command(text, kind).ok(), first, "command disagrees with entries for {kind:?}");
    }
    let _ = procfile::command(text, "web");
});
