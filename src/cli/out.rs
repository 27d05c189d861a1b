//! Writing to stdout without panicking: `println!` panics when the reader has gone (`vr logs | head`),
//! so every answer goes through `say!`, which returns the write's error for `?` instead. `main`
//! turns a broken pipe into a quiet exit, as `cat` and `grep` do.

/// `println!` that returns `std::io::Result<()>` instead of panicking on a closed stdout.
macro_rules! say {
    () => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock())
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` that returns `std::io::Result<()>`; flushes, since a log line may end without a newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        write!(out, $($arg)*).and_then(|()| out.flush())
    }};
}

/// Whether `error` (anywhere in its chain) is a write to a reader that has gone away.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_is_found_under_context() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let error = anyhow::Error::new(pipe).context("writing the log");
        assert!(is_broken_pipe(&error));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_broken_pipe(&anyhow::Error::new(refused).context("dialing vrd")));
    }
}
