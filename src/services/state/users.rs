//! Users and their API tokens (`migrations/0008_users.sql`). This module stores what it is given:
//! passwords arrive hashed and tokens as their sha256 (`services::users` makes both).

use super::sql::{args, DbError, DbResult, OptionalRow, Row};

use super::{now_secs, State, StateError};
use crate::model::users::{Role, TokenInfo, UserInfo};

/// A user with its password hash, for a login to check.
#[derive(Debug, Clone)]
pub struct StoredUser {
    /// What listings show.
    pub info: UserInfo,
    /// The argon2id PHC string.
    pub password: String,
}

fn role_of(text: String) -> DbResult<Role> {
    text.parse().map_err(DbError::parse(1))
}

fn user_row(row: &Row) -> DbResult<StoredUser> {
    Ok(StoredUser {
        info: UserInfo {
            name: row.get(0)?,
            role: role_of(row.get(1)?)?,
            created: row.get(3)?,
            updated: row.get(4)?,
        },
        password: row.get(2)?,
    })
}

fn token_row(row: &Row) -> DbResult<TokenInfo> {
    Ok(TokenInfo {
        id: u64::try_from(row.get::<i64>(0)?).unwrap_or(0),
        user: row.get(1)?,
        name: row.get(2)?,
        created: row.get(3)?,
        expires: row.get(4)?,
        last_used: row.get(5)?,
        revoked: row.get(6)?,
    })
}

const USER_COLUMNS: &str = "name, role, password, created, updated";
const TOKEN_COLUMNS: &str = "id, \"user\", name, created, expires, last_used, revoked";

impl State {
    /// Adds user `name`; `false` when the name is taken (nothing changed).
    pub async fn add_user(&self, name: String, role: Role, password: String) -> Result<bool, StateError> {
        self.call(format!("add user {name}"), move |db, what| {
            let now = now_secs();
            db.conn
                .execute(
                    "INSERT INTO users (name, role, password, created, updated) VALUES (?1, ?2, ?3, ?4, ?4)
                     ON CONFLICT (name) DO NOTHING",
                    args![name, role.as_str(), password, now],
                )
                .map(|n| n == 1)
                .map_err(StateError::query(what))
        })
        .await
    }

    /// User `name` with its password hash.
    pub async fn user(&self, name: String) -> Result<Option<StoredUser>, StateError> {
        self.call(format!("read user {name}"), move |db, what| {
            db.conn
                .query_row(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                    args![name],
                    user_row,
                )
                .optional()
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserInfo>, StateError> {
        self.call("list the users".into(), move |db, what| {
            let rows: Vec<_> = db
                .conn
                .query_map(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"), &[], user_row)
                .map_err(StateError::query(what))?;
            Ok(rows.into_iter().map(|u: StoredUser| u.info).collect())
        })
        .await
    }

    /// Changes `name`'s password hash and/or role; `false` when there is no such user.
    pub async fn update_user(
        &self,
        name: String,
        role: Option<Role>,
        password: Option<String>,
    ) -> Result<bool, StateError> {
        self.call(format!("update user {name}"), move |db, what| {
            db.conn
                .execute(
                    "UPDATE users SET role = COALESCE(?2, role), password = COALESCE(?3, password), updated = ?4
                     WHERE name = ?1",
                    args![name, role.map(Role::as_str), password, now_secs()],
                )
                .map(|n| n == 1)
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Deletes user `name` and its tokens; `false` when there is no such user.
    pub async fn delete_user(&self, name: String) -> Result<bool, StateError> {
        self.call(format!("delete user {name}"), move |db, what| {
            db.conn
                .execute("DELETE FROM users WHERE name = ?1", args![name])
                .map(|n| n == 1)
                .map_err(StateError::query(what))
        })
        .await
    }

    /// How many admins there are (the last one may not be deleted or demoted).
    pub async fn admin_count(&self) -> Result<u64, StateError> {
        self.call("count the admins".into(), move |db, what| {
            db.conn
                .query_row("SELECT COUNT(*) FROM users WHERE role = 'admin'", &[], |r| r.get::<i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Stores a token (by its hash) for `user`; its id.
    pub async fn add_token(
        &self,
        hash: String,
        user: String,
        name: String,
        expires: Option<i64>,
    ) -> Result<u64, StateError> {
        self.call(format!("add a token for user {user}"), move |db, what| {
            let id = db
                .conn
                .insert(
                    "INSERT INTO api_tokens (hash, \"user\", name, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                    args![hash, user, name, now_secs(), expires],
                )
                .map_err(StateError::query(what))?;
            Ok(u64::try_from(id).unwrap_or(0))
        })
        .await
    }

    /// The tokens of `user` (every user's when `None`), newest first.
    pub async fn tokens(&self, user: Option<String>) -> Result<Vec<TokenInfo>, StateError> {
        self.call("list the API tokens".into(), move |db, what| {
            let rows: Vec<_> = db.conn.query_map(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE CAST(?1 AS TEXT) IS NULL OR \"user\" = ?1 ORDER BY id DESC"
                ), args![user], token_row).map_err(StateError::query(what))?;
            Ok(rows)
        })
        .await
    }

    /// Token `id`, if it exists.
    pub async fn token(&self, id: u64) -> Result<Option<TokenInfo>, StateError> {
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        self.call(format!("read API token {id}"), move |db, what| {
            db.conn
                .query_row(
                    &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"),
                    args![id],
                    token_row,
                )
                .optional()
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Revokes token `id` (kept, for the record); `false` when there is no such token.
    pub async fn revoke_token(&self, id: u64) -> Result<bool, StateError> {
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        self.call(format!("revoke API token {id}"), move |db, what| {
            db.conn
                .execute(
                    "UPDATE api_tokens SET revoked = COALESCE(revoked, ?2) WHERE id = ?1",
                    args![id, now_secs()],
                )
                .map(|n| n == 1)
                .map_err(StateError::query(what))
        })
        .await
    }

    /// The user and role a token with `hash` acts as, when it is neither revoked nor expired at
    /// `now`; its use is recorded.
    pub async fn token_user(&self, hash: String, now: i64) -> Result<Option<(String, Role)>, StateError> {
        self.call("check an API token".into(), move |db, what| {
            let found: Option<(i64, String, String)> = db
                .conn
                .query_row(
                    "SELECT t.id, u.name, u.role FROM api_tokens t JOIN users u ON u.name = t.\"user\"
                     WHERE t.hash = ?1 AND t.revoked IS NULL AND (t.expires IS NULL OR t.expires > ?2)",
                    args![hash, now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(StateError::query(what))?;
            let Some((id, user, role)) = found else { return Ok(None) };
            db.conn
                .execute("UPDATE api_tokens SET last_used = ?2 WHERE id = ?1", args![id, now])
                .map_err(StateError::query(what))?;
            Ok(Some((user, role_of(role).map_err(StateError::query(what))?)))
        })
        .await
    }

    /// Stores a session (by its hash) for `user`, ending at `expires`.
    pub async fn add_session(
        &self,
        hash: String,
        user: String,
        csrf: String,
        expires: i64,
    ) -> Result<(), StateError> {
        self.call(format!("start a session of user {user}"), move |db, what| {
            let now = now_secs();
            db.conn
                .execute(
                    "INSERT INTO sessions (hash, \"user\", csrf, created, expires, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?4)",
                    args![hash, user, csrf, now, expires],
                )
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// The user, role and CSRF token of the live session with `hash` at `now` (used within
    /// `idle` seconds, before it expires); its use is recorded. A dead session is removed.
    pub async fn session_user(
        &self,
        hash: String,
        now: i64,
        idle: i64,
    ) -> Result<Option<(String, Role, String)>, StateError> {
        self.call("check a session".into(), move |db, what| {
            let found: Option<(String, String, String, i64, i64)> = db
                .conn
                .query_row(
                    "SELECT s.\"user\", u.role, s.csrf, s.expires, s.last_seen FROM sessions s JOIN users u ON u.name = s.\"user\"
                     WHERE s.hash = ?1",
                    args![hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(StateError::query(what))?;
            let Some((user, role, csrf, expires, last_seen)) = found else { return Ok(None) };
            if now >= expires || now - last_seen > idle {
                db.conn.execute("DELETE FROM sessions WHERE hash = ?1", args![hash]).map_err(StateError::query(what))?;
                return Ok(None);
            }
            db.conn
                .execute("UPDATE sessions SET last_seen = ?2 WHERE hash = ?1", args![hash, now])
                .map_err(StateError::query(what))?;
            Ok(Some((user, role_of(role).map_err(StateError::query(what))?, csrf)))
        })
        .await
    }

    /// Ends the session with `hash` (logout).
    pub async fn delete_session(&self, hash: String) -> Result<(), StateError> {
        self.call("end a session".into(), move |db, what| {
            db.conn
                .execute("DELETE FROM sessions WHERE hash = ?1", args![hash])
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Ends every session of `user` (its password or role changed).
    pub async fn delete_sessions_of(&self, user: String) -> Result<(), StateError> {
        self.call(format!("end the sessions of user {user}"), move |db, what| {
            db.conn
                .execute("DELETE FROM sessions WHERE \"user\" = ?1", args![user])
                .map(|_| ())
                .map_err(StateError::query(what))
        })
        .await
    }
}
