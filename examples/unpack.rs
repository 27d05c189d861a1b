//! Stand-in for the hidden `vrd unpack` subcommand until it is wired into `src/bin/vrd.rs`:
//! `unpack --archive FILE --dest DIR [--untrusted] [--owner UID:GID] [--max-bytes N] [--max-entries N]`.
//! Used by `benches/unpack.sh`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(vr::host::image::unpack_main(&args));
}
