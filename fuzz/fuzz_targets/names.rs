//! Fuzz target: the name validators and `ProcName`. A valid proc name formats to a name that
//! parses back to itself, and its container hostname is at most 64 bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vr::model::names::{self, ProcName};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for check in [
        names::app_name,
        names::host_name,
        names::proc_type,
        names::config_name,
        names::version,
        names::release_hash,
    ] {
        if let Ok(valid) = check(text) {
            assert_eq!(valid, text, "a validator changed what it accepted");
        }
    }
    if let Ok(name) = ProcName::parse(text) {
        let full = name.to_string();
        assert_eq!(ProcName::parse(&full).as_ref(), Ok(&name), "'{full}' does not parse back");
        let again = ProcName::new(&name.app, &name.version, &name.config, &name.hash, &name.proc, name.port);
        assert_eq!(again.as_ref(), Ok(&name), "new refuses the parts parse accepted");
        assert!(name.hostname().len() <= 64);
    }
    let lenient = ProcName::parse_lenient(text);
    assert!(lenient.hostname().len() <= 64);
});
