//! Tests of the config-file edits: each pool's part goes in, is replaced and comes out while every
//! other byte of the user's file stays as it was.

use super::*;

const USER: &str = "global\n    stats socket /run/haproxy/admin.sock level admin\n\n\
    frontend web\n    bind :80\n    use_backend vr_hello\n\n\
    backend vr_hello\n    balance roundrobin\n    server mine 10.0.0.9:80 backup\n\n\
    # the API\nbackend api\n    server api1 10.0.0.1:8000\n";

fn servers(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| server_line(&format!("n_{}", n.replace(':', "_")), n)).collect()
}

#[test]
fn servers_go_at_the_end_of_the_users_own_backend() {
    let out = set_servers(USER, "hello", "vr_hello", &servers(&["a:1", "b:2"])).unwrap();
    let expected = USER.replace(
        "backup\n\n",
        "backup\n    # BEGIN vr pool hello\n    server n_a_1 a:1 check\n    server n_b_2 b:2 check\n    # END vr pool hello\n\n",
    );
    assert_eq!(out, expected);
}

#[test]
fn replacing_servers_keeps_the_users_lines_inside_the_markers_and_everything_outside() {
    let once = set_servers(USER, "hello", "vr_hello", &servers(&["a:1", "b:2"])).unwrap();
    let tweaked = once.replace("    # BEGIN vr pool hello\n", "    # BEGIN vr pool hello\n    # keep me\n");
    let twice = set_servers(&tweaked, "hello", "vr_hello", &servers(&["c:3"])).unwrap();
    let expected = USER.replace(
        "backup\n\n",
        "backup\n    # BEGIN vr pool hello\n    # keep me\n    server n_c_3 c:3 check\n    # END vr pool hello\n\n",
    );
    assert_eq!(twice, expected);
}

#[test]
fn a_pool_without_a_backend_gets_a_whole_section_at_the_end() {
    let out = set_servers(USER, "new", "vr_new", &servers(&["a:1"])).unwrap();
    let block = "\n# BEGIN vr pool new\nbackend vr_new\n    balance roundrobin\n    server n_a_1 a:1 check\n# END vr pool new\n";
    assert_eq!(out, format!("{USER}{block}"));
    let again = set_servers(&out, "new", "vr_new", &servers(&["b:2"])).unwrap();
    assert_eq!(again, format!("{USER}{}", block.replace("n_a_1 a:1", "n_b_2 b:2")));
}

#[test]
fn a_backend_at_the_end_of_a_file_without_a_final_newline_gets_one() {
    let text = "backend vr_x\n    balance roundrobin";
    let out = set_servers(text, "x", "vr_x", &servers(&["a:1"])).unwrap();
    assert_eq!(
        out,
        format!("{text}\n    # BEGIN vr pool x\n    server n_a_1 a:1 check\n    # END vr pool x\n")
    );
}

#[test]
fn emptied_pools_come_out_leaving_the_file_as_it_was() {
    let inside = set_servers(USER, "hello", "vr_hello", &servers(&["a:1"])).unwrap();
    let whole = set_servers(&inside, "new", "vr_new", &servers(&["b:2"])).unwrap();
    assert_eq!(remove_if_empty(&whole, "new").unwrap(), None, "servers left");
    let emptied = set_servers(&whole, "new", "vr_new", &[]).unwrap();
    assert_eq!(remove_if_empty(&emptied, "new").unwrap(), Some(inside.clone()));
    let emptied = set_servers(&inside, "hello", "vr_hello", &[]).unwrap();
    assert_eq!(remove_if_empty(&emptied, "hello").unwrap(), Some(USER.to_string()));
    assert_eq!(remove_if_empty(USER, "hello").unwrap(), None, "no markers");
}

#[test]
fn no_servers_and_no_block_leave_the_file_alone() {
    assert_eq!(set_servers(USER, "hello", "vr_hello", &[]).unwrap(), USER);
    assert_eq!(set_servers(USER, "new", "vr_new", &[]).unwrap(), USER);
}

#[test]
fn a_section_after_vrs_block_is_not_mistaken_for_part_of_it() {
    let whole = set_servers(USER, "new", "vr_new", &servers(&["b:2"])).unwrap();
    let with_more = format!("{whole}\nbackend vr_later\n    balance roundrobin\n");
    let out = set_servers(&with_more, "later", "vr_later", &servers(&["c:3"])).unwrap();
    assert!(out.ends_with("backend vr_later\n    balance roundrobin\n    # BEGIN vr pool later\n    server n_c_3 c:3 check\n    # END vr pool later\n"), "{out}");
    assert!(out.starts_with(&whole), "{out}");
}

#[test]
fn broken_markers_are_refused_not_guessed_at() {
    for text in [
        "# BEGIN vr pool p\nbackend b\n",
        "# END vr pool p\n# BEGIN vr pool p\n",
        "# BEGIN vr pool p\n# END vr pool p\n# BEGIN vr pool p\n# END vr pool p\n",
    ] {
        let err = set_servers(text, "p", "b", &[]).unwrap_err();
        assert!(err.contains("# BEGIN vr pool p") && err.contains("by hand"), "{err}");
        assert!(remove_if_empty(text, "p").is_err());
    }
    // Another pool's markers are no match for this one.
    let other = "# BEGIN vr pool p2\n# END vr pool p2\n";
    assert!(set_servers(other, "p", "b", &[]).unwrap().starts_with(other));
}
