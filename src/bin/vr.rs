//! vr: the thin client. Also answers as `vrun`, `vbuild` and `vimage`.

use clap::Parser;

fn main() {
    let _ = vr::sys::request_slice(vr::sys::SHORT_SLICE_NS);
    let args = vr::cli::normalize_args(std::env::args().collect());
    let result = match vr::cli::RunnerCli::parse_runner(&args) {
        Some(runner) => runner.run(),
        None => vr::cli::run(vr::cli::Cli::parse_from(args)),
    };
    let code = match result {
        Ok(code) => code,
        // The reader left (`vr logs | head`): stop quietly with the shell's SIGPIPE status.
        Err(e) if vr::cli::out::is_broken_pipe(&e) => 141,
        Err(e) => {
            eprintln!("vr: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
