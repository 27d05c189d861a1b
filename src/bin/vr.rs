//! The vr client binary.
fn main() {}
