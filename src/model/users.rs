//! Users of the HTTP API and the dashboard (issue 14 §1): their names, roles and the rules their
//! passwords follow. Socket callers are not users: they are who the kernel says (SO_PEERCRED).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a caller may do, least first (socket callers and users alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything but config secrets.
    Viewer,
    /// Also swarms, builds, deploys, rolls back and acts on procs.
    Deployer,
    /// Everything, including users, hosts, balancers and housekeeping.
    Admin,
}

impl Role {
    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "deployer" => Ok(Role::Deployer),
            "admin" => Ok(Role::Admin),
            other => Err(format!("'{other}' is not a role: use viewer, deployer or admin")),
        }
    }
}

/// Checks a user name: 1-64 of lowercase letters, digits, '.', '_' and '-', starting with a
/// letter or digit (what login names and URLs hold without escaping).
pub fn user_name(name: &str) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    let starts_well = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) || !starts_well {
        return Err(format!(
            "'{name}' is not a user name: use 1 to 64 lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
        ));
    }
    Ok(name.to_string())
}

/// Fewest characters a password may have (NIST SP 800-63B asks for at least 8; vr's users can
/// deploy code, so 10).
pub const MIN_PASSWORD: usize = 10;
/// Most bytes a password may have: enough for any passphrase, and a bound on hashing work.
pub const MAX_PASSWORD: usize = 1024;

/// Checks a new password's length (no composition rules, as NIST advises).
pub fn password(value: &str) -> Result<(), String> {
    let chars = value.chars().count();
    if chars < MIN_PASSWORD {
        return Err(format!("the password has {chars} characters; use at least {MIN_PASSWORD}"));
    }
    if value.len() > MAX_PASSWORD {
        return Err(format!("the password has {} bytes; use at most {MAX_PASSWORD}", value.len()));
    }
    Ok(())
}

/// A user as listings show it (never its password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// When it was made (unix seconds).
    pub created: i64,
    /// When its role or password last changed.
    pub updated: i64,
}

/// An API token as listings show it (never its text, which is shown once when it is made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Its id (`vr tokens revoke ID`).
    pub id: u64,
    /// The user it acts as.
    pub user: String,
    /// What it is for.
    pub name: String,
    /// When it was made (unix seconds).
    pub created: i64,
    /// When it stops working, if ever.
    pub expires: Option<i64>,
    /// When it was last used.
    pub last_used: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked: Option<i64>,
}

/// A new token: shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    /// Its id.
    pub id: u64,
    /// Its text: the bearer secret.
    pub token: String,
    /// When it stops working, if ever.
    pub expires: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_order_least_first() {
        for r in [Role::Viewer, Role::Deployer, Role::Admin] {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!(Role::Viewer < Role::Deployer && Role::Deployer < Role::Admin);
        assert!("root".parse::<Role>().unwrap_err().contains("viewer, deployer or admin"));
    }

    #[test]
    fn user_names_are_plain() {
        for good in ["alice", "bob.smith", "ci-bot_2", "7up"] {
            assert_eq!(user_name(good).as_deref(), Ok(good));
        }
        for bad in ["", "Alice", "-x", ".x", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(user_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_need_a_length_not_a_recipe() {
        assert!(password("short").unwrap_err().contains("at least 10"));
        assert!(password("correct horse").is_ok());
        assert!(password("ééééééééé").is_err(), "characters count, not bytes");
        assert!(password(&"x".repeat(1025)).unwrap_err().contains("at most 1024"));
    }
}
