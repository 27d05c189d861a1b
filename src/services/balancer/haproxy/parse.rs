//! Reading the runtime API's answers: `show servers state <backend>` (which servers a backend has)
//! and `show stat <backend> 4 -1` (their current sessions). Columns are found by their header
//! names, not their positions, since haproxy versions add columns.

use std::collections::BTreeMap;

/// What `show servers state` answers for a backend the running haproxy does not have.
const NO_BACKEND: &str = "Can't find backend.";

/// The server names of `backend`, or `None` when haproxy has no such backend.
pub fn servers_state(text: &str, backend: &str) -> Result<Option<Vec<String>>, String> {
    if text.trim() == NO_BACKEND {
        return Ok(None);
    }
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    if lines.next().map(str::trim) != Some("1") {
        return Err(format!("expected the format version 1 on the first line, got: {}", first_line(text)));
    }
    let header = lines.next().and_then(|h| h.strip_prefix('#')).ok_or("no column header")?;
    let columns: Vec<&str> = header.split_whitespace().collect();
    let (be, srv) = (column(&columns, "be_name")?, column(&columns, "srv_name")?);
    let mut names = Vec::new();
    for line in lines.filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match (fields.get(be), fields.get(srv)) {
            (Some(b), Some(s)) if *b == backend => names.push((*s).to_string()),
            (Some(_), Some(_)) => {}
            _ => return Err(format!("a line has too few columns: {line}")),
        }
    }
    Ok(Some(names))
}

/// Current sessions (`scur`) per server name, from `show stat`'s CSV.
pub fn sessions(text: &str, backend: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().and_then(|h| h.strip_prefix("# ")).ok_or_else(|| first_line(text))?;
    let columns: Vec<&str> = header.split(',').collect();
    let (px, sv, scur) =
        (column(&columns, "pxname")?, column(&columns, "svname")?, column(&columns, "scur")?);
    let mut out = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(p), Some(s), Some(n)) = (fields.get(px), fields.get(sv), fields.get(scur)) else {
            return Err(format!("a line has too few columns: {line}"));
        };
        if *p == backend && !matches!(*s, "FRONTEND" | "BACKEND") {
            out.insert((*s).to_string(), n.parse().unwrap_or(0));
        }
    }
    Ok(out)
}

fn column(columns: &[&str], name: &str) -> Result<usize, String> {
    columns.iter().position(|c| *c == name).ok_or_else(|| format!("no '{name}' column"))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("(nothing)").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real answers of haproxy 2.6.
    const STATE: &str =
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight \
        srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health \
        srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord \
        srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\
        5 vr_cfg 1 n_127.0.0.1_15009 127.0.0.1 0 0 1 1 0 8 2 0 6 0 0 0 - 15009 - 0 0 - - 0\n\
        5 vr_cfg 2 n_localhost_15010 127.0.0.1 2 0 1 1 0 1 0 2 6 0 0 0 localhost 15010 - 0 0 - - 0\n\n";
    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin\n\
        vr_hello,n_127.0.0.1_15003,0,0,1,0,,0,0\nvr_hello,web1,0,0,0,0,,0,0\nvr_hello,BACKEND,0,0,1,0,,0,0\n\n";

    #[test]
    fn a_backends_servers_are_read_by_column_name() {
        let names = servers_state(STATE, "vr_cfg").unwrap().unwrap();
        assert_eq!(names, ["n_127.0.0.1_15009", "n_localhost_15010"]);
        assert_eq!(servers_state(STATE, "other").unwrap().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn an_empty_backend_and_a_missing_one_differ() {
        let empty = "1\n# be_id be_name srv_id srv_name srv_addr\n\n";
        assert_eq!(servers_state(empty, "b").unwrap(), Some(vec![]));
        assert_eq!(servers_state("Can't find backend.\n\n", "b").unwrap(), None);
    }

    #[test]
    fn an_answer_of_another_shape_is_an_error_not_an_empty_pool() {
        assert!(servers_state("Permission denied\n", "b").unwrap_err().contains("Permission denied"));
        assert!(servers_state("2\n# be_id be_name\n", "b").is_err());
        assert!(servers_state("1\n# be_id srv_id\n", "b").unwrap_err().contains("be_name"));
        assert!(servers_state("1\n# be_id be_name srv_id srv_name\n3 b\n", "b").is_err());
    }

    #[test]
    fn sessions_are_counted_per_server_without_the_totals() {
        let by_server = sessions(STAT, "vr_hello").unwrap();
        assert_eq!(by_server, BTreeMap::from([("n_127.0.0.1_15003".into(), 1), ("web1".into(), 0)]));
        assert!(sessions("Unknown command\n", "b").is_err());
    }
}
