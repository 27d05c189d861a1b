//! The `images` table: the images `vr stacks build` makes, `started` before the work and updated
//! with the outcome after; a successful build becomes its stack's active image in the same
//! transaction (the `one_active_image` index keeps it to one per stack). Also which builds the
//! swarms' releases still use, for gc.

use super::sql::{args, Conn, DbResult, OptionalRow, Row};

use super::{now_secs, to_id, to_sql_int, State, StateError};
use crate::model::build_record::{FAILED, STARTED, SUCCEEDED};
use crate::model::image_record::ImageRecord;

/// A successful image build, as [`State::finish_image`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The tarball's md5.
    pub md5: String,
    /// The tarball's sha256 (its store address).
    pub artifact: String,
    /// Where procs fetch it.
    pub url: String,
}

const COLUMNS: &str =
    "id, stack, name, status, error, md5, artifact, url, log_path, active, created, ended, collected";

fn from_row(r: &Row) -> DbResult<ImageRecord> {
    Ok(ImageRecord {
        id: to_id(r.get(0)?),
        stack: r.get(1)?,
        name: r.get(2)?,
        status: r.get(3)?,
        error: r.get(4)?,
        md5: r.get(5)?,
        artifact: r.get(6)?,
        url: r.get(7)?,
        log_path: r.get(8)?,
        active: r.get::<i64>(9)? != 0,
        created: r.get(10)?,
        ended: r.get(11)?,
        collected: r.get(12)?,
    })
}

fn get(conn: &Conn, id: u64) -> DbResult<Option<ImageRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM images WHERE id = ?1");
    conn.query_row(&sql, args![to_sql_int(id)], from_row).optional()
}

/// `<stack>-<n>`, n one more than the stack's images so far (the number is all digits, so two
/// stacks' image names never meet).
fn next_name(conn: &Conn, stack: &str) -> DbResult<String> {
    let count: i64 =
        conn.query_row("SELECT COUNT(*) FROM images WHERE stack = ?1", args![stack], |r| r.get(0))?;
    Ok(format!("{stack}-{}", count + 1))
}

impl State {
    /// Records a new image of `stack` as started, named `<stack>-<n>`; `log_path` says where the
    /// image with a given id keeps its build log.
    pub async fn start_image(
        &self,
        stack: String,
        log_path: impl FnOnce(u64) -> String + Send + 'static,
    ) -> Result<ImageRecord, StateError> {
        self.call(format!("record an image build of stack {stack}"), move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            let name = next_name(&tx, &stack).map_err(StateError::query(what))?;
            let id = tx
                .insert(
                    "INSERT INTO images (stack, name, status, created) VALUES (?1, ?2, ?3, ?4)",
                    args![stack, name, STARTED, now_secs()],
                )
                .map(to_id)
                .map_err(StateError::query(what))?;
            tx.execute("UPDATE images SET log_path = ?1 WHERE id = ?2", args![log_path(id), to_sql_int(id)])
                .map_err(StateError::query(what))?;
            let record = get(&tx, id).map_err(StateError::query(what))?;
            tx.commit().map_err(StateError::query(what))?;
            record.ok_or_else(|| StateError::Panicked(what.to_string()))
        })
        .await
    }

    /// Records how image `id` ended; a built one becomes its stack's active image.
    pub async fn finish_image(
        &self,
        id: u64,
        outcome: Result<BuiltImage, String>,
    ) -> Result<ImageRecord, StateError> {
        self.call(format!("record the end of image {id}"), move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            let q = StateError::query(what);
            match outcome {
                Ok(b) => {
                    tx.execute(
                        "UPDATE images SET status = ?1, md5 = ?2, artifact = ?3, url = ?4, ended = ?5 WHERE id = ?6",
                        args![SUCCEEDED, b.md5, b.artifact, b.url, now_secs(), to_sql_int(id)],
                    )
                    .and_then(|_| activate(&tx, id))
                    .map_err(q)?;
                }
                Err(error) => {
                    tx.execute(
                        "UPDATE images SET status = ?1, error = ?2, ended = ?3 WHERE id = ?4",
                        args![FAILED, error, now_secs(), to_sql_int(id)],
                    )
                    .map_err(q)?;
                }
            }
            let record = get(&tx, id).map_err(StateError::query(what))?;
            tx.commit().map_err(StateError::query(what))?;
            record.ok_or_else(|| StateError::Panicked(what.to_string()))
        })
        .await
    }

    /// Makes image `id` its stack's active image, if it was built and gc has not collected it;
    /// false otherwise (nothing changes).
    pub async fn activate_image(&self, id: u64) -> Result<bool, StateError> {
        self.call(format!("activate image {id}"), move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            let usable: Option<i64> = tx
                .query_row(
                    "SELECT id FROM images WHERE id = ?1 AND status = ?2 AND collected IS NULL",
                    args![to_sql_int(id), SUCCEEDED],
                    |r| r.get(0),
                )
                .optional()
                .map_err(StateError::query(what))?;
            if usable.is_none() {
                return Ok(false);
            }
            activate(&tx, id).map_err(StateError::query(what))?;
            tx.commit().map_err(StateError::query(what))?;
            Ok(true)
        })
        .await
    }

    /// Image `id`, if there is one.
    pub async fn get_image(&self, id: u64) -> Result<Option<ImageRecord>, StateError> {
        self.call(format!("read image {id}"), move |db, what| {
            get(&db.conn, id).map_err(StateError::query(what))
        })
        .await
    }

    /// Every image (of `stack` when given), oldest first.
    pub async fn list_images(&self, stack: Option<String>) -> Result<Vec<ImageRecord>, StateError> {
        self.call("list images".into(), move |db, what| {
            let sql = format!(
                "SELECT {COLUMNS} FROM images WHERE CAST(?1 AS TEXT) IS NULL OR stack = ?1 ORDER BY id"
            );
            let rows: Vec<_> =
                db.conn.query_map(&sql, args![stack], from_row).map_err(StateError::query(what))?;
            Ok(rows)
        })
        .await
    }

    /// Marks every image build still `started` as failed: the vrd that ran it stopped.
    pub async fn fail_started_images(&self) -> Result<usize, StateError> {
        self.fail_started_in("images").await
    }

    /// Records that gc removes the tarballs and logs of these images; an image that became active
    /// meanwhile is left alone. Returns the ids marked.
    pub async fn mark_images_collected(&self, ids: Vec<u64>) -> Result<Vec<u64>, StateError> {
        self.call("record collected images".into(), move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            let mut marked = Vec::new();
            for id in ids {
                let n = tx
                    .execute(
                        "UPDATE images SET artifact = NULL, url = NULL, log_path = NULL, collected = ?1
                         WHERE id = ?2 AND active = 0 AND collected IS NULL",
                        args![now_secs(), to_sql_int(id)],
                    )
                    .map_err(StateError::query(what))?;
                if n == 1 {
                    marked.push(id);
                }
            }
            tx.commit().map_err(StateError::query(what))?;
            Ok(marked)
        })
        .await
    }

    /// The builds a swarm still needs: those of its procs' releases and of its newest release.
    pub async fn builds_in_use(&self) -> Result<Vec<u64>, StateError> {
        self.call("list the builds swarms use".into(), move |db, what| {
            let rows: Vec<_> = db
                .conn
                .query_map(
                    "SELECT r.build FROM swarm_procs p JOIN releases r ON r.id = p.release
                     UNION
                     SELECT r.build FROM swarm_releases s JOIN releases r ON r.id = s.release
                     WHERE s.number = (SELECT MAX(number) FROM swarm_releases WHERE swarm = s.swarm)",
                    &[],
                    |r| r.get::<i64>(0).map(to_id),
                )
                .map_err(StateError::query(what))?;
            Ok(rows)
        })
        .await
    }
}

/// Makes `id` the only active image of its stack (clearing the old one first, for the unique index).
fn activate(conn: &Conn, id: u64) -> DbResult<()> {
    let id = to_sql_int(id);
    conn.execute(
        "UPDATE images SET active = 0 WHERE active = 1 AND stack = (SELECT stack FROM images WHERE id = ?1)",
        args![id],
    )?;
    conn.execute("UPDATE images SET active = 1 WHERE id = ?1", args![id]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::deploy::{Definition, StackSpec};
    use crate::services::state::testing::engine_tests;

    async fn state_with_stack(state: State, name: &str) -> State {
        let stack: StackSpec =
            serde_json::from_value(serde_json::json!({"name": name, "base_image_url": "/b.tar"})).unwrap();
        state.put_definition(Definition::Stack(stack), true).await.unwrap();
        state
    }

    fn built(n: u8) -> Result<BuiltImage, String> {
        let hex = |len| format!("{n:0len$x}");
        Ok(BuiltImage { md5: hex(32), artifact: hex(64), url: format!("/store/{}", hex(64)) })
    }

    engine_tests! {
        async fn each_built_image_becomes_the_only_active_one_and_can_be_rolled_back(state) {
            let state = state_with_stack(state, "web").await;
            let first = state.start_image("web".into(), |id| format!("/logs/{id}")).await.unwrap();
            assert_eq!((first.name.as_str(), first.status.as_str()), ("web-1", STARTED));
            assert_eq!(first.log_path.as_deref(), Some(format!("/logs/{}", first.id).as_str()));
            assert!(state.active_image("web".into()).await.unwrap().is_none(), "not active while building");
            state.finish_image(first.id, built(1)).await.unwrap();
            let second = state.start_image("web".into(), |id| format!("/logs/{id}")).await.unwrap();
            assert_eq!(second.name, "web-2");
            let done = state.finish_image(second.id, built(2)).await.unwrap();
            assert!(done.active);
            let active = state.active_image("web".into()).await.unwrap().unwrap();
            assert_eq!(active.md5, format!("{:032x}", 2));
            let failed = state.start_image("web".into(), |id| format!("/logs/{id}")).await.unwrap();
            let failed = state.finish_image(failed.id, Err("script failed".into())).await.unwrap();
            assert!(!failed.active && failed.error.as_deref() == Some("script failed"));
            assert!(!state.activate_image(failed.id).await.unwrap(), "a failed image can't be active");
            assert!(state.activate_image(first.id).await.unwrap());
            let images = state.list_images(Some("web".into())).await.unwrap();
            let actives: Vec<&str> = images.iter().filter(|i| i.active).map(|i| i.name.as_str()).collect();
            assert_eq!(actives, ["web-1"]);
        }
    }

    engine_tests! {
        async fn gc_never_marks_the_active_image_and_a_collected_one_cant_come_back(state) {
            let state = state_with_stack(state, "web").await;
            let mut ids = Vec::new();
            for n in 1..=2 {
                let image = state.start_image("web".into(), |id| format!("/logs/{id}")).await.unwrap();
                state.finish_image(image.id, built(n)).await.unwrap();
                ids.push(image.id);
            }
            assert_eq!(state.mark_images_collected(ids.clone()).await.unwrap(), [ids[0]]);
            let old = state.get_image(ids[0]).await.unwrap().unwrap();
            assert!(old.collected.is_some() && old.artifact.is_none() && old.url.is_none());
            assert!(!state.activate_image(ids[0]).await.unwrap());
        }
    }

    engine_tests! {
        async fn an_interrupted_image_build_is_failed_at_startup(state) {
            let state = state_with_stack(state, "web").await;
            let image = state.start_image("web".into(), |id| format!("/logs/{id}")).await.unwrap();
            assert_eq!(state.fail_started_images().await.unwrap(), 1);
            let image = state.get_image(image.id).await.unwrap().unwrap();
            assert_eq!(image.status, FAILED);
        }
    }
}
