//! Reading other processes from /proc: a process's parent and start time (from its `stat`), its
//! children, and its command line (which nginx rewrites to say what a worker is doing).

use std::fs;

/// The fields of /proc/PID/stat after the command name, which may hold spaces and parentheses
/// (so the split starts after the last ')'); field 3 of the man page is index 0 here.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split(' ').map(str::to_string).collect())
}

/// The start time of `pid` in clock ticks since boot (field 22).
pub fn start_ticks(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The parent of `pid` (field 4).
pub fn parent(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// The living children of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&child| parent(child) == Some(pid))
        .collect()
}

/// The command line of `pid` with its NULs as spaces; `None` once it has exited.
pub fn cmdline(pid: i32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_found_with_its_parent_and_command_line() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let me = std::process::id() as i32;
        let pid = child.id() as i32;
        assert_eq!(parent(pid), Some(me));
        assert!(children(me).contains(&pid));
        // spawn() may return before the kernel shows the exec'd command line (empty until then).
        let shown = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while cmdline(pid).as_deref() == Some("") && std::time::Instant::now() < shown {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(cmdline(pid).as_deref(), Some("sleep 5"));
        assert!(start_ticks(pid).is_some());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(cmdline(pid), None);
    }
}
