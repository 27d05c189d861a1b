//! Unprivileged tests of the state database: migrations, procs, events, audit, file mode and WAL.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rusqlite::Connection;

use super::migrations::known_version;
use super::testing::engine_tests;
use super::{AuditEntry, ProcRecord, State, StateError, StateOptions};
use crate::model::supervision::{Desired, ProcEvent, ProcState};

const NAME: &str = "web-1.0-prod-abc123-web-5000";

fn user_version(path: &Path) -> u32 {
    let conn = Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap()
}

fn full_record(name: &str) -> ProcRecord {
    ProcRecord {
        name: name.to_string(),
        yaml: "cmd: ./run\n".to_string(),
        desired: Desired::Running,
        state: ProcState::Backoff,
        launcher_pid: Some(4242),
        launcher_start: Some(u64::from(u32::MAX) + 7),
        app_pid: Some(4243),
        start_time: Some(1_700_000_000),
        stop_time: Some(1_700_000_100),
        exit_status: Some(137),
        oom_killed: true,
        spawn_err: Some("no such image".to_string()),
        retries: 3,
        created: 1_600_000_000,
        updated: 1_600_000_001,
    }
}

pub(super) fn event(n: u16) -> ProcEvent {
    let state = if n.is_multiple_of(2) { ProcState::Running } else { ProcState::Exited };
    ProcEvent {
        name: format!("app-1-prod-abc-web-{n}"),
        host: "host1".to_string(),
        state: state.code(),
        statename: state.as_str().to_string(),
        pid: Some(100 + i32::from(n)),
        exitstatus: (state == ProcState::Exited).then_some(1),
        oom_killed: false,
        start_time: Some(1_700_000_000),
        stop_time: None,
        app_name: "app".to_string(),
        version: "1".to_string(),
        config_name: "prod".to_string(),
        hash: "abc".to_string(),
        proc_name: "web".to_string(),
        port: n,
        time: 1_700_000_000.25,
        event: state.event().to_string(),
    }
}

fn audit(method: &str) -> AuditEntry {
    AuditEntry {
        id: 999,
        time: 1_700_000_000_123,
        uid: 1000,
        gid: 1000,
        pid: Some(77),
        user: None,
        method: method.to_string(),
        params: r#"{"name":"x"}"#.to_string(),
        outcome: "ok".to_string(),
    }
}

#[tokio::test]
async fn migrations_apply_once_and_reopening_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let state = State::open(&path).unwrap();
    state.put_proc(full_record(NAME)).await.unwrap();
    drop(state);
    assert_eq!(user_version(&path), known_version());

    let state = State::open(&path).unwrap();
    assert_eq!(user_version(&path), known_version());
    assert_eq!(state.get_proc(NAME).await.unwrap(), Some(full_record(NAME)));
}

#[tokio::test]
async fn a_database_from_a_newer_vrd_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(State::open(&path).unwrap());
    Connection::open(&path).unwrap().pragma_update(None, "user_version", known_version() + 1).unwrap();

    let err = State::open(&path).err().unwrap();
    assert!(matches!(err, StateError::TooNew { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("newer vrd") && message.contains("upgrade vrd"), "{message}");
    assert_eq!(user_version(&path), known_version() + 1, "the file must be left alone");
}

#[tokio::test]
async fn the_file_is_private_and_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let state = State::open(&path).unwrap();
    state.put_proc(full_record(NAME)).await.unwrap();
    for file in ["state.db", "state.db-wal"] {
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn an_existing_file_is_made_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(State::open(&path).unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn a_missing_directory_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent/state.db");
    let err = State::open(&path).err().unwrap();
    assert!(matches!(err, StateError::Create { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

engine_tests! {
    async fn procs_round_trip(state) {
        assert_eq!(state.get_proc(NAME).await.unwrap(), None);
        state.put_proc(full_record("zeta-1-prod-abc-web-1")).await.unwrap();
        state.put_proc(full_record(NAME)).await.unwrap();
        let mut minimal = ProcRecord::new("alpha-1-prod-abc-web-1".into(), String::new(), Desired::Stopped, 5);
        minimal.state = ProcState::Fatal;
        state.put_proc(minimal.clone()).await.unwrap();

        assert_eq!(state.get_proc(NAME).await.unwrap(), Some(full_record(NAME)));
        let names: Vec<String> = state.list_procs().await.unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["alpha-1-prod-abc-web-1", NAME, "zeta-1-prod-abc-web-1"]);
        assert_eq!(state.get_proc(&minimal.name).await.unwrap(), Some(minimal.clone()));

        let mut replaced = full_record(NAME);
        replaced.desired = Desired::Destroyed;
        replaced.launcher_pid = None;
        state.put_proc(replaced.clone()).await.unwrap();
        assert_eq!(state.get_proc(NAME).await.unwrap(), Some(replaced));

        assert!(state.delete_proc(NAME).await.unwrap());
        assert!(!state.delete_proc(NAME).await.unwrap());
        assert_eq!(state.get_proc(NAME).await.unwrap(), None);
        assert_eq!(state.list_procs().await.unwrap().len(), 2);
    }
}

engine_tests! {
    async fn update_proc_changes_bumps_and_keeps_the_name(state) {
        assert_eq!(state.update_proc(NAME, |_| panic!("must not be called")).await.unwrap(), None);
        state.put_proc(full_record(NAME)).await.unwrap();
        let updated = state
            .update_proc(NAME, |r| {
                r.state = ProcState::Running;
                r.name = "renamed".into();
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!((updated.name.as_str(), updated.state), (NAME, ProcState::Running));
        assert!(updated.updated > full_record(NAME).updated);
        assert_eq!(state.get_proc(NAME).await.unwrap(), Some(updated));
    }
}

engine_tests! {
    async fn a_panicking_update_rolls_back_and_the_state_lives_on(state) {
        state.put_proc(full_record(NAME)).await.unwrap();
        let err = state.update_proc(NAME, |_| panic!("boom")).await.err().unwrap();
        assert!(matches!(err, StateError::Panicked(_)), "{err:?}");
        assert_eq!(state.get_proc(NAME).await.unwrap(), Some(full_record(NAME)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_proc_is_atomic_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // Two handles, two connections to one file: atomicity must hold across connections too.
    let states = [State::open(&path).unwrap(), State::open(&path).unwrap()];
    let mut record = full_record(NAME);
    record.retries = 0;
    states[0].put_proc(record).await.unwrap();

    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let state = states[i % 2].clone();
            tokio::spawn(async move { state.update_proc(NAME, |r| r.retries += 1).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap().unwrap();
    }
    assert_eq!(states[1].get_proc(NAME).await.unwrap().unwrap().retries, 50);
}

#[tokio::test]
async fn a_stored_value_that_does_not_decode_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let state = State::open(&path).unwrap();
    state.put_proc(full_record(NAME)).await.unwrap();
    Connection::open(&path).unwrap().execute("UPDATE procs SET state = 'BOGUS'", []).unwrap();
    let err = state.get_proc(NAME).await.err().unwrap();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
}

engine_tests! {
    async fn events_replay_in_order_after_an_id(state) {
        let mut ids = Vec::new();
        for n in 0..20 {
            ids.push(state.append_event(event(n)).await.unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

        let later = state.events_since(ids[11], 1000).await.unwrap();
        assert_eq!(later.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids[12..]);
        assert_eq!(
            later.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
            (12..20).map(event).collect::<Vec<_>>()
        );
        let first = state.events_since(0, 3).await.unwrap();
        assert_eq!(first.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids[..3]);
        assert!(state.events_since(ids[19], 10).await.unwrap().is_empty());
    }
}

engine_tests! {
    async fn pruning_keeps_the_newest_events(state with StateOptions { keep_events: 10 }) {
        let mut ids = Vec::new();
        for n in 0..100 {
            ids.push(state.append_event(event(n)).await.unwrap());
        }
        // The 100th append pruned.
        let kept: Vec<u64> = state.events_since(0, 1000).await.unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(kept, ids[90..]);

        for n in 100..105 {
            ids.push(state.append_event(event(n)).await.unwrap());
        }
        assert_eq!(state.events_since(0, 1000).await.unwrap().len(), 15);
        assert_eq!(state.prune_events().await.unwrap(), 5);
        let kept: Vec<u64> = state.events_since(0, 1000).await.unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(kept, ids[95..]);
        // Ids keep rising after pruning.
        assert!(state.append_event(event(0)).await.unwrap() > ids[104]);
    }
}

engine_tests! {
    async fn audit_entries_list_in_order_after_an_id(state) {
        let first = state.append_audit(audit("proc.start")).await.unwrap();
        let second = state.append_audit(audit("proc.stop")).await.unwrap();
        assert!(second > first);

        let all = state.list_audit(10, 0).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], AuditEntry { id: first, ..audit("proc.start") });
        assert_eq!(all[1].method, "proc.stop");
        assert_eq!(state.list_audit(10, first).await.unwrap(), all[1..]);
        assert_eq!(state.list_audit(1, 0).await.unwrap(), all[..1]);
    }
}

engine_tests! {
    async fn a_queued_audit_entry_is_seen_by_the_next_call_without_being_awaited(state) {
        state.queue_audit(audit("runner.run")).await.unwrap();
        state.queue_audit(audit("runner.teardown")).await.unwrap();
        let methods: Vec<String> = state.latest_audit(10).await.unwrap().into_iter().map(|e| e.method).collect();
        assert_eq!(methods, ["runner.run", "runner.teardown"], "jobs run in the order they were queued");
    }
}

engine_tests! {
    async fn pruning_the_audit_log_removes_only_entries_older_than_the_cut(state) {
        for (i, time) in [1_000, 2_000, 3_000].into_iter().enumerate() {
            state.append_audit(AuditEntry { time, ..audit(&format!("m{i}")) }).await.unwrap();
        }
        assert_eq!(state.prune_audit(2_500).await.unwrap(), 2);
        let left: Vec<String> = state.latest_audit(10).await.unwrap().into_iter().map(|e| e.method).collect();
        assert_eq!(left, ["m2"]);
        assert_eq!(state.prune_audit(2_500).await.unwrap(), 0);
    }
}

engine_tests! {
    async fn latest_audit_is_the_newest_entries_oldest_first(state) {
        for i in 0..5 {
            state.append_audit(audit(&format!("m{i}"))).await.unwrap();
        }
        let latest = state.latest_audit(2).await.unwrap();
        assert_eq!(latest.iter().map(|e| e.method.as_str()).collect::<Vec<_>>(), ["m3", "m4"]);
    }
}

engine_tests! {
    async fn builds_go_from_started_to_their_outcome_and_a_crash_leaves_them_failed(state) {
        let ok = state.start_build("app".into(), "v1".into()).await.unwrap();
        let lost = state.start_build("other".into(), "v2".into()).await.unwrap();
        assert!(lost > ok, "ids increase");
        state.set_build_log(ok, "/data/builds/1/compile.log".into()).await.unwrap();
        let outcome = crate::services::state::BuildOutcome {
            status: "succeeded".into(),
            app_commit: Some("abc".into()),
            buildpacks: vec!["bp#1".into()],
            build_md5: Some("m".into()),
            artifact: Some("s".into()),
            ..Default::default()
        };
        state.finish_build(ok, outcome).await.unwrap();
        assert_eq!(state.fail_started_builds().await.unwrap(), 1);
        let all = state.list_builds(None).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].status.as_str(), all[0].buildpacks.clone()), ("succeeded", vec!["bp#1".to_string()]));
        assert_eq!(all[1].status, "failed");
        assert_eq!(all[1].error.as_deref(), Some("vrd stopped during the build"));
        assert_eq!(state.list_builds(Some("app".into())).await.unwrap().len(), 1);
        state.mark_builds_collected(vec![ok]).await.unwrap();
        let ok_now = state.get_build(ok).await.unwrap().unwrap();
        assert!(ok_now.collected.is_some() && ok_now.artifact.is_none() && ok_now.log_path.is_none());
        assert!(state.get_build(99).await.unwrap().is_none());
    }
}

mod definitions {
    use serde_json::json;

    use crate::model::deploy::{Definition, Kind};
    use crate::services::state::testing::engine_tests;
    use crate::services::state::{State, StateError};

    fn def(kind: Kind, v: serde_json::Value) -> Definition {
        Definition::from_value(kind, v).unwrap()
    }

    engine_tests! {
        async fn references_are_checked_both_ways_with_messages_that_name_them(s) {
            let app = def(Kind::App, json!({"name": "hello", "repo_url": "/r", "stack": "busybox"}));
            let err = s.put_definition(app.clone(), true).await.unwrap_err();
            assert!(matches!(err, StateError::MissingRef { .. }), "{err}");
            assert!(err.to_string().contains("stack 'busybox'"), "{err}");
            s.put_definition(def(Kind::Stack, json!({"name": "busybox", "base_image_url": "/i.tar"})), true)
                .await
                .unwrap();
            s.put_definition(app.clone(), true).await.unwrap();
            let err = s.put_definition(app, true).await.unwrap_err();
            assert!(matches!(err, StateError::Exists { .. }), "{err}");
            let err = s.delete_definition(Kind::Stack, "busybox".into()).await.unwrap_err();
            assert!(err.to_string().contains("in use by app hello"), "{err}");
            let err = s.delete_definition(Kind::App, "nope".into()).await.unwrap_err();
            assert!(matches!(err, StateError::NotFound { .. }), "{err}");
        }
    }

    /// Stack `st`, app `a` on it, and squad `default`: what a swarm of `a` needs.
    async fn seed_app(s: &State) {
        s.put_definition(def(Kind::Stack, json!({"name": "st", "base_image_url": "/i.tar"})), true)
            .await
            .unwrap();
        s.put_definition(def(Kind::App, json!({"name": "a", "repo_url": "/r", "stack": "st"})), true)
            .await
            .unwrap();
        s.put_definition(def(Kind::Squad, json!({"name": "default"})), true).await.unwrap();
    }

    engine_tests! {
        async fn swarms_keep_their_ingredient_order_and_buildpacks_their_detect_order(s) {
            seed_app(&s).await;
            for n in ["zeta", "alpha"] {
                s.put_definition(def(Kind::Ingredient, json!({"name": n})), true).await.unwrap();
            }
            let swarm = def(Kind::Swarm, json!({"app": "a", "version": "1", "ingredients": ["zeta", "alpha"]}));
            s.put_definition(swarm, true).await.unwrap();
            let Definition::Swarm(back) = s.definition(Kind::Swarm, "a-prod-web").await.unwrap() else {
                panic!()
            };
            assert_eq!(back.ingredients, ["zeta", "alpha"]);
            let err = s.delete_definition(Kind::Ingredient, "alpha".into()).await.unwrap_err();
            assert!(err.to_string().contains("swarm a-prod-web"), "{err}");
            for (n, order) in [("late", 20), ("early", 10)] {
                let bp = def(Kind::Buildpack, json!({"name": n, "repo_url": "/b", "order": order}));
                s.put_definition(bp, true).await.unwrap();
            }
            let names: Vec<String> =
                s.list_definitions(Kind::Buildpack).await.unwrap().iter().map(|d| d.name().to_string()).collect();
            assert_eq!(names, ["early", "late"]);
        }
    }

    engine_tests! {
        async fn releases_are_reused_and_numbered_per_swarm(s) {
            let build = s.start_build_on("a".into(), "1".into(), Some("md5".into())).await.unwrap();
            let r1 = s.release_for(build, "aaaa1111".into(), json!({"x": 1})).await.unwrap();
            let again = s.release_for(build, "aaaa1111".into(), json!({"x": 1})).await.unwrap();
            assert_eq!(r1.id, again.id, "an equal release is reused");
            let r2 = s.release_for(build, "bbbb2222".into(), json!({"x": 2})).await.unwrap();
            seed_app(&s).await;
            s.put_definition(def(Kind::Swarm, json!({"app": "a", "version": "1"})), true).await.unwrap();
            let sw = "a-prod-web".to_string();
            assert_eq!(s.number_release(sw.clone(), r1.id).await.unwrap(), 1);
            assert_eq!(
                s.number_release(sw.clone(), r1.id).await.unwrap(),
                1,
                "the same release keeps its number"
            );
            assert_eq!(s.number_release(sw.clone(), r2.id).await.unwrap(), 2);
            assert_eq!(s.number_release(sw.clone(), r1.id).await.unwrap(), 3, "going back is a new step");
            assert_eq!(s.swarm_releases(sw).await.unwrap().len(), 3);
        }
    }
}

engine_tests! {
    async fn hosts_event_cursors_are_kept_and_moved(state) {
        assert!(state.host_event_cursors().await.unwrap().is_empty());
        state.set_host_event_cursor("h1".into(), 7).await.unwrap();
        state.set_host_event_cursor("h2".into(), 3).await.unwrap();
        state.set_host_event_cursor("h1".into(), 9).await.unwrap();
        let cursors = state.host_event_cursors().await.unwrap();
        assert_eq!((cursors["h1"], cursors["h2"], cursors.len()), (9, 3, 2));
    }
}

/// What only PostgreSQL has to prove: its schema version, a model shared by several vrds, and a
/// connection that comes back.
mod postgres {
    use super::*;
    use crate::services::state::testing::{defaults, Schema};
    use crate::services::state::TokenRefused;

    fn schema(test: &str) -> Option<Schema> {
        Schema::create(&format!("services::state::tests::postgres::{test}"))
    }

    #[tokio::test]
    async fn the_schema_is_migrated_once_and_one_from_a_newer_vrd_is_refused() {
        let Some(schema) = schema("the_schema_is_migrated_once") else { return };
        let first = schema.open(defaults());
        first.append_audit(audit("a")).await.unwrap();
        drop(first);
        let again = schema.open(defaults());
        assert_eq!(again.latest_audit(10).await.unwrap().len(), 1, "reopening keeps the model");
        drop(again);
        schema.admin(&format!("UPDATE vr_schema SET version = {}", known_version() + 1));
        let err = State::open_postgres(schema.target(), None, defaults()).err().unwrap();
        assert!(matches!(err, StateError::TooNew { .. }), "{err:?}");
        assert!(err.to_string().contains("newer vrd"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_vrds_share_one_model_and_a_join_token_is_used_once() {
        let Some(schema) = schema("two_vrds_share_one_model") else { return };
        let (a, b) = (schema.open(defaults()), schema.open(defaults()));
        a.set_host_cert("h1".into(), "f1".into(), 10).await.unwrap();
        assert_eq!(b.host_cert("h1".into()).await.unwrap().as_deref(), Some("f1"));
        for round in 0..20 {
            let token = format!("t{round}");
            a.add_join_token(token.clone(), "h1".into(), 3600).await.unwrap();
            let (x, y) = tokio::join!(
                a.use_join_token(token.clone(), "h1".into()),
                b.use_join_token(token, "h1".into())
            );
            let mut verdicts = [x.unwrap(), y.unwrap()];
            verdicts.sort_by_key(|v| v.is_err());
            assert_eq!(verdicts, [Ok(()), Err(TokenRefused::Used("h1".into()))], "round {round}");
        }
    }

    #[tokio::test]
    async fn a_stored_value_that_does_not_decode_is_reported_as_corrupt() {
        let Some(schema) = schema("a_stored_value_that_does_not_decode") else { return };
        let state = schema.open(defaults());
        state.append_event(event(1)).await.unwrap();
        schema.admin("UPDATE proc_events SET body = 'not json'");
        let err = state.events_since(0, 10).await.err().unwrap();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_paused_inside_a_fenced_write_does_not_keep_the_lease_from_the_others() {
        let Some(schema) = schema("a_leader_paused_inside_a_fenced_write") else { return };
        let (a, b) = (schema.open(defaults()), schema.open(defaults()));
        let ttl = std::time::Duration::from_millis(200);
        assert_eq!(a.take_lease("a".into(), None, ttl).await.unwrap(), Some(1));
        // a's fenced write has read the lease FOR SHARE, and then a stopped (SIGSTOP).
        let paused = std::thread::spawn({
            let target = schema.target();
            move || {
                let mut paused = crate::services::state::sql::connect_postgres(&target).unwrap();
                paused
                    .batch_execute(&format!(
                        "BEGIN; SELECT epoch FROM lease WHERE name = '{}' FOR SHARE",
                        super::super::sql::LEASE
                    ))
                    .unwrap();
                std::thread::sleep(std::time::Duration::from_secs(8));
                paused.is_closed() || paused.batch_execute("SELECT 1").is_err()
            }
        });
        tokio::time::sleep(ttl * 2).await;
        let took = b.take_lease("b".into(), None, std::time::Duration::from_secs(15)).await;
        assert_eq!(
            took.unwrap(),
            Some(2),
            "b takes the expired lease once the server ends a's idle transaction"
        );
        assert!(paused.join().unwrap(), "the paused session was ended, its locks with it");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn events_two_vrds_append_at_once_are_read_in_order_and_none_is_skipped() {
        let Some(schema) = schema("events_two_vrds_append_at_once") else { return };
        let (a, b, reader) = (schema.open(defaults()), schema.open(defaults()), schema.open(defaults()));
        const EACH: u16 = 150;
        let writer = |state: State| {
            tokio::spawn(async move {
                for n in 0..EACH {
                    state.append_event(event(n)).await.unwrap();
                }
            })
        };
        let (wa, wb) = (writer(a), writer(b));
        // A follower reads what committed after the last id it saw, as `vr events -f` does.
        let (mut last, mut seen) = (0, Vec::new());
        while seen.len() < usize::from(EACH) * 2 {
            let got = reader.events_since(last, 1000).await.unwrap();
            for (id, _) in got {
                assert!(id > last, "ids come in order");
                last = id;
                seen.push(id);
            }
            let finished = wa.is_finished() && wb.is_finished();
            if finished && reader.events_since(last, 1).await.unwrap().is_empty() {
                break;
            }
        }
        wa.await.unwrap();
        wb.await.unwrap();
        let all = reader.events_since(0, 10_000).await.unwrap();
        assert_eq!(seen.len(), all.len(), "the follower skipped none of the {} events", all.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_vrds_events_are_announced_as_they_commit_and_ones_own_are_not() {
        let Some(schema) = schema("another_vrds_events_are_announced") else { return };
        let (leader, standby) = (schema.open(defaults()), schema.open(defaults()));
        let mut announced = standby.others_appends().expect("a shared model announces events");
        // LISTEN is issued on the listener's own connection: wait until it is in place.
        let listening = format!(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'LISTEN vr_events%' AND application_name = '{}'",
            schema.name()
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while schema.admin(&listening) == 0 {
            assert!(std::time::Instant::now() < deadline, "the listener never listened");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        standby.append_event(event(1)).await.unwrap();
        let id = leader.append_event(event(2)).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), announced.recv()).await;
        assert_eq!(
            got.expect("announced within 10 s"),
            Some(crate::services::state::Announced::Event(id)),
            "the standby's own event is not announced to it"
        );
        let read = standby.events_since(id - 1, 1).await.unwrap();
        assert_eq!(read, [(id, event(2))]);
        assert!(
            State::open_in_memory().unwrap().others_appends().is_none(),
            "SQLite has no one to listen to"
        );
    }

    #[tokio::test]
    async fn a_lost_connection_is_made_again_and_nothing_is_lost() {
        let Some(schema) = schema("a_lost_connection_is_made_again") else { return };
        let state = schema.open(defaults());
        state.append_audit(audit("before")).await.unwrap();
        // What a restarted server does to every session.
        let ended = schema.admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}' AND pid <> pg_backend_pid()",
            schema.name()
        ));
        assert_eq!(ended, 1, "the state's one session was ended");
        state.append_audit(audit("after")).await.unwrap();
        let methods: Vec<String> =
            state.latest_audit(10).await.unwrap().into_iter().map(|e| e.method).collect();
        assert_eq!(methods, ["before", "after"]);
    }
}
