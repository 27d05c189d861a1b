//! vr: the thin client. Also answers as `vrun`, `vbuild` and `vimage`.

use clap::Parser;

/// musl's allocator maps and unmaps small blocks as a short command allocates and frees them
/// (28 mmap and 13 munmap calls for one `vr runner run`, each a page-table change); dlmalloc takes
/// memory from the kernel in large segments and keeps it until the command exits.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

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
