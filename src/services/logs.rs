//! Reading proc logs: the rotated files oldest first, then the live one; and following the live
//! log as the launcher appends to it, across rotations, without losing or repeating a line. Build
//! and image logs are followed the same way, from their start.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::host::container::log::rotated;

/// The log's files, oldest first: `log.N` … `log.1`, `log`.
fn files(log: &Path) -> Vec<PathBuf> {
    let mut old: Vec<PathBuf> = (1..).map(|n| rotated(log, n)).take_while(|p| p.exists()).collect();
    old.reverse();
    old.push(log.to_path_buf());
    old
}

/// Whether a stored line (`<RFC 3339> <stream> <text>`) is at or after `since`.
fn at_or_after(line: &str, since: SystemTime) -> bool {
    line.split(' ').next().and_then(|t| humantime::parse_rfc3339(t).ok()).is_none_or(|t| t >= since)
}

/// Every stored line at or after `since`, keeping only the last `tail` when given.
pub fn read(log: &Path, since: Option<SystemTime>, tail: Option<usize>) -> io::Result<Vec<String>> {
    let mut lines = Vec::new();
    for file in files(log) {
        let Ok(f) = File::open(&file) else { continue };
        for line in BufReader::new(f).lines() {
            let line = line?;
            if since.is_none_or(|s| at_or_after(&line, s)) {
                lines.push(line);
            }
        }
    }
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    Ok(lines)
}

/// [`read`], and a [`Follower`] that goes on exactly where that read of the live file ended: the
/// live file is opened once, first, and read to its end through the handle the follower keeps,
/// so a line the app writes meanwhile is either in the lines or the follower's next poll, once.
pub fn read_then_follow(
    log: &Path,
    since: Option<SystemTime>,
    tail: Option<usize>,
) -> io::Result<(Vec<String>, Follower)> {
    let mut follower = Follower::from_start(log);
    let live = File::open(log).ok();
    let inode = live.as_ref().and_then(|f| f.metadata().ok()).map(|m| m.ino());
    let mut lines = Vec::new();
    let keep = |line: &str| since.is_none_or(|s| at_or_after(line, s));
    for file in files(log).into_iter().filter(|f| f != log) {
        let Ok(f) = File::open(&file) else { continue };
        // Rotated after the live file was opened: it is the one being read below.
        if inode.is_some() && f.metadata().ok().map(|m| m.ino()) == inode {
            continue;
        }
        for line in BufReader::new(f).lines() {
            let line = line?;
            if keep(&line) {
                lines.push(line);
            }
        }
    }
    if let Some(file) = live {
        follower.inode = inode.unwrap_or(0);
        follower.file = Some(file);
        let mut fresh = Vec::new();
        follower.drain(&mut fresh);
        lines.extend(fresh.into_iter().filter(|l| keep(l)));
    }
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    Ok((lines, follower))
}

/// Parses `--since`: an RFC 3339 time, or a duration back from now such as `10m` or `2h`.
pub fn parse_since(text: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    humantime::parse_duration(text)
        .map(|d| SystemTime::now() - d)
        .map_err(|_| format!("'{text}' is neither a time (2026-11-26T10:00:00Z) nor a duration (10m, 2h)"))
}

/// Follows the live log from a position: `poll` returns the complete lines added since.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Starts at the current end of the live log.
    pub fn at_end(path: &Path) -> Follower {
        let mut f = Follower { path: path.to_path_buf(), file: None, inode: 0, partial: Vec::new() };
        if let Ok(mut file) = File::open(path) {
            let _ = file.seek(SeekFrom::End(0));
            f.inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
            f.file = Some(file);
        }
        f
    }

    /// Starts at the beginning of a log that is still being written (a build's), or that does
    /// not exist yet: it is read from its start once it appears.
    pub fn from_start(path: &Path) -> Follower {
        Follower { path: path.to_path_buf(), file: None, inode: 0, partial: Vec::new() }
    }

    /// After the writer is done: the new complete lines, then an unterminated last line, if any.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = self.poll();
        if !self.partial.is_empty() {
            out.push(String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned());
        }
        out
    }

    fn drain(&mut self, out: &mut Vec<String>) {
        let Some(file) = self.file.as_mut() else { return };
        let mut buf = Vec::new();
        let _ = file.read_to_end(&mut buf);
        self.partial.extend_from_slice(&buf);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            out.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
    }

    /// New complete lines; after a rotation, the rest of the old file, then the new one from its start.
    pub fn poll(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.drain(&mut out);
        let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if current.is_some() && current != Some(self.inode) {
            if let Ok(file) = File::open(&self.path) {
                self.inode = current.unwrap_or(0);
                self.file = Some(file);
                self.drain(&mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::container::log::{LogWriter, Rotation};

    #[test]
    fn a_line_written_between_the_backlog_and_the_follow_is_sent_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path, Rotation { max_bytes: 1 << 20, keep: 3 }).unwrap();
        for i in 0..5 {
            w.write_lines("out", format!("n{i}\n").as_bytes());
        }
        let (backlog, mut follower) = read_then_follow(&path, None, Some(2)).unwrap();
        w.write_lines("out", b"n5\n");
        let mut seen: Vec<String> = backlog.into_iter().chain(follower.poll()).collect();
        seen.iter_mut().for_each(|l| *l = l.rsplit(' ').next().unwrap().to_string());
        assert_eq!(seen, ["n3", "n4", "n5"]);
    }

    #[test]
    fn reading_spans_rotated_files_in_order_and_tails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path, Rotation { max_bytes: 300, keep: 3 }).unwrap();
        for i in 0..20 {
            w.write_lines("out", format!("n{i:02}\n").as_bytes());
        }
        let all = read(&path, None, None).unwrap();
        let nums: Vec<&str> = all.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
        assert_eq!(nums.last(), Some(&"n19"));
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "oldest first: {nums:?}");
        assert_eq!(read(&path, None, Some(2)).unwrap().len(), 2);
        let future = SystemTime::now() + std::time::Duration::from_secs(60);
        assert!(read(&path, Some(future), None).unwrap().is_empty());
    }

    #[test]
    fn following_survives_rotation_without_loss_or_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path, Rotation { max_bytes: 120, keep: 2 }).unwrap();
        let mut follower = Follower::at_end(&path);
        let mut seen = Vec::new();
        for i in 0..30 {
            w.write_lines("out", format!("n{i:02}\n").as_bytes());
            seen.extend(follower.poll());
        }
        let nums: Vec<String> = seen.iter().map(|l| l.rsplit(' ').next().unwrap().to_string()).collect();
        assert_eq!(nums, (0..30).map(|i| format!("n{i:02}")).collect::<Vec<_>>());
    }

    #[test]
    fn a_log_followed_from_its_start_gives_every_line_once_even_before_it_exists() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("compile.log");
        let mut follower = Follower::from_start(&path);
        assert!(follower.poll().is_empty());
        let mut f = File::create(&path).unwrap();
        f.write_all(b"one\ntw").unwrap();
        assert_eq!(follower.poll(), ["one"]);
        f.write_all(b"o\nthree").unwrap();
        assert_eq!(follower.poll(), ["two"]);
        assert_eq!(follower.finish(), ["three"], "the unterminated last line comes at the end");
        assert!(follower.finish().is_empty());
    }

    #[test]
    fn since_accepts_times_and_durations() {
        assert!(parse_since("2026-11-26T10:00:00Z").is_ok());
        assert!(parse_since("10m").unwrap() < SystemTime::now());
        assert!(parse_since("yesterday-ish").unwrap_err().contains("duration"));
    }
}
