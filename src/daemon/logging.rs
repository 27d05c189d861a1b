//! Where vrd's own log goes: to the journal, natively and with structured fields, when systemd
//! started vrd with its stderr on the journal; otherwise to stderr as text, as before.
//!
//! systemd says so with `JOURNAL_STREAM=DEV:INODE`, the stream its stderr is connected to
//! (systemd.exec(5)); comparing it with stderr's own device and inode tells a vrd started by the
//! unit from one whose stderr was redirected since (a shell started from a service, say), which
//! should keep writing text where it was sent.
//!
//! Every field of an event becomes a journal field of the same name upper-cased, without a prefix,
//! so operators query what vrd's code names: `journalctl -u vrd PROC=NAME`, `SWARM=`, `TRACE=`,
//! `UID=` (the caller of an audited call). None of vrd's field names is one of journald's own.

use std::os::fd::AsFd;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The journal's syslog identifier for vrd's own lines (`journalctl -t vrd`).
const IDENTIFIER: &str = "vrd";

/// Installs the global subscriber: journald or stderr (see the module), filtered by RUST_LOG
/// (default `info`).
pub fn init() {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let journal = stderr_is_the_journal(std::env::var("JOURNAL_STREAM").ok().as_deref()).then(|| {
        tracing_journald::layer()
            .map(|l| l.with_field_prefix(None).with_syslog_identifier(IDENTIFIER.to_string()))
    });
    match journal {
        Some(Ok(layer)) => tracing_subscriber::registry().with(filter()).with(layer).init(),
        Some(Err(e)) => {
            tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).init();
            tracing::warn!(error = %e, "stderr is the journal but its native socket is not: logging text to stderr");
        }
        None => tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).init(),
    }
}

/// Whether `journal_stream` (the value of JOURNAL_STREAM) names the stream stderr is now.
fn stderr_is_the_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(parse_stream) else { return false };
    match nix::sys::stat::fstat(std::io::stderr().as_fd()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// "DEV:INODE", both decimal.
fn parse_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_two_decimal_numbers() {
        assert_eq!(parse_stream("9:5970187"), Some((9, 5970187)));
        assert_eq!(parse_stream("9"), None);
        assert_eq!(parse_stream("a:1"), None);
        assert_eq!(parse_stream("1:-2"), None);
    }

    #[test]
    fn a_stream_other_than_stderr_is_not_the_journal() {
        assert!(!stderr_is_the_journal(None));
        assert!(!stderr_is_the_journal(Some("0:0")));
        let st = nix::sys::stat::fstat(std::io::stderr().as_fd()).unwrap();
        let own = format!("{}:{}", st.st_dev, st.st_ino);
        assert!(stderr_is_the_journal(Some(&own)));
    }
}
