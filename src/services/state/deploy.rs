//! The records of dispatch: releases (frozen, reused when equal), each swarm's numbered releases,
//! the procs each swarm owns, port locks and the deployment log.

use super::sql::{args, DbError, DbResult, EngineKind, OptionalRow, Row};
use super::{builds, notify, now_secs, to_id, to_sql_int, State, StateError};
use crate::model::build_record::BuildRecord;
use crate::model::deploy::records::{DeployLogEntry, NumberedRelease, ReleaseRecord, SwarmProcRecord};

/// A stack's active image as the state records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveImage {
    /// Its name in image caches.
    pub name: String,
    /// Its md5.
    pub md5: String,
    /// Its address in the store (sha256).
    pub sha256: String,
}

fn release_row(r: &Row) -> DbResult<ReleaseRecord> {
    let spec: String = r.get(3)?;
    Ok(ReleaseRecord {
        id: to_id(r.get(0)?),
        build: to_id(r.get(1)?),
        hash: r.get(2)?,
        spec: serde_json::from_str(&spec).map_err(DbError::parse(3))?,
        created: r.get(4)?,
    })
}

impl State {
    /// VR's `Build.get_current`: the newest build of `app` at `version` on the image `image_md5`
    /// that succeeded (and still has its slug) or is still running.
    pub async fn current_build(
        &self,
        app: String,
        version: String,
        image_md5: String,
    ) -> Result<Option<BuildRecord>, StateError> {
        self.call(format!("find the build of {app} {version}"), move |db, what| {
            builds::current(&db.conn, &app, &version, &image_md5).map_err(StateError::query(what))
        })
        .await
    }

    /// The active image of `stack`, if it has one: its name, md5 and store address (sha256).
    pub async fn active_image(&self, stack: String) -> Result<Option<ActiveImage>, StateError> {
        self.call(format!("read the active image of stack {stack}"), move |db, what| {
            db.conn
                .query_row(
                    "SELECT name, md5, artifact FROM images WHERE stack = ?1 AND active = 1 AND status = 'succeeded'",
                    args![stack],
                    |r| Ok(ActiveImage { name: r.get(0)?, md5: r.get(1)?, sha256: r.get(2)? }),
                )
                .optional()
                .map_err(StateError::query(what))
        })
        .await
    }

    /// The release of `build` with `hash`, made from `spec` when there is none yet.
    pub async fn release_for(
        &self,
        build: u64,
        hash: String,
        spec: serde_json::Value,
    ) -> Result<ReleaseRecord, StateError> {
        self.call(format!("store release {hash}"), move |db, what| {
            let find = "SELECT id, build, hash, spec, created FROM releases WHERE build = ?1 AND hash = ?2
                        ORDER BY id DESC LIMIT 1";
            let q = |db: &super::Db| {
                db.conn.query_row(find, args![to_sql_int(build), hash], release_row).optional()
            };
            if let Some(found) = q(db).map_err(StateError::query(what))? {
                return Ok(found);
            }
            let text = spec.to_string();
            db.conn
                .execute(
                    "INSERT INTO releases (build, hash, spec, created) VALUES (?1, ?2, ?3, ?4)",
                    args![to_sql_int(build), hash, text, now_secs()],
                )
                .map_err(StateError::query(what))?;
            q(db).map_err(StateError::query(what))?.ok_or_else(|| StateError::Panicked(what.to_string()))
        })
        .await
    }

    /// Release `id`.
    pub async fn release(&self, id: u64) -> Result<Option<ReleaseRecord>, StateError> {
        self.call(format!("read release {id}"), move |db, what| {
            db.conn
                .query_row(
                    "SELECT id, build, hash, spec, created FROM releases WHERE id = ?1",
                    args![to_sql_int(id)],
                    release_row,
                )
                .optional()
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Gives `release` the next number of `swarm`, unless it already is the swarm's newest.
    pub async fn number_release(&self, swarm: String, release: u64) -> Result<u64, StateError> {
        self.call(format!("number a release of swarm {swarm}"), move |db, what| {
            let last: Option<(u64, u64)> = db
                .conn
                .query_row(
                    "SELECT number, release FROM swarm_releases WHERE swarm = ?1 ORDER BY number DESC LIMIT 1",
                    args![swarm],
                    |r| Ok((to_id(r.get(0)?), to_id(r.get(1)?))),
                )
                .optional()
                .map_err(StateError::query(what))?;
            match last {
                Some((number, newest)) if newest == release => Ok(number),
                _ => {
                    let number = last.map_or(1, |(n, _)| n + 1);
                    db.conn
                        .execute(
                            "INSERT INTO swarm_releases (swarm, number, release, created) VALUES (?1, ?2, ?3, ?4)",
                            args![swarm, to_sql_int(number), to_sql_int(release), now_secs()],
                        )
                        .map_err(StateError::query(what))?;
                    Ok(number)
                }
            }
        })
        .await
    }

    /// A swarm's releases, oldest first.
    pub async fn swarm_releases(&self, swarm: String) -> Result<Vec<NumberedRelease>, StateError> {
        self.call(format!("list the releases of swarm {swarm}"), move |db, what| {
            let rows: Vec<_> = db.conn.query_map(
                    "SELECT r.id, r.build, r.hash, r.spec, r.created, s.number, s.created
                     FROM swarm_releases s JOIN releases r ON r.id = s.release WHERE s.swarm = ?1 ORDER BY s.number", args![swarm], |r| {
                    Ok(NumberedRelease { number: to_id(r.get(5)?), created: r.get(6)?, release: release_row(r)? })
                })
                .map_err(StateError::query(what))?;
            Ok(rows)
        })
        .await
    }

    /// Records that `swarm` deployed `proc` on `host`.
    pub async fn record_swarm_proc(&self, p: SwarmProcRecord) -> Result<(), StateError> {
        self.call(format!("record proc {} of swarm {}", p.proc, p.swarm), move |db, what| {
            db.conn
                .execute(
                    "INSERT INTO swarm_procs (host, proc, swarm, release, port, balancer, pool, created)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (host, proc) DO UPDATE SET swarm = excluded.swarm, release = excluded.release,
                       port = excluded.port, balancer = excluded.balancer, pool = excluded.pool,
                       created = excluded.created",
                    args![
                        p.host,
                        p.proc,
                        p.swarm,
                        to_sql_int(p.release),
                        p.port,
                        p.routed.as_ref().map(|r| r.0.clone()),
                        p.routed.as_ref().map(|r| r.1.clone()),
                        now_secs()
                    ],
                )
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Records that a swarm's proc is routed to `pool` of `balancer` (or to none).
    pub async fn set_proc_route(
        &self,
        host: String,
        proc: String,
        routed: Option<(String, String)>,
    ) -> Result<(), StateError> {
        self.call(format!("record the route of proc {proc}"), move |db, what| {
            let (b, p) = routed.unzip();
            db.conn
                .execute(
                    "UPDATE swarm_procs SET balancer = ?3, pool = ?4 WHERE host = ?1 AND proc = ?2",
                    args![host, proc, b, p],
                )
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Forgets a proc (it was destroyed).
    pub async fn forget_swarm_proc(&self, host: String, proc: String) -> Result<(), StateError> {
        self.call(format!("forget proc {proc}"), move |db, what| {
            db.conn
                .execute("DELETE FROM swarm_procs WHERE host = ?1 AND proc = ?2", args![host, proc])
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// The procs of `swarm`, or of every swarm.
    pub async fn swarm_procs(&self, swarm: Option<String>) -> Result<Vec<SwarmProcRecord>, StateError> {
        self.call("list swarm procs".into(), move |db, what| {
            let rows: Vec<_> = db
                .conn
                .query_map(
                    "SELECT host, proc, swarm, release, port, balancer, pool FROM swarm_procs
                     WHERE CAST(?1 AS TEXT) IS NULL OR swarm = ?1 ORDER BY host, proc",
                    args![swarm],
                    |r| {
                        Ok(SwarmProcRecord {
                            host: r.get(0)?,
                            proc: r.get(1)?,
                            swarm: r.get(2)?,
                            release: to_id(r.get(3)?),
                            port: r.get(4)?,
                            routed: match (r.get::<Option<String>>(5)?, r.get::<Option<String>>(6)?) {
                                (Some(b), Some(p)) => Some((b, p)),
                                _ => None,
                            },
                        })
                    },
                )
                .map_err(StateError::query(what))?;
            Ok(rows)
        })
        .await
    }

    /// Takes the lock on `port` of `host`; false when someone holds it.
    pub async fn lock_port(&self, host: String, port: u16) -> Result<bool, StateError> {
        self.call(format!("lock port {port} on {host}"), move |db, what| {
            db.conn
                .execute(
                    "INSERT INTO port_locks (host, port, created) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    args![host, port, now_secs()],
                )
                .map(|n| n == 1)
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Releases the lock on `port` of `host`.
    pub async fn unlock_port(&self, host: String, port: u16) -> Result<(), StateError> {
        self.call(format!("unlock port {port} on {host}"), move |db, what| {
            db.conn
                .execute("DELETE FROM port_locks WHERE host = ?1 AND port = ?2", args![host, port])
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// The locked ports of `host`.
    pub async fn locked_ports(&self, host: String) -> Result<Vec<u16>, StateError> {
        self.call(format!("read the port locks of {host}"), move |db, what| {
            let rows: Vec<_> = db
                .conn
                .query_map("SELECT port FROM port_locks WHERE host = ?1", args![host], |r| r.get::<u16>(0))
                .map_err(StateError::query(what))?;
            Ok(rows)
        })
        .await
    }

    /// Drops port locks older than `max_age_secs` (left by a vrd that stopped mid-dispatch).
    pub async fn prune_port_locks(&self, max_age_secs: i64) -> Result<usize, StateError> {
        self.call("prune port locks".into(), move |db, what| {
            db.conn
                .execute("DELETE FROM port_locks WHERE created < ?1", args![now_secs() - max_age_secs])
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Appends to the deployment log (with the build the step started, if any); returns the entry.
    pub async fn log_deploy(
        &self,
        trace: String,
        swarm: Option<String>,
        tags: Vec<String>,
        message: String,
        build: Option<u64>,
    ) -> Result<DeployLogEntry, StateError> {
        self.call("append to the deployment log".into(), move |db, what| {
            let time = now_secs();
            let id = db
                .conn
                .insert(
                    "INSERT INTO deploy_log (time, trace, swarm, tags, body, build) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    args![time, trace, swarm, tags.join(","), message, build.map(to_sql_int)],
                )
                .map(to_id)
                .map_err(StateError::query(what))?;
            if db.conn.kind() == EngineKind::Postgres {
                // Standbys following this dispatch hear of it once its transaction commits.
                let announce = notify::payload(notify::Announced::Deploy(id), &db.instance);
                db.conn
                    .execute("SELECT pg_notify(?1, ?2)", args![db.channel, announce])
                    .map_err(StateError::query(what))?;
            }
            Ok(DeployLogEntry { id, time, trace, swarm, tags, message, build })
        })
        .await
    }

    /// Deployment log entries after `after` (of one trace when given), oldest first.
    pub async fn deploy_log(
        &self,
        trace: Option<String>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeployLogEntry>, StateError> {
        self.call("read the deployment log".into(), move |db, what| {
            let rows: Vec<_> = db
                .conn
                .query_map(
                    "SELECT id, time, trace, swarm, tags, body, build FROM deploy_log
                     WHERE id > ?1 AND (CAST(?2 AS TEXT) IS NULL OR trace = ?2) ORDER BY id LIMIT ?3",
                    args![to_sql_int(after), trace, to_sql_int(limit)],
                    |r| {
                        let tags: String = r.get(4)?;
                        Ok(DeployLogEntry {
                            id: to_id(r.get(0)?),
                            time: r.get(1)?,
                            trace: r.get(2)?,
                            swarm: r.get(3)?,
                            tags: tags.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect(),
                            message: r.get(5)?,
                            build: r.get::<Option<i64>>(6)?.map(to_id),
                        })
                    },
                )
                .map_err(StateError::query(what))?;
            Ok(rows)
        })
        .await
    }

    /// The dispatches of the last hour whose coordinator stopped before their end: (trace,
    /// swarm) with a `swarm` step and neither a `done` nor an `aborted` one, oldest first.
    pub async fn unfinished_dispatches(&self) -> Result<Vec<(String, String)>, StateError> {
        self.call("find unfinished dispatches".into(), move |db, what| {
            db.conn
                .query_map(
                    "SELECT trace, swarm FROM deploy_log WHERE swarm IS NOT NULL AND time > ?1
                     GROUP BY trace, swarm
                     HAVING SUM(CASE WHEN (',' || tags || ',') LIKE '%,done,%'
                                       OR (',' || tags || ',') LIKE '%,aborted,%' THEN 1 ELSE 0 END) = 0
                        AND SUM(CASE WHEN (',' || tags || ',') LIKE '%,swarm,%' THEN 1 ELSE 0 END) > 0
                     ORDER BY MIN(id)",
                    args![now_secs() - 3600],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(StateError::query(what))
        })
        .await
    }
}
