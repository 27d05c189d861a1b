//! The `builds` table: one row per `builder.build` call, written as `started` before the work and
//! updated with the outcome after.

use super::sql::{args, Conn, DbError, DbResult, OptionalRow, Row};

use super::{now_secs, to_id, to_sql_int, State, StateError};
use crate::model::build_record::{BuildRecord, FAILED, STARTED};

/// How a build ended, as [`State::finish_build`] records it.
#[derive(Debug, Clone, Default)]
pub struct BuildOutcome {
    /// [`crate::model::build_record::SUCCEEDED`] or [`FAILED`].
    pub status: String,
    /// The failing step.
    pub step: Option<String>,
    /// The error message.
    pub error: Option<String>,
    /// The exact app revision.
    pub app_commit: Option<String>,
    /// Each buildpack that ran.
    pub buildpacks: Vec<String>,
    /// build.tar.gz's md5.
    pub build_md5: Option<String>,
    /// The slug's sha256 in the store.
    pub artifact: Option<String>,
    /// The buildpacks' config_vars.
    pub env: serde_json::Map<String, serde_json::Value>,
}

const COLUMNS: &str = "id, app_name, version, app_commit, buildpacks, status, step, error, started, ended, \
                       build_md5, artifact, log_path, collected, image_md5, env";

impl State {
    /// Records a build of `app_name` at `version` as started; returns its id.
    pub async fn start_build(&self, app_name: String, version: String) -> Result<u64, StateError> {
        self.start_build_on(app_name, version, None).await
    }

    /// Records a build of `app_name` at `version` on the stack image with `image_md5` as started.
    pub async fn start_build_on(
        &self,
        app_name: String,
        version: String,
        image_md5: Option<String>,
    ) -> Result<u64, StateError> {
        let what = format!("record a build of {app_name}");
        self.call(what, move |db, what| {
            db.conn
                .insert(
                    "INSERT INTO builds (app_name, version, status, started, image_md5) VALUES (?1, ?2, ?3, ?4, ?5)",
                    args![app_name, version, STARTED, now_secs(), image_md5],
                )
                .map(to_id)
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Where build `id` keeps its compile log.
    pub async fn set_build_log(&self, id: u64, log_path: String) -> Result<(), StateError> {
        self.call(format!("record the log of build {id}"), move |db, what| {
            db.conn
                .execute("UPDATE builds SET log_path = ?1 WHERE id = ?2", args![log_path, to_sql_int(id)])
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Records how build `id` ended.
    pub async fn finish_build(&self, id: u64, o: BuildOutcome) -> Result<(), StateError> {
        self.call(format!("record the end of build {id}"), move |db, what| {
            let packs = serde_json::to_string(&o.buildpacks)
                .map_err(|source| StateError::Encode { what: what.to_string(), source })?;
            let env = serde_json::to_string(&o.env)
                .map_err(|source| StateError::Encode { what: what.to_string(), source })?;
            db.conn
                .execute(
                    "UPDATE builds SET status = ?1, step = ?2, error = ?3, app_commit = ?4, buildpacks = ?5,
                     build_md5 = ?6, artifact = ?7, ended = ?8, env = ?10 WHERE id = ?9",
                    args![
                        o.status,
                        o.step,
                        o.error,
                        o.app_commit,
                        packs,
                        o.build_md5,
                        o.artifact,
                        now_secs(),
                        to_sql_int(id),
                        env
                    ],
                )
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Marks every build still `started` as failed: the vrd that ran it stopped. Returns how many.
    pub async fn fail_started_builds(&self) -> Result<usize, StateError> {
        self.fail_started_in("builds").await
    }

    /// Marks every row of `table` (builds or images) still `started` as failed.
    pub(super) async fn fail_started_in(&self, table: &'static str) -> Result<usize, StateError> {
        self.call(format!("mark interrupted {table} failed"), move |db, what| {
            let sql = format!(
                "UPDATE {table} SET status = ?1, error = 'vrd stopped during the build', ended = ?2 WHERE status = ?3"
            );
            db.conn.execute(&sql, args![FAILED, now_secs(), STARTED]).map_err(StateError::query(what))
        })
        .await
    }

    /// Every build, or those of `app`, oldest first.
    pub async fn list_builds(&self, app: Option<String>) -> Result<Vec<BuildRecord>, StateError> {
        self.call("list builds".into(), move |db, what| {
            list(&db.conn, app.as_deref()).map_err(StateError::query(what))
        })
        .await
    }

    /// Build `id`, if there is one.
    pub async fn get_build(&self, id: u64) -> Result<Option<BuildRecord>, StateError> {
        self.call(format!("read build {id}"), move |db, what| {
            let sql = format!("SELECT {COLUMNS} FROM builds WHERE id = ?1");
            db.conn
                .query_row(&sql, args![to_sql_int(id)], from_row)
                .optional()
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Records that gc removed the artifacts and logs of these builds.
    pub async fn mark_builds_collected(&self, ids: Vec<u64>) -> Result<(), StateError> {
        self.call("record collected builds".into(), move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            for id in ids {
                tx.execute(
                    "UPDATE builds SET artifact = NULL, log_path = NULL, collected = ?1 WHERE id = ?2",
                    args![now_secs(), to_sql_int(id)],
                )
                .map_err(StateError::query(what))?;
            }
            tx.commit().map_err(StateError::query(what))
        })
        .await
    }
}

/// The newest build of `app` at `version` on the image with `image_md5` that succeeded and still
/// has its slug, or is still running (VR's `Build.get_current`).
pub(super) fn current(
    conn: &Conn,
    app: &str,
    version: &str,
    image_md5: &str,
) -> DbResult<Option<BuildRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM builds WHERE app_name = ?1 AND version = ?2 AND image_md5 = ?3
         AND (status = 'started' OR (status = 'succeeded' AND artifact IS NOT NULL)) ORDER BY id DESC LIMIT 1"
    );
    conn.query_row(&sql, args![app, version, image_md5], from_row).optional()
}

fn list(conn: &Conn, app: Option<&str>) -> DbResult<Vec<BuildRecord>> {
    let sql =
        format!("SELECT {COLUMNS} FROM builds WHERE CAST(?1 AS TEXT) IS NULL OR app_name = ?1 ORDER BY id");
    conn.query_map(&sql, args![app], from_row)
}

fn from_row(row: &Row) -> DbResult<BuildRecord> {
    let packs: String = row.get(4)?;
    let buildpacks = serde_json::from_str(&packs).map_err(DbError::parse(4))?;
    Ok(BuildRecord {
        id: to_id(row.get(0)?),
        app_name: row.get(1)?,
        version: row.get::<Option<String>>(2)?.unwrap_or_default(),
        app_commit: row.get(3)?,
        buildpacks,
        status: row.get(5)?,
        step: row.get(6)?,
        error: row.get(7)?,
        started: row.get(8)?,
        ended: row.get(9)?,
        build_md5: row.get(10)?,
        artifact: row.get(11)?,
        log_path: row.get(12)?,
        collected: row.get(13)?,
        image_md5: row.get(14)?,
        env: serde_json::from_str(&row.get::<String>(15)?).map_err(DbError::parse(15))?,
    })
}
