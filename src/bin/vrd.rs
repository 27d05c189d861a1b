//! The vrd daemon binary.
fn main() {}
