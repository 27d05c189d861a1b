//! Users and API tokens (issue 14 §1): passwords hashed with argon2id, tokens made from the
//! system's random source and stored as their sha256, and the checks a login or a bearer token
//! goes through. The HTTP API's sessions build on these.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::model::users::{self, NewToken, Role, TokenInfo, UserInfo};
use crate::services::state::{State, StateError};

/// Why a user or token operation was refused; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// A name, role or password that breaks the rules.
    #[error("{0}")]
    Invalid(String),
    /// No such user or token.
    #[error("{0}")]
    NotFound(String),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The hashing or the random source failed.
    #[error("{0}")]
    Internal(String),
}

/// What every API token starts with, so secret scanners and people can tell one at a glance.
pub const TOKEN_PREFIX: &str = "vrt_";

/// The users of one vrd.
#[derive(Clone)]
pub struct Users {
    state: State,
    limiter: Arc<LoginLimiter>,
}

/// How long a browser session lasts at most (seconds).
pub const SESSION_LIFETIME: i64 = 12 * 3600;
/// How long a browser session may go unused (seconds).
pub const SESSION_IDLE: i64 = 2 * 3600;

/// A started browser session: the cookie's value and the CSRF token the page sends back.
#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie's value (stored only as its sha256).
    pub token: String,
    /// Sent back in `X-CSRF-Token` with every call the page makes.
    pub csrf: String,
    /// Who.
    pub user: UserInfo,
    /// When it ends at the latest (unix seconds).
    pub expires: i64,
}

/// How a login ended.
#[derive(Debug)]
pub enum Login {
    /// In: a new session.
    Started(Session),
    /// Wrong name or password (which, is not said).
    Refused,
    /// Too many failures from this address or for this name: try again after this many seconds.
    Throttled(u64),
}

/// Failed logins counted per client address and per user name, in fixed windows: past
/// [`LoginLimiter::MAX_FAILURES`] in [`LoginLimiter::WINDOW`], logins from there or for that
/// name are refused until the window ends (OWASP's advice: throttle, don't lock accounts out).
#[derive(Debug, Default)]
struct LoginLimiter {
    failures: std::sync::Mutex<std::collections::HashMap<String, (u32, i64)>>,
}

impl LoginLimiter {
    const MAX_FAILURES: u32 = 10;
    const WINDOW: i64 = 300;

    fn keys(from: std::net::IpAddr, name: &str) -> [String; 2] {
        [format!("ip {from}"), format!("user {name}")]
    }

    /// Seconds to wait, when either key is over its limit at `now`.
    fn wait(&self, from: std::net::IpAddr, name: &str, now: i64) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::keys(from, name)
            .iter()
            .filter_map(|k| failures.get(k))
            .filter(|(n, start)| *n >= Self::MAX_FAILURES && now < start + Self::WINDOW)
            .map(|(_, start)| u64::try_from(start + Self::WINDOW - now).unwrap_or(1))
            .max()
    }

    fn failed(&self, from: std::net::IpAddr, name: &str, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Old windows go, so the map stays as small as the recent failures.
        failures.retain(|_, (_, start)| now < *start + Self::WINDOW);
        for key in Self::keys(from, name) {
            let entry = failures.entry(key).or_insert((0, now));
            entry.0 += 1;
        }
    }

    fn succeeded(&self, name: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.remove(&format!("user {name}"));
    }
}

impl Users {
    /// Users kept in `state`.
    pub fn new(state: State) -> Users {
        Users { state, limiter: Arc::default() }
    }

    /// Logs `name` in from address `from`: a new session when the password is right and
    /// neither the address nor the name has failed too often lately.
    pub async fn start_session(
        &self,
        name: &str,
        password: &str,
        from: std::net::IpAddr,
    ) -> Result<Login, UsersError> {
        let now = now_secs();
        if let Some(wait) = self.limiter.wait(from, name, now) {
            return Ok(Login::Throttled(wait));
        }
        let Some(user) = self.login(name, password).await? else {
            self.limiter.failed(from, name, now);
            return Ok(Login::Refused);
        };
        self.limiter.succeeded(name);
        let (token, csrf) = (new_token()?, new_token()?);
        let expires = now + SESSION_LIFETIME;
        self.state.add_session(token_hash(&token), user.name.clone(), csrf.clone(), expires).await?;
        Ok(Login::Started(Session { token, csrf, user, expires }))
    }

    /// The user, role and CSRF token of the live session `token`.
    pub async fn session(&self, token: &str) -> Result<Option<(String, Role, String)>, UsersError> {
        Ok(self.state.session_user(token_hash(token), now_secs(), SESSION_IDLE).await?)
    }

    /// Ends the session `token` (logout).
    pub async fn end_session(&self, token: &str) -> Result<(), UsersError> {
        Ok(self.state.delete_session(token_hash(token)).await?)
    }

    /// Makes user `name` with `role` and `password`.
    pub async fn create(&self, name: &str, role: Role, password: &str) -> Result<UserInfo, UsersError> {
        let name = users::user_name(name).map_err(UsersError::Invalid)?;
        users::password(password).map_err(UsersError::Invalid)?;
        let hash = hash(password.to_string()).await?;
        if !self.state.add_user(name.clone(), role, hash).await? {
            return Err(UsersError::Invalid(format!(
                "user {name} exists already: `vr users passwd {name}` changes its password, `vr users delete {name}` removes it"
            )));
        }
        self.info(&name).await
    }

    /// Sets `name`'s password, role, or both. The last admin keeps its role.
    pub async fn update(
        &self,
        name: &str,
        role: Option<Role>,
        password: Option<&str>,
    ) -> Result<UserInfo, UsersError> {
        let current = self.info(name).await?;
        if current.role == Role::Admin && role.is_some_and(|r| r != Role::Admin) {
            self.keep_an_admin(name).await?;
        }
        let hash = match password {
            Some(p) => {
                users::password(p).map_err(UsersError::Invalid)?;
                Some(hash(p.to_string()).await?)
            }
            None => None,
        };
        let password_changed = hash.is_some();
        self.state.update_user(name.to_string(), role, hash).await?;
        if password_changed {
            // Whoever logged in with the old password is out.
            self.state.delete_sessions_of(name.to_string()).await?;
        }
        self.info(name).await
    }

    /// Deletes `name` and its tokens. The last admin may not be deleted.
    pub async fn delete(&self, name: &str) -> Result<(), UsersError> {
        if self.info(name).await?.role == Role::Admin {
            self.keep_an_admin(name).await?;
        }
        self.state.delete_user(name.to_string()).await?;
        Ok(())
    }

    /// Every user.
    pub async fn list(&self) -> Result<Vec<UserInfo>, UsersError> {
        Ok(self.state.users().await?)
    }

    /// The user `name` and its role when `password` is its password; `None` otherwise (an unknown
    /// name costs a hash too, so timing does not tell which names exist).
    pub async fn login(&self, name: &str, password: &str) -> Result<Option<UserInfo>, UsersError> {
        let stored = self.state.user(name.to_string()).await?;
        let phc = stored.as_ref().map(|u| u.password.clone());
        let matched = verify(password.to_string(), phc).await?;
        Ok(stored.filter(|_| matched).map(|u| u.info))
    }

    /// A new token for `user`, called `name`, good for `ttl_secs` (or until revoked).
    pub async fn create_token(
        &self,
        user: &str,
        name: &str,
        ttl_secs: Option<i64>,
    ) -> Result<NewToken, UsersError> {
        self.info(user).await?;
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(UsersError::Invalid(
                "a token's name says what it is for: 1 to 200 printable characters".into(),
            ));
        }
        if ttl_secs.is_some_and(|ttl| ttl <= 0) {
            return Err(UsersError::Invalid(
                "a token's lifetime must be positive, e.g. --expires 30d".into(),
            ));
        }
        let token = new_token()?;
        let expires = ttl_secs.map(|ttl| now_secs().saturating_add(ttl));
        let id =
            self.state.add_token(token_hash(&token), user.to_string(), name.to_string(), expires).await?;
        Ok(NewToken { id, token, expires })
    }

    /// The tokens of `user` (everyone's when `None`).
    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, UsersError> {
        Ok(self.state.tokens(user.map(str::to_string)).await?)
    }

    /// Revokes token `id`.
    pub async fn revoke_token(&self, id: u64) -> Result<TokenInfo, UsersError> {
        if !self.state.revoke_token(id).await? {
            return Err(UsersError::NotFound(format!("there is no token {id}: `vr tokens list` shows them")));
        }
        self.state.token(id).await?.ok_or_else(|| UsersError::NotFound(format!("token {id} went away")))
    }

    /// The user and role `token` acts as, when it is a live token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<(String, Role)>, UsersError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        Ok(self.state.token_user(token_hash(token), now_secs()).await?)
    }

    async fn info(&self, name: &str) -> Result<UserInfo, UsersError> {
        match self.state.user(name.to_string()).await? {
            Some(u) => Ok(u.info),
            None => Err(UsersError::NotFound(format!("there is no user {name}: `vr users list` shows them"))),
        }
    }

    async fn keep_an_admin(&self, name: &str) -> Result<(), UsersError> {
        if self.state.admin_count().await? <= 1 {
            return Err(UsersError::Invalid(format!(
                "{name} is the last admin: make another admin first (vr users create NAME --role admin)"
            )));
        }
        Ok(())
    }
}

/// An argon2id hash (PHC string, with its own salt) of `password`: off the runtime's threads, as
/// it takes tens of milliseconds on purpose.
async fn hash(password: String) -> Result<String, UsersError> {
    tokio::task::spawn_blocking(move || {
        argon2::Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| UsersError::Internal(format!("failed to hash the password: {e}")))
    })
    .await
    .map_err(|e| UsersError::Internal(format!("the hashing task failed: {e}")))?
}

/// Whether `password` matches `phc`; with no `phc` a dummy hash is checked, so both take as long.
async fn verify(password: String, phc: Option<String>) -> Result<bool, UsersError> {
    tokio::task::spawn_blocking(move || {
        let phc = match phc {
            Some(phc) => phc,
            None => dummy_hash()?,
        };
        let parsed = argon2::password_hash::phc::PasswordHash::new(&phc)
            .map_err(|e| UsersError::Internal(format!("a stored password hash is unreadable: {e}")))?;
        Ok(argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(|e| UsersError::Internal(format!("the hashing task failed: {e}")))?
}

/// The hash of a random password nobody knows, made once (argon2's default parameters, as the
/// real ones have).
fn dummy_hash() -> Result<String, UsersError> {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(phc) = DUMMY.get() {
        return Ok(phc.clone());
    }
    let phc = argon2::Argon2::default()
        .hash_password(new_token()?.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Internal(format!("failed to hash the password: {e}")))?;
    Ok(DUMMY.get_or_init(|| phc).clone())
}

/// A token's text: the prefix and 32 random bytes in hex.
fn new_token() -> Result<String, UsersError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| UsersError::Internal("the system's random source failed".into()))?;
    Ok(format!("{TOKEN_PREFIX}{}", crate::services::peer::pki::hex(&bytes)))
}

/// How a token is stored and looked up.
fn token_hash(token: &str) -> String {
    crate::services::peer::pki::sha256_hex(token.as_bytes())
}

fn now_secs() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        Users::new(State::open_in_memory().unwrap())
    }

    #[tokio::test]
    async fn a_user_logs_in_with_its_password_only() {
        let u = users();
        let alice = u.create("alice", Role::Deployer, "correct horse battery").await.unwrap();
        assert_eq!((alice.name.as_str(), alice.role), ("alice", Role::Deployer));
        assert_eq!(
            u.login("alice", "correct horse battery").await.unwrap().map(|u| u.role),
            Some(Role::Deployer)
        );
        assert_eq!(u.login("alice", "wrong horse battery").await.unwrap(), None);
        assert_eq!(u.login("nobody", "correct horse battery").await.unwrap(), None);
        let stored = u.state.user("alice".into()).await.unwrap().unwrap();
        assert!(stored.password.starts_with("$argon2id$"), "{}", stored.password);
        assert!(!stored.password.contains("horse"));
        let again = u.create("alice", Role::Admin, "another password").await.unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
        assert!(u.create("Alice", Role::Admin, "another password").await.is_err());
        assert!(u.create("bob", Role::Admin, "short").await.unwrap_err().to_string().contains("at least 10"));
        u.update("alice", None, Some("a new long password")).await.unwrap();
        assert!(u.login("alice", "correct horse battery").await.unwrap().is_none());
        assert!(u.login("alice", "a new long password").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn sessions_start_with_the_password_end_at_logout_and_failures_are_throttled() {
        let u = users();
        u.create("eve", Role::Viewer, "the right password").await.unwrap();
        let from: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let Login::Started(s) = u.start_session("eve", "the right password", from).await.unwrap() else {
            panic!("the right password starts a session")
        };
        assert_ne!(s.token, s.csrf);
        assert_eq!(
            u.session(&s.token).await.unwrap().map(|(n, r, c)| (n, r, c == s.csrf)),
            Some(("eve".into(), Role::Viewer, true))
        );
        // Idle too long, or past its end: gone.
        let hash = token_hash(&s.token);
        assert!(u
            .state
            .session_user(hash.clone(), now_secs() + SESSION_IDLE + 5, SESSION_IDLE)
            .await
            .unwrap()
            .is_none());
        assert!(u.session(&s.token).await.unwrap().is_none(), "a dead session is removed");
        let Login::Started(s) = u.start_session("eve", "the right password", from).await.unwrap() else {
            panic!()
        };
        u.end_session(&s.token).await.unwrap();
        assert!(u.session(&s.token).await.unwrap().is_none(), "logged out");
        // A password change ends every session.
        let Login::Started(s) = u.start_session("eve", "the right password", from).await.unwrap() else {
            panic!()
        };
        u.update("eve", None, Some("another right password")).await.unwrap();
        assert!(u.session(&s.token).await.unwrap().is_none());
        // Ten failures from one address: throttled, even with the right password, for a while.
        for _ in 0..10 {
            assert!(matches!(u.start_session("eve", "wrong password!", from).await.unwrap(), Login::Refused));
        }
        let throttled = u.start_session("eve", "another right password", from).await.unwrap();
        assert!(matches!(throttled, Login::Throttled(wait) if wait > 0 && wait <= 300), "{throttled:?}");
        // The name is throttled from elsewhere too; another name from elsewhere is not.
        let other: std::net::IpAddr = "198.51.100.1".parse().unwrap();
        assert!(matches!(u.start_session("eve", "x", other).await.unwrap(), Login::Throttled(_)));
        assert!(matches!(u.start_session("mallory", "x", other).await.unwrap(), Login::Refused));
    }

    #[tokio::test]
    async fn the_last_admin_stays_an_admin() {
        let u = users();
        u.create("root1", Role::Admin, "long enough pw").await.unwrap();
        let e = u.delete("root1").await.unwrap_err();
        assert!(e.to_string().contains("last admin"), "{e}");
        assert!(u.update("root1", Some(Role::Viewer), None).await.is_err());
        u.create("root2", Role::Admin, "long enough pw").await.unwrap();
        u.update("root1", Some(Role::Viewer), None).await.unwrap();
        assert!(u.delete("root2").await.is_err(), "root2 is the last admin now");
        u.delete("root1").await.unwrap();
        assert_eq!(u.list().await.unwrap().len(), 1);
        assert!(matches!(u.delete("root1").await, Err(UsersError::NotFound(_))));
    }

    #[tokio::test]
    async fn a_token_acts_as_its_user_until_revoked_expired_or_deleted() {
        let u = users();
        u.create("ci", Role::Deployer, "long enough pw").await.unwrap();
        let t = u.create_token("ci", "pipeline", None).await.unwrap();
        assert!(t.token.starts_with(TOKEN_PREFIX) && t.token.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(u.authenticate(&t.token).await.unwrap(), Some(("ci".into(), Role::Deployer)));
        assert_eq!(u.authenticate("vrt_0000").await.unwrap(), None);
        assert_eq!(u.authenticate("not a token").await.unwrap(), None);
        let listed = u.tokens(Some("ci")).await.unwrap();
        assert!(listed[0].last_used.is_some(), "use is recorded");
        assert!(!format!("{listed:?}").contains(&t.token[4..]), "listings never hold the token");
        u.revoke_token(t.id).await.unwrap();
        assert_eq!(u.authenticate(&t.token).await.unwrap(), None);
        // Expiry: good before, refused after.
        let short = u.create_token("ci", "short", Some(60)).await.unwrap();
        let hash = token_hash(&short.token);
        assert!(u.state.token_user(hash.clone(), now_secs() + 30).await.unwrap().is_some());
        assert!(u.state.token_user(hash, now_secs() + 61).await.unwrap().is_none());
        assert!(u.create_token("ci", "x", Some(0)).await.is_err());
        assert!(u.create_token("nobody", "x", None).await.is_err());
        // Deleting the user deletes its tokens.
        let last = u.create_token("ci", "last", None).await.unwrap();
        u.delete("ci").await.unwrap();
        assert_eq!(u.authenticate(&last.token).await.unwrap(), None);
        assert!(u.tokens(None).await.unwrap().is_empty());
    }
}
