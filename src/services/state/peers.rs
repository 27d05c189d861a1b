//! Join tokens and hosts' certificates (`migrations/0004_peers.sql`): what lets a host join the
//! fleet once, and which certificate each joined host may connect with.

use super::sql::{args, OptionalRow};

use super::{now_secs, State, StateError};

/// Why a join token was not accepted; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    /// No such token (mistyped, or never made here).
    #[error("the join token is not known to this coordinator: copy it again from `vr hosts add`")]
    Unknown,
    /// Used already.
    #[error(
        "the join token was used already (tokens are good once): make a new one with `vr hosts token {0}`"
    )]
    Used(String),
    /// Too old.
    #[error("the join token expired: make a new one with `vr hosts token {0}`")]
    Expired(String),
    /// Made for another host name.
    #[error("the join token was made for host {0}, not for this one: join with --name {0}")]
    OtherHost(String),
}

impl State {
    /// The last event id taken from each joined host (`migrations/0006_event_cursors.sql`).
    pub async fn host_event_cursors(&self) -> Result<std::collections::HashMap<String, u64>, StateError> {
        self.call("read the hosts' event cursors".into(), move |db, what| {
            let rows: Vec<_> = db
                .conn
                .query_map("SELECT host, last FROM host_event_cursors", &[], |row| {
                    Ok((row.get::<String>(0)?, row.get::<i64>(1)?))
                })
                .map_err(StateError::query(what))?;
            Ok(rows
                .into_iter()
                .map(|(h, last): (String, i64)| (h, u64::try_from(last).unwrap_or(0)))
                .collect())
        })
        .await
    }

    /// Records the last event id taken from `host`.
    pub async fn set_host_event_cursor(&self, host: String, last: u64) -> Result<(), StateError> {
        let value = i64::try_from(last).unwrap_or(i64::MAX);
        self.call(format!("store host {host}'s event cursor"), move |db, what| {
            db.conn
                .execute(
                    "INSERT INTO host_event_cursors (host, last) VALUES (?1, ?2)
                     ON CONFLICT (host) DO UPDATE SET last = excluded.last",
                    args![host, value],
                )
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Stores a token (by its hash) for `host`, good for `ttl_secs`.
    pub async fn add_join_token(&self, hash: String, host: String, ttl_secs: i64) -> Result<(), StateError> {
        self.call(format!("store a join token for host {host}"), move |db, what| {
            let now = now_secs();
            db.conn
                .execute(
                    "INSERT INTO join_tokens (hash, host, created, expires) VALUES (?1, ?2, ?3, ?4)",
                    args![hash, host, now, now + ttl_secs],
                )
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Uses the token with `hash` for `host`: marks it used when it is good; says why not otherwise.
    pub async fn use_join_token(
        &self,
        hash: String,
        host: String,
    ) -> Result<Result<(), TokenRefused>, StateError> {
        self.call("use a join token".to_string(), move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            let row: Option<(String, i64, Option<i64>)> = tx
                .query_row("SELECT host, expires, used FROM join_tokens WHERE hash = ?1", args![hash], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(StateError::query(what))?;
            let verdict = match row {
                None => Err(TokenRefused::Unknown),
                Some((for_host, _, _)) if for_host != host => Err(TokenRefused::OtherHost(for_host)),
                Some((_, _, Some(_))) => Err(TokenRefused::Used(host.clone())),
                Some((_, expires, None)) if expires < now_secs() => Err(TokenRefused::Expired(host.clone())),
                Some(_) => Ok(()),
            };
            // Conditional, so two coordinators reading the token at once cannot both use it.
            let verdict = match verdict {
                Ok(()) => {
                    let n = tx
                        .execute(
                            "UPDATE join_tokens SET used = ?2 WHERE hash = ?1 AND used IS NULL",
                            args![hash, now_secs()],
                        )
                        .map_err(StateError::query(what))?;
                    if n == 1 {
                        Ok(())
                    } else {
                        Err(TokenRefused::Used(host.clone()))
                    }
                }
                refused => refused,
            };
            tx.commit().map_err(StateError::query(what))?;
            Ok(verdict)
        })
        .await
    }

    /// Makes `fingerprint` the one certificate `host` may connect with (replacing any other).
    pub async fn set_host_cert(
        &self,
        host: String,
        fingerprint: String,
        not_after: i64,
    ) -> Result<(), StateError> {
        self.call(format!("record the certificate of host {host}"), move |db, what| {
            db.conn
                .execute(
                    "INSERT INTO host_certs (host, fingerprint, not_after, issued) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (host) DO UPDATE SET fingerprint = excluded.fingerprint,
                       not_after = excluded.not_after, issued = excluded.issued",
                    args![host, fingerprint, not_after, now_secs()],
                )
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// The certificate fingerprint `host` may connect with, if it has joined.
    pub async fn host_cert(&self, host: String) -> Result<Option<String>, StateError> {
        self.call(format!("read the certificate of host {host}"), move |db, what| {
            db.conn
                .query_row("SELECT fingerprint FROM host_certs WHERE host = ?1", args![host], |r| r.get(0))
                .optional()
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Revokes `host`: its certificate and unused tokens are forgotten.
    pub async fn revoke_host(&self, host: String) -> Result<(), StateError> {
        self.call(format!("revoke host {host}"), move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            tx.execute("DELETE FROM host_certs WHERE host = ?1", args![host])
                .map_err(StateError::query(what))?;
            tx.execute("DELETE FROM join_tokens WHERE host = ?1 AND used IS NULL", args![host])
                .map_err(StateError::query(what))?;
            tx.commit().map_err(StateError::query(what))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::state::testing::engine_tests;

    engine_tests! {
        async fn a_token_is_good_once_for_its_host_until_it_expires(state) {
            state.add_join_token("t1".into(), "h1".into(), 3600).await.unwrap();
            assert_eq!(
                state.use_join_token("nope".into(), "h1".into()).await.unwrap(),
                Err(TokenRefused::Unknown)
            );
            assert_eq!(
                state.use_join_token("t1".into(), "h2".into()).await.unwrap(),
                Err(TokenRefused::OtherHost("h1".into()))
            );
            assert_eq!(state.use_join_token("t1".into(), "h1".into()).await.unwrap(), Ok(()));
            assert_eq!(
                state.use_join_token("t1".into(), "h1".into()).await.unwrap(),
                Err(TokenRefused::Used("h1".into()))
            );
            state.add_join_token("t2".into(), "h1".into(), -1).await.unwrap();
            assert_eq!(
                state.use_join_token("t2".into(), "h1".into()).await.unwrap(),
                Err(TokenRefused::Expired("h1".into()))
            );
        }
    }

    engine_tests! {
        async fn a_host_has_one_certificate_until_it_is_revoked(state) {
            state.set_host_cert("h1".into(), "a".into(), 10).await.unwrap();
            state.set_host_cert("h1".into(), "b".into(), 20).await.unwrap();
            assert_eq!(state.host_cert("h1".into()).await.unwrap().as_deref(), Some("b"));
            state.revoke_host("h1".into()).await.unwrap();
            assert_eq!(state.host_cert("h1".into()).await.unwrap(), None);
        }
    }
}
