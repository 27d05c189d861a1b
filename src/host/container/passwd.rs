//! Resolving the run-as user and group from the IMAGE's /etc/passwd and /etc/group.
//!
//! Never the host's: the host's nobody may not be the image's nobody, and a static binary must not
//! call getpwnam (glibc would dlopen NSS modules of another glibc).

/// Numeric ids the container process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserIds {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Why a user or group could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswdError {
    /// No such user in the image.
    #[error("user '{0}' is not in the image's /etc/passwd: add it to the image, or set `user` in proc.yaml to one that is (or to a numeric uid)")]
    NoUser(String),
    /// No such group in the image.
    #[error("group '{0}' is not in the image's /etc/group: add it to the image, or set `group` in proc.yaml to one that is (or to a numeric gid)")]
    NoGroup(String),
    /// An id the kernel reads as "no id": setuid(-1) changes nothing, so the process would keep
    /// the launcher's uid 0 and root's capabilities.
    #[error("{what} {id} is not a real id (it is -1, which the kernel reads as 'unchanged' and so as root): use an id below 4294967295")]
    NotAnId {
        /// "uid" or "gid".
        what: &'static str,
        /// The refused id.
        id: u32,
    },
}

/// (uid_t)-1 and (gid_t)-1: "leave unchanged" to setresuid/setresgid, never an id to run as.
const NO_ID: u32 = u32::MAX;

/// The group VR's server always wrote; images without it fall back to the user's own group.
const DEFAULT_GROUP: &str = "nogroup";

fn find<'a>(table: &'a str, name: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() >= 3 && fields[0] == name)
}

/// Resolves `user` (a name or a number) and `group` against the image's passwd and group texts.
pub fn resolve(passwd: &str, group_table: &str, user: &str, group: &str) -> Result<UserIds, PasswdError> {
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, None),
        Err(_) => {
            let fields = find(passwd, user).ok_or_else(|| PasswdError::NoUser(user.into()))?;
            let uid = fields[2].parse().map_err(|_| PasswdError::NoUser(user.into()))?;
            (uid, fields.get(3).and_then(|g| g.parse::<u32>().ok()))
        }
    };
    let gid = match group.parse::<u32>() {
        Ok(gid) => gid,
        Err(_) => match find(group_table, group).and_then(|f| f[2].parse().ok()) {
            Some(gid) => gid,
            None if group == DEFAULT_GROUP || group.is_empty() => primary_gid.unwrap_or(uid),
            None => return Err(PasswdError::NoGroup(group.into())),
        },
    };
    for (what, id) in [("uid", uid), ("gid", gid)] {
        if id == NO_ID {
            return Err(PasswdError::NotAnId { what, id });
        }
    }
    Ok(UserIds { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\napp:x:1000:1000::/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nstaff:x:50:app\n";

    #[test]
    fn names_and_numbers() {
        assert_eq!(resolve(PASSWD, GROUP, "nobody", "nogroup"), Ok(UserIds { uid: 65534, gid: 65534 }));
        assert_eq!(resolve(PASSWD, GROUP, "app", "staff"), Ok(UserIds { uid: 1000, gid: 50 }));
        assert_eq!(resolve(PASSWD, GROUP, "1234", "99"), Ok(UserIds { uid: 1234, gid: 99 }));
    }

    #[test]
    fn minus_one_is_no_id_whether_given_or_in_the_image() {
        let err = resolve(PASSWD, GROUP, "4294967295", "nogroup").unwrap_err();
        assert_eq!(err, PasswdError::NotAnId { what: "uid", id: u32::MAX });
        assert!(resolve(PASSWD, GROUP, "app", "4294967295").is_err());
        let odd = "ghost:x:4294967295:1::/:/bin/sh\n";
        assert!(resolve(odd, GROUP, "ghost", "nogroup").is_err());
        assert!(resolve(PASSWD, GROUP, "4294967294", "4294967294").is_ok(), "the largest real id");
    }

    #[test]
    fn missing_default_group_falls_back_to_the_users_own() {
        assert_eq!(resolve(PASSWD, "root:x:0:\n", "app", "nogroup"), Ok(UserIds { uid: 1000, gid: 1000 }));
    }

    #[test]
    fn missing_names_are_errors_that_say_what_to_do() {
        let err = resolve(PASSWD, GROUP, "ghost", "nogroup").unwrap_err();
        assert!(err.to_string().contains("image's /etc/passwd"), "{err}");
        assert_eq!(resolve(PASSWD, GROUP, "app", "wheel"), Err(PasswdError::NoGroup("wheel".into())));
    }
}
