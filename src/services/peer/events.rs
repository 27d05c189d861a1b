//! A joined host's proc events, gathered by its coordinator: every second the coordinator asks
//! each linked host for its events after the last one it took and stores them as its own (with
//! its own ids, the host's name in each), so `vr events [-f]` on the coordinator shows the whole
//! fleet, replays without gaps, and keeps a dead host's history. Where each host was taken up to
//! is kept in the state, so a restarted coordinator goes on from there (the events a host had
//! meanwhile are gathered too); a host never seen before is taken from its newest event on.

use crate::api::host::HostEvents;
use crate::model::supervision::ProcEvent;

/// How many events one ask takes at most.
pub const PAGE: usize = 500;

/// What to do with a page a host answered, given the last event id taken from it (`None`: none
/// yet): the cursor to keep and the events to store, oldest first.
pub fn take(cursor: Option<u64>, page: HostEvents) -> (u64, Vec<ProcEvent>) {
    match cursor {
        None => (page.last, Vec::new()),
        // The host's ids went backwards: its state was reset. Start again from its newest.
        Some(seen) if page.last < seen => (page.last, Vec::new()),
        Some(seen) => {
            let newest = page.events.last().map_or(seen, |(id, _)| *id);
            let events = page.events.into_iter().filter(|(id, _)| *id > seen).map(|(_, e)| e).collect();
            (newest.max(seen), events)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> ProcEvent {
        serde_json::from_value(serde_json::json!({
            "name": name, "host": "h1", "state": 20, "statename": "RUNNING", "pid": null,
            "exitstatus": null, "start_time": null, "stop_time": null, "app_name": "a",
            "version": "v", "config_name": "c", "hash": "h", "proc_name": "web", "port": 1, "time": 0.0,
            "event": "PROCESS_STATE_RUNNING"
        }))
        .unwrap()
    }

    #[test]
    fn a_host_is_taken_from_its_newest_event_then_page_by_page_without_repeats() {
        let first = HostEvents { last: 7, events: vec![] };
        assert_eq!(take(None, first), (7, vec![]));
        let page = HostEvents { last: 9, events: vec![(7, event("old")), (8, event("a")), (9, event("b"))] };
        let (cursor, taken) = take(Some(7), page);
        assert_eq!(cursor, 9);
        assert_eq!(taken.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(take(Some(9), HostEvents { last: 9, events: vec![] }), (9, vec![]));
        assert_eq!(take(Some(9), HostEvents { last: 2, events: vec![] }), (2, vec![]), "a reset host");
    }
}
