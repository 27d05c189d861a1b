//! `vr users ...` and `vr tokens ...`: the people and programs that use vrd over its HTTP API
//! and dashboard (admins only, on the socket). Passwords are read from the terminal without echo,
//! or from the first line of stdin with `--password-stdin`; never from the command line, where
//! every user of the host could read them in /proc.

use std::io::BufRead;
use std::path::Path;

use clap::Subcommand;

use super::client::{connect, explain};
use crate::api::{Role, TokenInfo, UserInfo, VrdClient};

/// What `vr users` does.
#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// Make a user: its password is asked for (or read from stdin with --password-stdin)
    Create {
        /// The user's name (lowercase letters, digits, '.', '_', '-')
        name: String,
        /// What the user may do: viewer (read), deployer (also swarm, build, act on procs) or admin
        #[arg(long, default_value = "viewer")]
        role: Role,
        /// Read the password from the first line of stdin instead of asking
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's password (asked for, or from stdin with --password-stdin)
    Passwd {
        /// The user
        name: String,
        /// Read the password from the first line of stdin instead of asking
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's role
    Role {
        /// The user
        name: String,
        /// viewer, deployer or admin
        role: Role,
    },
    /// Delete a user and its tokens (never the last admin)
    Delete {
        /// The user
        name: String,
    },
    /// List the users
    List {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
}

/// What `vr tokens` does.
#[derive(Debug, Subcommand)]
pub enum TokensAction {
    /// Make an API token acting as a user; it is shown once
    Create {
        /// The user it acts as
        #[arg(long)]
        user: String,
        /// What it is for (shown in listings)
        #[arg(long, default_value = "vr")]
        name: String,
        /// How long it works, e.g. 30d or 12h [default: until revoked]
        #[arg(long)]
        expires: Option<humantime::Duration>,
    },
    /// List API tokens (of one user with --user)
    List {
        /// Only this user's
        #[arg(long)]
        user: Option<String>,
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token
    Revoke {
        /// Its id (vr tokens list)
        id: u64,
    },
}

/// Runs `vr users ACTION`.
pub async fn users(socket: &Path, action: UsersAction) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    match action {
        UsersAction::Create { name, role, password_stdin } => {
            let password = read_password(password_stdin, &format!("Password for {name}: "))?;
            let user = client.users_create(name, role, password).await.map_err(explain)?;
            say!("user {} created ({})", user.name, user.role)?;
        }
        UsersAction::Passwd { name, password_stdin } => {
            let password = read_password(password_stdin, &format!("New password for {name}: "))?;
            client.users_update(name.clone(), None, Some(password)).await.map_err(explain)?;
            say!("password of {name} changed")?;
        }
        UsersAction::Role { name, role } => {
            let user = client.users_update(name, Some(role), None).await.map_err(explain)?;
            say!("{} is now {}", user.name, user.role)?;
        }
        UsersAction::Delete { name } => {
            client.users_delete(name.clone()).await.map_err(explain)?;
            say!("user {name} and its tokens deleted")?;
        }
        UsersAction::List { json } => print_users(&client.users_list().await.map_err(explain)?, json)?,
    }
    Ok(0)
}

/// Runs `vr tokens ACTION`.
pub async fn tokens(socket: &Path, action: TokensAction) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    match action {
        TokensAction::Create { user, name, expires } => {
            let ttl = expires.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let made = client.tokens_create(user.clone(), name, ttl).await.map_err(explain)?;
            say!("{}", made.token)?;
            let until = made.expires.map_or("until revoked".to_string(), |e| format!("until {}", time(e)));
            eprintln!(
                "token {} acts as {user} {until}; it is shown only now (vr tokens revoke {})",
                made.id, made.id
            );
        }
        TokensAction::List { user, json } => {
            print_tokens(&client.tokens_list(user).await.map_err(explain)?, json)?
        }
        TokensAction::Revoke { id } => {
            let t = client.tokens_revoke(id).await.map_err(explain)?;
            say!("token {} ({}, of {}) revoked", t.id, t.name, t.user)?;
        }
    }
    Ok(0)
}

/// The password: the first line of stdin, or asked twice on the terminal without echo.
fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let first = rpassword::prompt_password(prompt)
        .map_err(|e| anyhow::anyhow!("could not ask for the password ({e}): use --password-stdin"))?;
    let again = rpassword::prompt_password("Again: ")?;
    if first != again {
        anyhow::bail!("the two passwords differ: nothing changed");
    }
    Ok(first)
}

fn time(secs: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

fn print_users(users: &[UserInfo], json: bool) -> std::io::Result<()> {
    if json {
        return say!("{}", serde_json::to_string_pretty(users).unwrap_or_default());
    }
    say!("{:<24} {:<9} {:<21} UPDATED", "NAME", "ROLE", "CREATED")?;
    for u in users {
        say!("{:<24} {:<9} {:<21} {}", u.name, u.role, time(u.created), time(u.updated))?;
    }
    Ok(())
}

fn print_tokens(tokens: &[TokenInfo], json: bool) -> std::io::Result<()> {
    if json {
        return say!("{}", serde_json::to_string_pretty(tokens).unwrap_or_default());
    }
    say!("{:<6} {:<16} {:<20} {:<21} {:<21} STATE", "ID", "USER", "NAME", "CREATED", "LAST USED")?;
    let now = i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs(),
    )
    .unwrap_or(i64::MAX);
    for t in tokens {
        let state = match (t.revoked, t.expires) {
            (Some(at), _) => format!("revoked {}", time(at)),
            (None, Some(e)) if e <= now => format!("expired {}", time(e)),
            (None, Some(e)) => format!("expires {}", time(e)),
            (None, None) => "live".to_string(),
        };
        let used = t.last_used.map(time).unwrap_or_else(|| "never".into());
        say!("{:<6} {:<16} {:<20} {:<21} {:<21} {state}", t.id, t.user, t.name, time(t.created), used)?;
    }
    Ok(())
}
