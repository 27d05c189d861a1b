//! vr: the thin client. Also answers as `vrun`, `vbuild` and `vimage`.

use clap::Parser;

fn main() {
    let args = vr::cli::normalize_args(std::env::args().collect());
    let cli = vr::cli::Cli::parse_from(args);
    let code = match vr::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vr: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
