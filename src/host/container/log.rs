//! A proc's log: the container's stdout and stderr as timestamped lines, `<RFC 3339 UTC> <out|err>
//! <line>`, appended by the launcher (so nothing is lost while vrd restarts) and rotated by size:
//! `log` → `log.1` → … → `log.<keep>`, the oldest dropped.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// When to rotate and how many old files to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Rotate once the log reaches this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`log.1` … `log.<keep>`).
    pub keep: u32,
}

impl Default for Rotation {
    /// 10 MiB as VR's supervisor config had, but five old files instead of one.
    fn default() -> Rotation {
        Rotation { max_bytes: 10 << 20, keep: 5 }
    }
}

/// The path of rotated file `n` of `log` (`n` = 0 is the live log).
pub fn rotated(log: &Path, n: u32) -> PathBuf {
    if n == 0 {
        log.to_path_buf()
    } else {
        PathBuf::from(format!("{}.{n}", log.display()))
    }
}

/// Appends lines to a log and rotates it.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
}

fn open_append(path: &Path) -> Result<(File, u64), String> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("failed to open the log {}: {e}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, size))
}

impl LogWriter {
    /// Opens (or creates) the log for appending.
    pub fn open(path: &Path, rotation: Rotation) -> Result<LogWriter, String> {
        let (file, size) = open_append(path)?;
        Ok(LogWriter { path: path.to_path_buf(), file, size, rotation })
    }

    /// Writes complete lines of `stream` ("out" or "err"), each with the current time.
    pub fn write_lines(&mut self, stream: &str, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        let mut out = Vec::with_capacity(bytes.len() + 64);
        for line in bytes.strip_suffix(b"\n").unwrap_or(bytes).split(|b| *b == b'\n') {
            out.extend_from_slice(format!("{now} {stream} ").as_bytes());
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        if self.file.write_all(&out).is_ok() {
            self.size += out.len() as u64;
        }
        if self.size >= self.rotation.max_bytes {
            self.rotate();
        }
    }

    /// Shifts `log.N` to `log.N+1` (dropping the oldest), the live log to `log.1`, and starts a
    /// new live log. A reader following the log sees the inode change and reopens.
    fn rotate(&mut self) {
        let keep = self.rotation.keep;
        if keep == 0 {
            let _ = self.file.set_len(0);
            self.size = 0;
            return;
        }
        let _ = fs::remove_file(rotated(&self.path, keep));
        for n in (0..keep).rev() {
            let _ = fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
        }
        if let Ok((file, size)) = open_append(&self.path) {
            self.file = file;
            self.size = size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_timestamped_and_tagged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = LogWriter::open(&path, Rotation::default()).unwrap();
        log.write_lines("out", b"one\ntwo\n");
        log.write_lines("err", b"three\n");
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with("Z out one"), "{}", lines[0]);
        assert!(lines[2].ends_with("Z err three"));
        assert!(humantime::parse_rfc3339(lines[1].split(' ').next().unwrap()).is_ok());
    }

    #[test]
    fn rotation_keeps_the_newest_files_and_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = LogWriter::open(&path, Rotation { max_bytes: 200, keep: 2 }).unwrap();
        for i in 0..40 {
            log.write_lines("out", format!("line {i:03}\n").as_bytes());
        }
        assert!(!rotated(&path, 3).exists(), "only two old files are kept");
        let mut all = String::new();
        for n in (0..=2).rev() {
            all.push_str(&fs::read_to_string(rotated(&path, n)).unwrap_or_default());
        }
        let numbers: Vec<u32> = all.lines().map(|l| l.rsplit(' ').next().unwrap().parse().unwrap()).collect();
        let first = numbers[0];
        assert_eq!(
            numbers,
            (first..40).collect::<Vec<_>>(),
            "what is kept is contiguous and ends with the last line"
        );
    }
}
