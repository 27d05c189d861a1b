//! Who may call what: every operation's name with the role it needs, in one table that every
//! transport goes through ([`super::Ops`] checks it before any work and audits what it refuses).
//! On the socket, root and members of the configured admins group are admins; every other caller
//! (a member of the socket's group) is a deployer, whose requests [`super::privilege`] also checks
//! for what only an admin may ask (volumes outside the allowed prefixes, uid 0, local paths the
//! caller could not read). See ARCHITECTURE.md "Who may do what".

use std::path::PathBuf;
use std::sync::Arc;

use crate::api::{codes, ApiError};
use crate::config::DaemonConfig;

/// The part of vrd's config that decides what callers may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Members of this group are admins (root always is).
    pub admins_gid: Option<u32>,
    /// Host directories under which a non-admin may mount volumes.
    pub volume_prefixes: Vec<PathBuf>,
}

impl Policy {
    /// The policy `config` sets.
    pub fn of(config: &DaemonConfig) -> Policy {
        Policy { admins_gid: config.admins_gid, volume_prefixes: config.volume_prefixes.clone() }
    }

    /// The role of a socket caller with these ids: root and the admins group's members are admins.
    pub fn role_of(&self, uid: u32, gid: u32, groups: &[u32]) -> Role {
        let in_admins = self.admins_gid.is_some_and(|admins| gid == admins || groups.contains(&admins));
        if uid == 0 || in_admins {
            Role::Admin
        } else {
            Role::Deployer
        }
    }
}

pub use crate::model::users::Role;

use crate::api::forward::Caller;

/// The uid and gid of a caller with none on this host (an HTTPS user).
pub const NOBODY: u32 = 65534;

/// How a call reached vrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The local Unix socket (SO_PEERCRED identity).
    Socket,
    /// The HTTPS listener (a user, by an API token).
    Https,
    /// Another coordinator's peer port: a standby forwarded a leader's duty (`through` names it).
    Forwarded,
}

/// Who is calling, as every transport describes its caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User id (for the socket, the connection's peer credentials).
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups (for the socket, SO_PEERGROUPS at connect time).
    pub groups: Arc<[u32]>,
    /// Process id, when the kernel knows it.
    pub pid: Option<i32>,
    /// The transport.
    pub via: Via,
    /// What the caller may do.
    pub role: Role,
    /// The user, over the HTTPS listener (`None` on the socket).
    pub user: Option<String>,
    /// The coordinator a forwarded call came through.
    pub through: Option<String>,
}

impl Principal {
    /// A caller on the local socket: root or a member of the socket's group (the socket's mode
    /// 0660 already kept everyone else out), with the role `policy` gives its ids.
    pub fn socket(uid: u32, gid: u32, groups: Vec<u32>, pid: Option<i32>, policy: &Policy) -> Principal {
        let role = policy.role_of(uid, gid, &groups);
        Principal { uid, gid, groups: groups.into(), pid, via: Via::Socket, role, user: None, through: None }
    }

    /// A user over the HTTPS listener, with its role. It has no uid on this host: checks that
    /// ask what the caller could read on the host answer as for nobody (65534).
    pub fn user(name: String, role: Role) -> Principal {
        Principal {
            uid: NOBODY,
            gid: NOBODY,
            groups: Arc::from([]),
            pid: None,
            via: Via::Https,
            role,
            user: Some(name),
            through: None,
        }
    }

    /// A caller a standby forwarded from coordinator `through`: who they were there. Their role
    /// is checked here again; no check asks their uid about this host's files (a forwarded call
    /// names none).
    pub fn forwarded(caller: Caller, through: String) -> Principal {
        Principal {
            uid: caller.uid,
            gid: caller.gid,
            groups: caller.groups.into(),
            pid: caller.pid,
            via: Via::Forwarded,
            role: caller.role,
            user: caller.user,
            through: Some(through),
        }
    }

    /// Who this is, to forward a call as them.
    pub fn caller(&self) -> Caller {
        Caller {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.to_vec(),
            pid: self.pid,
            role: self.role,
            user: self.user.clone(),
        }
    }

    /// Whether the caller is an admin (root, or a member of the admins group).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Every operation and the role it needs. A name missing here is refused (deny by default); a
/// test checks that every method of the API is listed.
const TABLE: &[(&str, Role)] = &[
    ("vrd.version", Role::Viewer),
    ("procs.list", Role::Viewer),
    ("logs.read", Role::Viewer),
    ("logs.follow", Role::Viewer),
    ("events.list", Role::Viewer),
    ("events.follow", Role::Viewer),
    ("builds.list", Role::Viewer),
    ("builds.show", Role::Viewer),
    ("builds.log", Role::Viewer),
    ("builds.follow", Role::Viewer),
    ("objects.get", Role::Viewer),
    ("objects.list", Role::Viewer),
    ("swarms.releases", Role::Viewer),
    ("swarms.procs", Role::Viewer),
    ("releases.show", Role::Viewer),
    ("deploys.log", Role::Viewer),
    ("deploys.follow", Role::Viewer),
    ("uptests.latest", Role::Viewer),
    ("balancers.list", Role::Viewer),
    ("balancers.nodes", Role::Viewer),
    ("stacks.images", Role::Viewer),
    ("stacks.follow", Role::Viewer),
    ("hosts.links", Role::Viewer),
    ("hosts.leader", Role::Viewer),
    ("hosts.list", Role::Viewer),
    // Not a JSON-RPC method: the HTTPS listener's GET /metrics.
    ("metrics.read", Role::Viewer),
    ("runner.uptest", Role::Deployer),
    ("runner.setup", Role::Deployer),
    ("runner.run", Role::Deployer),
    ("runner.shell", Role::Deployer),
    ("runner.signal", Role::Deployer),
    ("runner.teardown", Role::Deployer),
    ("proc.deploy", Role::Deployer),
    ("procs.start", Role::Deployer),
    ("procs.stop", Role::Deployer),
    ("procs.restart", Role::Deployer),
    ("procs.destroy", Role::Deployer),
    ("procs.force-destroy", Role::Deployer),
    ("imager.build", Role::Deployer),
    ("imager.shell", Role::Deployer),
    ("builder.build", Role::Deployer),
    ("builder.shell", Role::Deployer),
    ("objects.create", Role::Deployer),
    ("objects.update", Role::Deployer),
    ("objects.delete", Role::Deployer),
    ("swarms.dispatch", Role::Deployer),
    ("swarms.rollback", Role::Deployer),
    ("releases.deploy", Role::Deployer),
    ("apps.build", Role::Deployer),
    ("uptests.run", Role::Deployer),
    ("stacks.build", Role::Deployer),
    ("stacks.activate", Role::Deployer),
    ("audit.list", Role::Admin),
    ("builds.gc", Role::Admin),
    ("housekeeping.scoop", Role::Admin),
    ("hosts.add", Role::Admin),
    ("users.create", Role::Admin),
    ("users.update", Role::Admin),
    ("users.delete", Role::Admin),
    ("users.list", Role::Admin),
    ("tokens.create", Role::Admin),
    ("tokens.list", Role::Admin),
    ("tokens.revoke", Role::Admin),
    ("hosts.token", Role::Admin),
    ("hosts.drain", Role::Admin),
];

/// The role `method` needs; `None` for a name no operation has.
pub fn needed(method: &str) -> Option<Role> {
    TABLE.iter().find(|(name, _)| *name == method).map(|(_, role)| *role)
}

/// Whether `who` may call `method`; the refusal says what is missing.
pub fn authorize(who: &Principal, method: &str) -> Result<(), ApiError> {
    match needed(method) {
        Some(role) if who.role >= role => Ok(()),
        Some(role) => Err(ApiError::new(
            codes::DENIED,
            format!("{method} needs the {role:?} role; this caller (uid {}) is a {:?}", who.uid, who.role)
                .to_lowercase(),
        )),
        None => Err(ApiError::new(codes::DENIED, format!("{method} is not an operation vrd knows"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_role(role: Role) -> Principal {
        Principal { role, ..Principal::socket(1000, 1000, vec![], None, &Policy::default()) }
    }

    #[test]
    fn every_method_of_the_api_is_in_the_table() {
        let api = include_str!("../../api/mod.rs");
        let mut names = Vec::new();
        for part in api.split("(name = \"").skip(1) {
            names.push(part.split('"').next().unwrap_or_default().to_string());
        }
        assert!(names.len() > 40, "the API's methods were not found: {names:?}");
        for name in names {
            let name = if name == "procs.act" { "procs.start".to_string() } else { name };
            assert!(needed(&name).is_some(), "{name} has no entry in the access table");
        }
    }

    #[test]
    fn roles_reach_as_far_as_the_table_says_and_no_further() {
        assert!(authorize(&as_role(Role::Viewer), "procs.list").is_ok());
        let refused = authorize(&as_role(Role::Viewer), "swarms.dispatch").unwrap_err();
        assert_eq!(refused.code, codes::DENIED);
        assert!(refused.message.contains("deployer role"), "{refused:?}");
        assert!(authorize(&as_role(Role::Deployer), "swarms.dispatch").is_ok());
        assert!(authorize(&as_role(Role::Deployer), "hosts.add").is_err());
        assert!(authorize(&as_role(Role::Admin), "hosts.add").is_ok());
        assert!(authorize(&as_role(Role::Admin), "no.such").is_err(), "unknown names are refused");
        assert_eq!(Principal::socket(0, 0, vec![], None, &Policy::default()).role, Role::Admin);
    }

    #[test]
    fn root_and_the_admins_group_are_admins_and_other_members_deployers() {
        let policy = Policy { admins_gid: Some(4343), ..Policy::default() };
        assert_eq!(policy.role_of(0, 0, &[]), Role::Admin);
        assert_eq!(policy.role_of(1000, 4343, &[]), Role::Admin, "primary group");
        assert_eq!(policy.role_of(1000, 1000, &[27, 4343]), Role::Admin, "supplementary group");
        assert_eq!(policy.role_of(1000, 1000, &[27]), Role::Deployer);
        assert_eq!(Policy::default().role_of(1000, 4343, &[4343]), Role::Deployer, "no admins group set");
    }
}
