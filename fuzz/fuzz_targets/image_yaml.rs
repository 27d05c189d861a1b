//! Fuzz target: image.yaml text through `ImageData::from_yaml` and the names derived from it.
//! Must not panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vr::model::image_data::ImageData;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut image) = ImageData::from_yaml(text) else { return };
    let _ = image.script_name();
    let _ = image.output_names();
    image.resolve_relative(std::path::Path::new("/home/me/stack"));
    let _ = image.script_name();
});
