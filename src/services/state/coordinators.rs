//! The coordinators sharing the model (`migrations/0012_coordinators.sql`): each records itself
//! when it starts, and reads the others: where to forward a leader's call, where to fetch an
//! artifact its store lacks, which addresses a joining host is given, and whether they all hold
//! one fleet CA.

use super::sql::{args, dialect, OptionalRow};
use super::{State, StateError};

/// One coordinator, as it recorded itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorRecord {
    /// Its host name (the lease's holder names it so).
    pub name: String,
    /// Where its peer port is reached, if it said (`peer_advertise`).
    pub address: Option<String>,
    /// The sha256 of the fleet CA's certificate it signs with.
    pub ca_sha256: String,
    /// The sha256 of its own certificate: the one accepted from it on another coordinator's port.
    pub cert_sha256: String,
}

impl State {
    /// Records (or updates) this coordinator; returns every coordinator of the model, itself
    /// included, by name.
    pub async fn register_coordinator(
        &self,
        me: CoordinatorRecord,
    ) -> Result<Vec<CoordinatorRecord>, StateError> {
        let now = dialect::now_ms(self.engine());
        let sql = format!(
            "INSERT INTO coordinators (name, address, ca_sha256, cert_sha256, seen) VALUES (?1, ?2, ?3, ?4, {now})
             ON CONFLICT (name) DO UPDATE SET address = excluded.address, ca_sha256 = excluded.ca_sha256,
               cert_sha256 = excluded.cert_sha256, seen = excluded.seen"
        );
        // Unfenced: a coordinator records itself before it competes for the lead.
        let unfenced = State { fence: None, ..self.clone() };
        let what = format!("record coordinator {}", me.name);
        unfenced
            .call(what, move |db, what| {
                let CoordinatorRecord { name, address, ca_sha256, cert_sha256 } = me;
                db.conn
                    .execute(&sql, args![name, address, ca_sha256, cert_sha256])
                    .map_err(StateError::query(what))
            })
            .await?;
        self.coordinators().await
    }

    /// Every coordinator that ever recorded itself in this model, by name.
    pub async fn coordinators(&self) -> Result<Vec<CoordinatorRecord>, StateError> {
        self.call("read the coordinators".into(), |db, what| {
            db.conn
                .query_map(
                    "SELECT name, address, ca_sha256, cert_sha256 FROM coordinators ORDER BY name",
                    &[],
                    |r| {
                        Ok(CoordinatorRecord {
                            name: r.get(0)?,
                            address: r.get(1)?,
                            ca_sha256: r.get(2)?,
                            cert_sha256: r.get(3)?,
                        })
                    },
                )
                .map_err(StateError::query(what))
        })
        .await
    }

    /// The certificate sha256 coordinator `name` recorded, if it did.
    pub async fn coordinator_cert(&self, name: String) -> Result<Option<String>, StateError> {
        self.call(format!("read coordinator {name}"), move |db, what| {
            db.conn
                .query_row("SELECT cert_sha256 FROM coordinators WHERE name = ?1", args![name], |r| r.get(0))
                .optional()
                .map_err(StateError::query(what))
        })
        .await
    }

    /// The sha256 of every artifact the model keeps (succeeded builds' slugs and stack images'
    /// tarballs that gc has not collected): what each coordinator's store should hold.
    pub async fn model_artifacts(&self) -> Result<Vec<String>, StateError> {
        self.call("read the model's artifacts".into(), |db, what| {
            db.conn
                .query_map(
                    "SELECT artifact FROM builds WHERE status = 'succeeded' AND artifact IS NOT NULL AND collected IS NULL
                     UNION
                     SELECT artifact FROM images WHERE status = 'succeeded' AND artifact IS NOT NULL AND collected IS NULL
                     ORDER BY 1",
                    &[],
                    |r| r.get(0),
                )
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Forgets coordinator `name` (taken out of the fleet for good).
    pub async fn forget_coordinator(&self, name: String) -> Result<bool, StateError> {
        self.call(format!("forget coordinator {name}"), move |db, what| {
            db.conn
                .execute("DELETE FROM coordinators WHERE name = ?1", args![name])
                .map(|n| n > 0)
                .map_err(StateError::query(what))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::state::testing::engine_tests;

    fn record(name: &str, ca: &str) -> CoordinatorRecord {
        CoordinatorRecord {
            name: name.into(),
            address: Some(format!("{name}.example:7443")),
            ca_sha256: ca.into(),
            cert_sha256: format!("cert-of-{name}"),
        }
    }

    engine_tests! {
        async fn each_coordinator_records_itself_and_reads_the_others(state) {
            assert_eq!(state.register_coordinator(record("c1", "ca")).await.unwrap(), vec![record("c1", "ca")]);
            let both = state.register_coordinator(record("c2", "ca")).await.unwrap();
            assert_eq!(both, vec![record("c1", "ca"), record("c2", "ca")]);
            let mut moved = record("c1", "ca");
            moved.address = Some("10.0.0.9:7443".into());
            moved.cert_sha256 = "renewed".into();
            let again = state.register_coordinator(moved.clone()).await.unwrap();
            assert_eq!(again, vec![moved, record("c2", "ca")], "a restart updates its own row only");
            assert_eq!(state.coordinator_cert("c1".into()).await.unwrap().as_deref(), Some("renewed"));
            assert_eq!(state.coordinator_cert("c3".into()).await.unwrap(), None);
            assert!(state.forget_coordinator("c2".into()).await.unwrap());
            assert!(!state.forget_coordinator("c2".into()).await.unwrap());
            assert_eq!(state.coordinators().await.unwrap().len(), 1);
        }

        async fn the_model_artifacts_are_the_kept_slugs_of_succeeded_builds(state) {
            let finish = |id: u64, status: &str, artifact: &str| {
                let outcome = crate::services::state::BuildOutcome {
                    status: status.into(),
                    artifact: Some(artifact.into()),
                    ..Default::default()
                };
                state.finish_build(id, outcome)
            };
            for (status, artifact) in [("succeeded", "b"), ("failed", "x"), ("succeeded", "a"), ("succeeded", "a")] {
                let id = state.start_build("app".into(), "1".into()).await.unwrap();
                finish(id, status, artifact).await.unwrap();
            }
            assert_eq!(state.model_artifacts().await.unwrap(), ["a", "b"], "each once, a failed build's not");
        }
    }
}
