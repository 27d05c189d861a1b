//! The fleet's files under `<data dir>/pki/` (0700; keys 0600, written as a temp file and renamed):
//!
//! ```text
//! ca.key, ca.pem                  a coordinator's CA (made on its first start as a coordinator)
//! coordinator.key, coordinator.pem  its server certificate, made again when a third of its life is left
//! host.key, host.pem, ca.pem      a joined host's key (made here, never sent), certificate and CA
//! link.json                       a joined host's coordinator address and name
//! ```

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pki::{self, Identity, KeyAndCert, PkiError, Role};

/// Why the fleet's files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing a file failed.
    #[error("failed to {what} {path}: {cause}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A key or certificate is unusable.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// link.json is unreadable.
    #[error("{path} is not a valid link file ({why}): join again with `vrd join`")]
    Link {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// Where a joined host finds its coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The coordinator's `ADDR:PORT`.
    pub coordinator: String,
    /// This host's name in the fleet.
    pub name: String,
    /// Every coordinator's `ADDR:PORT` as the fleet last listed them (several coordinators
    /// sharing one model): where the host dials when `coordinator` does not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coordinators: Vec<String>,
}

impl Link {
    /// The addresses to dial, in order: the one linked to last, then the others.
    pub fn candidates(&self) -> Vec<String> {
        let mut all = vec![self.coordinator.clone()];
        for a in &self.coordinators {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        all
    }
}

/// A joined host's identity.
#[derive(Debug, Clone)]
pub struct HostIdentity {
    /// Its coordinator and name.
    pub link: Link,
    /// The fleet's CA certificate (PEM).
    pub ca_pem: String,
    /// Its key and certificate.
    pub own: KeyAndCert,
}

/// The `pki` dir of one data dir.
#[derive(Debug, Clone)]
pub struct FleetFiles {
    dir: PathBuf,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> IdentityError + 'a {
    move |cause| IdentityError::Io { what, path: path.to_path_buf(), cause }
}

impl FleetFiles {
    /// The files of `data_dir`.
    pub fn new(data_dir: &Path) -> FleetFiles {
        FleetFiles { dir: data_dir.join("pki") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<Option<String>, IdentityError> {
        let path = self.path(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    fn write(&self, name: &str, text: &str) -> Result<(), IdentityError> {
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(io("chmod", &self.dir))?;
        let path = self.path(name);
        let mut tmp = tempfile::Builder::new()
            .prefix(".pki-")
            .tempfile_in(&self.dir)
            .map_err(io("create a temp file in", &self.dir))?;
        tmp.write_all(text.as_bytes()).and_then(|()| tmp.as_file().sync_all()).map_err(io("write", &path))?;
        tmp.persist(&path).map_err(|e| io("rename into", &path)(e.error))?;
        Ok(())
    }

    fn pair(&self, stem: &str) -> Result<Option<KeyAndCert>, IdentityError> {
        match (self.read(&format!("{stem}.key"))?, self.read(&format!("{stem}.pem"))?) {
            (Some(key_pem), Some(cert_pem)) => Ok(Some(KeyAndCert { key_pem, cert_pem })),
            _ => Ok(None),
        }
    }

    fn save_pair(&self, stem: &str, pair: &KeyAndCert) -> Result<(), IdentityError> {
        self.write(&format!("{stem}.key"), &pair.key_pem)?;
        self.write(&format!("{stem}.pem"), &pair.cert_pem)
    }

    /// A coordinator's CA and own certificate for the name `host`: made when missing, the
    /// certificate made again when it names another host or has a third of its life left.
    pub fn coordinator(&self, host: &str) -> Result<(KeyAndCert, KeyAndCert), IdentityError> {
        let ca = self.ca(host)?;
        let who = Identity { role: Role::Coordinator, name: host.to_string() };
        let fresh = match self.pair("coordinator")? {
            Some(own) => {
                let (id, not_after) = pki::identity_of(&own.cert_der()?)?;
                (id == who && !due_for_renewal(not_after)).then_some(own)
            }
            None => None,
        };
        let own = match fresh {
            Some(own) => own,
            None => {
                let own = pki::issue_with_key(&ca, &who)?;
                self.save_pair("coordinator", &own)?;
                own
            }
        };
        Ok((ca, own))
    }

    /// This vrd's CA (made when missing, named after `host`): the fleet's on a coordinator, and
    /// what signs the HTTPS listener's certificate when the operator gives none.
    pub fn ca(&self, host: &str) -> Result<KeyAndCert, IdentityError> {
        match self.pair("ca")? {
            Some(ca) => Ok(ca),
            None => {
                let ca = pki::new_ca(host)?;
                self.save_pair("ca", &ca)?;
                Ok(ca)
            }
        }
    }

    /// Where the CA's certificate is (what HTTPS clients trust: `vr --ca`).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A joined host's identity, if this data dir has joined a fleet.
    pub fn host(&self) -> Result<Option<HostIdentity>, IdentityError> {
        let Some(link_text) = self.read("link.json")? else { return Ok(None) };
        let link: Link = serde_json::from_str(&link_text)
            .map_err(|e| IdentityError::Link { path: self.path("link.json"), why: e.to_string() })?;
        match (self.pair("host")?, self.read("ca.pem")?) {
            (Some(own), Some(ca_pem)) => Ok(Some(HostIdentity { link, ca_pem, own })),
            _ => Err(IdentityError::Link {
                path: self.path("link.json"),
                why: "host.key, host.pem or ca.pem is missing beside it".into(),
            }),
        }
    }

    /// Saves a host's identity (after joining or renewing).
    pub fn save_host(&self, id: &HostIdentity) -> Result<(), IdentityError> {
        self.save_pair("host", &id.own)?;
        self.write("ca.pem", &id.ca_pem)?;
        self.save_link(&id.link)
    }

    /// Saves where a joined host finds its coordinators.
    pub fn save_link(&self, link: &Link) -> Result<(), IdentityError> {
        let text = serde_json::to_string_pretty(link)
            .map_err(|e| IdentityError::Link { path: self.path("link.json"), why: e.to_string() })?;
        self.write("link.json", &text)
    }
}

/// Whether a certificate ending at `not_after` (unix seconds) has a third of its life left or less.
pub fn due_for_renewal(not_after: i64) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let third = (pki::LEAF_VALIDITY.as_secs() / 3) as i64;
    not_after - now <= third
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coordinator_keeps_its_ca_and_remakes_its_certificate_for_a_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let files = FleetFiles::new(dir.path());
        let (ca1, own1) = files.coordinator("c1").unwrap();
        let (ca2, own2) = files.coordinator("c1").unwrap();
        assert_eq!((ca1.cert_pem.clone(), own1.cert_pem.clone()), (ca2.cert_pem, own2.cert_pem));
        let (ca3, own3) = files.coordinator("c2").unwrap();
        assert_eq!(ca3.cert_pem, ca1.cert_pem, "the CA stays");
        assert_ne!(own3.cert_pem, own1.cert_pem);
        let mode = fs::metadata(dir.path().join("pki/ca.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(files.host().unwrap().is_none());
    }

    #[test]
    fn a_host_identity_round_trips_and_a_broken_link_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let files = FleetFiles::new(dir.path());
        let ca = pki::new_ca("t").unwrap();
        let own = pki::issue_with_key(&ca, &Identity { role: Role::Host, name: "h1".into() }).unwrap();
        let id = HostIdentity {
            link: Link { coordinator: "198.18.0.1:7443".into(), name: "h1".into(), coordinators: vec![] },
            ca_pem: ca.cert_pem.clone(),
            own,
        };
        files.save_host(&id).unwrap();
        assert_eq!(files.host().unwrap().unwrap().link, id.link);
        fs::write(dir.path().join("pki/link.json"), "{").unwrap();
        assert!(files.host().unwrap_err().to_string().contains("vrd join"));
        assert!(!due_for_renewal(i64::MAX / 2));
    }
}
