//! Fuzz target: proc.yaml text through `ProcData::from_yaml` and, when it parses, `spec` (what a
//! setup does with a caller's file). Must not panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vr::model::proc_data::ProcData;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(proc) = ProcData::from_yaml(text) {
        let _ = proc.spec();
    }
});
