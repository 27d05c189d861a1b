//! vr's part of haproxy's config file, as text edits that leave every other byte alone. A pool's
//! part sits between `# BEGIN vr pool <pool>` and `# END vr pool <pool>` and is either
//! - server lines inside the user's own `backend` (or `listen`) section of that name, or
//! - a whole `backend` section vr wrote, when the user has none.
//!
//! Only `server` lines inside the markers are vr's to replace: anything else a user puts there
//! (`option httpchk`, comments) stays.

/// Lines that start a section (and so end the one before).
const SECTIONS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "resolvers",
    "userlist",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "fcgi-app",
    "log-forward",
    "crt-store",
    "traces",
];

const INDENT: &str = "    ";

fn begin_marker(pool: &str) -> String {
    format!("# BEGIN vr pool {pool}")
}

fn end_marker(pool: &str) -> String {
    format!("# END vr pool {pool}")
}

fn first_word(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

fn is_server(line: &str) -> bool {
    first_word(line) == "server"
}

fn is_section_of(line: &str, backend: &str) -> bool {
    let mut words = line.split_whitespace();
    matches!(words.next(), Some("backend" | "listen")) && words.next() == Some(backend)
}

/// The config file's server line for a node.
pub fn server_line(server: &str, node: &str) -> String {
    format!("server {server} {node} check")
}

/// The lines (each with its line ending) and the index of the pool's BEGIN and END lines.
fn find_block(lines: &[&str], pool: &str) -> Result<Option<(usize, usize)>, String> {
    let (begin, end) = (begin_marker(pool), end_marker(pool));
    let at = |marker: &str| lines.iter().position(|l| l.trim() == marker);
    let count = |marker: &str| lines.iter().filter(|l| l.trim() == marker).count();
    match (at(&begin), at(&end)) {
        (None, None) => Ok(None),
        (Some(b), Some(e)) if b < e && count(&begin) == 1 && count(&end) == 1 => Ok(Some((b, e))),
        _ => Err(format!(
            "it must hold '{begin}' and, after it, '{end}', once each (or neither); repair those lines by hand"
        )),
    }
}

/// Where the user's section for `backend` ends: after its last line that is not blank or a comment.
fn section_end(lines: &[&str], backend: &str) -> Option<usize> {
    let start = lines.iter().position(|l| is_section_of(l, backend))?;
    let next = lines[start + 1..].iter().position(|l| SECTIONS.contains(&first_word(l)));
    let mut end = next.map_or(lines.len(), |n| start + 1 + n);
    while end > start + 1
        && (lines[end - 1].trim().is_empty() || lines[end - 1].trim_start().starts_with('#'))
    {
        end -= 1;
    }
    Some(end)
}

fn indented(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{INDENT}{l}\n")).collect()
}

/// `text` with the pool's server lines being exactly `servers` (config lines, unindented).
pub fn set_servers(text: &str, pool: &str, backend: &str, servers: &[String]) -> Result<String, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if let Some((b, e)) = find_block(&lines, pool)? {
        let kept: String = lines[b + 1..e].iter().filter(|l| !is_server(l)).copied().collect();
        return Ok(format!("{}{kept}{}{}", lines[..=b].concat(), indented(servers), lines[e..].concat()));
    }
    if servers.is_empty() {
        return Ok(text.to_string()); // no block to empty, none worth adding
    }
    if let Some(end) = section_end(&lines, backend) {
        let head = lines[..end].concat();
        let newline = if head.ends_with('\n') { "" } else { "\n" };
        let block = format!(
            "{newline}{INDENT}{}\n{}{INDENT}{}\n",
            begin_marker(pool),
            indented(servers),
            end_marker(pool)
        );
        return Ok(format!("{head}{block}{}", lines[end..].concat()));
    }
    let gap = match text {
        "" => "",
        t if t.ends_with('\n') => "\n",
        _ => "\n\n",
    };
    Ok(format!(
        "{text}{gap}{}\nbackend {backend}\n{INDENT}balance roundrobin\n{}{}\n",
        begin_marker(pool),
        indented(servers),
        end_marker(pool)
    ))
}

/// `text` without the pool's part when it holds no server lines: the markers inside the user's
/// backend, or the whole section vr wrote. `None` when there is nothing to remove (no markers, or
/// servers left).
pub fn remove_if_empty(text: &str, pool: &str) -> Result<Option<String>, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some((b, e)) = find_block(&lines, pool)? else { return Ok(None) };
    let inside = &lines[b + 1..e];
    if inside.iter().any(|l| is_server(l)) {
        return Ok(None);
    }
    if !inside.iter().any(|l| matches!(first_word(l), "backend" | "listen")) {
        return Ok(Some(format!("{}{}{}", lines[..b].concat(), inside.concat(), lines[e + 1..].concat())));
    }
    // Also drop the blank line set_servers put before the section.
    let start = if b > 0 && lines[b - 1].trim().is_empty() { b - 1 } else { b };
    Ok(Some(format!("{}{}", lines[..start].concat(), lines[e + 1..].concat())))
}

#[cfg(test)]
mod tests;
