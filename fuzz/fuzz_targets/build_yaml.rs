//! Fuzz target: build.yaml text through `BuildData::from_yaml`, its derived values, and the
//! build_result.yaml round trip: what `to_yaml` writes parses back to data that writes the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vr::model::build_data::BuildData;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(build) = BuildData::from_yaml(text) else { return };
    let _ = (build.buildpacks(), build.pins(), build.revision(), build.image(), build.stack());
    let written = build.to_yaml().expect("parsed build data serializes");
    let again = BuildData::from_yaml(&written)
        .unwrap_or_else(|e| panic!("build_result.yaml does not parse back: {e}\n{written}"));
    assert_eq!(again.to_yaml().expect("serializes"), written, "the round trip changed the data");
});
