//! The only module allowed to use `unsafe`: thin, I/O-safe wrappers for the syscalls nix lacks.
//! Every unsafe block carries a `// SAFETY:` comment; no raw fd integer crosses this boundary.

pub mod fs;
