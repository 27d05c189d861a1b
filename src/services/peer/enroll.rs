//! Adding hosts to the fleet (kubeadm's bootstrap tokens): `vr hosts add` defines the host and
//! makes a one-time token for it; the host trades the token for a certificate (`vrd join`).
//! Tokens are 128 random bits, shown once, stored as their sha256, good for one join of that host
//! within [`TOKEN_TTL_SECS`].

use super::pki;
use crate::model::deploy::{Definition, HostSpec, Kind};
use crate::services::state::{State, StateError};

/// How long a join token is good for.
pub const TOKEN_TTL_SECS: i64 = 24 * 3600;

/// Why a host could not be added; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The name or the definition is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A new token: its text (shown once) and its stored hash.
pub fn new_token() -> Result<(String, String), EnrollError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| EnrollError::Invalid("the system's random source failed".into()))?;
    let token = pki::hex(&bytes);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// How a token is stored and looked up.
pub fn token_hash(token: &str) -> String {
    pki::sha256_hex(token.as_bytes())
}

/// Defines a joined host `name` (reached over its link; `address` is where its procs are routed)
/// in `squad`, and returns its join token. A name already taken is refused.
pub async fn add_host(state: &State, name: &str, address: &str, squad: &str) -> Result<String, EnrollError> {
    crate::model::names::host_name(name).map_err(|e| EnrollError::Invalid(e.to_string()))?;
    if state.get_definition(Kind::Host, name.to_string()).await?.is_some() {
        return Err(EnrollError::Invalid(format!(
            "host {name} exists already: pick another name, or `vr hosts token {name}` to let it join again"
        )));
    }
    if state.get_definition(Kind::Squad, squad.to_string()).await?.is_none() {
        return Err(EnrollError::Invalid(format!(
            "there is no squad {squad}: create it first (vr squads create {squad})"
        )));
    }
    if address.trim().is_empty() || address.contains(char::is_whitespace) {
        return Err(EnrollError::Invalid(format!(
            "'{address}' is not an address: give the address balancers reach the host's procs at"
        )));
    }
    let host = HostSpec {
        name: name.to_string(),
        squad: Some(squad.to_string()),
        active: true,
        address: Some(address.to_string()),
        peer: Some(address.to_string()),
        draining: false,
    };
    let def = Definition::Host(host).validated().map_err(|e| EnrollError::Invalid(e.to_string()))?;
    state.put_definition(def, true).await?;
    token_for(state, name).await
}

/// A new join token for the defined peer host `name` (to join again after its data was lost).
pub async fn token_for(state: &State, name: &str) -> Result<String, EnrollError> {
    match state.get_definition(Kind::Host, name.to_string()).await? {
        Some(Definition::Host(h)) if h.peer.is_some() => {}
        Some(_) => {
            return Err(EnrollError::Invalid(format!(
                "host {name} is served by this vrd itself, not a joined host: nothing to join"
            )))
        }
        None => {
            return Err(EnrollError::Invalid(format!(
                "there is no host {name}: add it with `vr hosts add {name} --address ADDR`"
            )))
        }
    }
    let (token, hash) = new_token()?;
    state.add_join_token(hash, name.to_string(), TOKEN_TTL_SECS).await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::deploy::SquadSpec;

    #[tokio::test]
    async fn a_host_is_added_once_with_a_token_that_joins_once() {
        let state = State::open_in_memory().unwrap();
        let squad = SquadSpec { name: "default".into(), desc: String::new() };
        state.put_definition(Definition::Squad(squad), true).await.unwrap();
        let token = add_host(&state, "h1", "198.18.0.2", "default").await.unwrap();
        assert_eq!(token.len(), 32);
        let err = add_host(&state, "h1", "198.18.0.2", "default").await.unwrap_err().to_string();
        assert!(err.contains("exists already"), "{err}");
        assert!(add_host(&state, "h/2", "x", "default").await.is_err());
        assert!(add_host(&state, "h2", "x", "nosquad").await.unwrap_err().to_string().contains("no squad"));
        assert_eq!(state.use_join_token(token_hash(&token), "h1".into()).await.unwrap(), Ok(()));
        let again = token_for(&state, "h1").await.unwrap();
        assert_ne!(again, token);
    }
}
