//! Fuzz target: `limits::parse_size` (proc.yaml's mem_limit and the config's sizes). Must not
//! panic; a plain number of bytes is itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vr::model::limits::parse_size;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = parse_size(text);
    if let (true, Ok(n)) = (text.bytes().all(|b| b.is_ascii_digit()), text.parse::<u64>()) {
        assert_eq!(parsed, Ok(n), "'{text}' is a plain number of bytes");
    }
});
