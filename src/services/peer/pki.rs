//! The fleet's certificates. A coordinator keeps its own CA (`<data>/pki/ca.{key,pem}`) and signs
//! its own server certificate and every host's, so no outside PKI is needed (kubeadm's and
//! Nomad's way). Each certificate says what it is in its subject alternative names: a DNS name
//! (`coordinator.vr`, which hosts connect to as the TLS server name, or `<host>.hosts.vr`) and a
//! `urn:vr:<role>:<name>` URI, which each side checks on the other (Nomad's
//! `verify_server_hostname`). A host's key is made on the host and never leaves it: the
//! coordinator signs a CSR, taking only the public key from it and writing the names itself.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// The TLS server name every host uses for its coordinator, whatever address it dials.
pub const COORDINATOR_SERVER_NAME: &str = "coordinator.vr";
/// How long the fleet's CA is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a coordinator's or host's certificate is valid (renewed at two thirds).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// What a certificate holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the model and calls hosts.
    Coordinator,
    /// Runs procs for a coordinator.
    Host,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Host => "host",
        }
    }
}

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Coordinator or host.
    pub role: Role,
    /// The host name (for a coordinator: its own host name).
    pub name: String,
}

/// What went wrong with a key or certificate.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Making or signing a certificate failed.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A PEM or DER input could not be read.
    #[error("{what} is not valid: {why}")]
    Invalid {
        /// Which input.
        what: &'static str,
        /// Why.
        why: String,
    },
}

fn invalid(what: &'static str, why: impl ToString) -> PkiError {
    PkiError::Invalid { what, why: why.to_string() }
}

/// A key and its certificate, in PEM.
#[derive(Debug, Clone)]
pub struct KeyAndCert {
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The certificate (PEM).
    pub cert_pem: String,
}

impl KeyAndCert {
    /// The certificate in DER.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| invalid("certificate PEM", e))
    }

    /// Every certificate of the PEM, in order (a leaf and its intermediates).
    pub fn chain_der(&self) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("certificate PEM", e))?;
        if chain.is_empty() {
            return Err(invalid("certificate PEM", "it holds no certificate"));
        }
        Ok(chain)
    }

    /// The key in DER.
    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| invalid("private key PEM", e))
    }
}

fn validity(params: &mut CertificateParams, length: Duration) {
    let now = SystemTime::now();
    // A little back-dated: a host whose clock is a minute behind still accepts it.
    params.not_before = (now - Duration::from_secs(300)).into();
    params.not_after = (now + length).into();
}

/// A new CA for a fleet.
pub fn new_ca(fleet: &str) -> Result<KeyAndCert, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, format!("vr fleet CA ({fleet})"));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, CA_VALIDITY);
    let cert = params.self_signed(&key)?;
    Ok(KeyAndCert { key_pem: key.serialize_pem(), cert_pem: cert.pem() })
}

/// The leaf parameters for `who`: its names, its usages (server and client: each side of the
/// link both dials and answers), its validity.
fn leaf_params(who: &Identity) -> Result<CertificateParams, PkiError> {
    let dns = match who.role {
        Role::Coordinator => COORDINATOR_SERVER_NAME.to_string(),
        Role::Host => format!("{}.hosts.vr", who.name),
    };
    let mut params = CertificateParams::new(vec![dns])?;
    let uri = format!("urn:vr:{}:{}", who.role.as_str(), who.name);
    params.subject_alt_names.push(SanType::URI(uri.try_into()?));
    params.distinguished_name.push(DnType::CommonName, format!("{} {}", who.role.as_str(), who.name));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut params, LEAF_VALIDITY);
    Ok(params)
}

fn issuer(ca: &KeyAndCert) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key = KeyPair::from_pem(&ca.key_pem)?;
    Ok(Issuer::from_ca_cert_pem(&ca.cert_pem, key)?)
}

/// A key made here and a certificate for it signed by `ca` (the coordinator's own).
pub fn issue_with_key(ca: &KeyAndCert, who: &Identity) -> Result<KeyAndCert, PkiError> {
    let key = KeyPair::generate()?;
    let cert = leaf_params(who)?.signed_by(&key, &issuer(ca)?)?;
    Ok(KeyAndCert { key_pem: key.serialize_pem(), cert_pem: cert.pem() })
}

/// A key made here and a server certificate for `names` (DNS names or IP addresses) signed by
/// `ca`: the HTTPS listener's, when the operator gives none.
pub fn issue_web(ca: &KeyAndCert, names: &[String]) -> Result<KeyAndCert, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, LEAF_VALIDITY);
    let cert = params.signed_by(&key, &issuer(ca)?)?;
    Ok(KeyAndCert { key_pem: key.serialize_pem(), cert_pem: cert.pem() })
}

/// A new key and a CSR for it (on a joining host; the key stays there).
pub fn new_key_and_csr(name: &str) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, format!("host {name}"));
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// Signs a host's CSR: only its public key is used; names, usages and validity are the
/// coordinator's. Returns the certificate PEM.
pub fn sign_csr(ca: &KeyAndCert, csr_pem: &str, who: &Identity) -> Result<String, PkiError> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| invalid("the CSR", e))?;
    let request = CertificateSigningRequestParams { params: leaf_params(who)?, public_key: csr.public_key };
    Ok(request.signed_by(&issuer(ca)?)?.pem())
}

/// sha256 of a certificate's DER, as hex: the CA pin a joining host checks, and the fingerprint
/// by which the coordinator knows (and revokes) each host's certificate.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    sha256_hex(cert.as_ref())
}

/// sha256 as lowercase hex: how certificates are pinned and how secrets (join tokens, API
/// tokens) are stored and looked up.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who a certificate says it is (its `urn:vr:` URI), and when it expires (unix seconds).
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<(Identity, i64), PkiError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| invalid("the certificate", e))?;
    let not_after = parsed.validity().not_after.timestamp();
    let sans = parsed
        .subject_alternative_name()
        .map_err(|e| invalid("the certificate's names", e))?
        .map(|ext| ext.value.general_names.clone())
        .unwrap_or_default();
    for name in sans {
        if let x509_parser::extensions::GeneralName::URI(uri) = name {
            if let Some(rest) = uri.strip_prefix("urn:vr:") {
                let (role, name) =
                    rest.split_once(':').ok_or_else(|| invalid("the certificate's vr URI", uri))?;
                let role = match role {
                    "coordinator" => Role::Coordinator,
                    "host" => Role::Host,
                    other => return Err(invalid("the certificate's role", other)),
                };
                return Ok((Identity { role, name: name.to_string() }, not_after));
            }
        }
    }
    Err(invalid(
        "the certificate",
        "it names no vr role (urn:vr:ROLE:NAME): it was not issued by a vr coordinator",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_csr_becomes_a_certificate_with_the_coordinators_names() {
        let ca = new_ca("test").unwrap();
        let (_key, csr) = new_key_and_csr("whatever-the-host-asks").unwrap();
        let who = Identity { role: Role::Host, name: "h1".into() };
        let cert = KeyAndCert { key_pem: String::new(), cert_pem: sign_csr(&ca, &csr, &who).unwrap() };
        let (id, not_after) = identity_of(&cert.cert_der().unwrap()).unwrap();
        assert_eq!(id, who);
        assert!(not_after > 0);
        let coordinator =
            issue_with_key(&ca, &Identity { role: Role::Coordinator, name: "c".into() }).unwrap();
        assert_eq!(identity_of(&coordinator.cert_der().unwrap()).unwrap().0.role, Role::Coordinator);
        assert_ne!(fingerprint(&ca.cert_der().unwrap()), fingerprint(&coordinator.cert_der().unwrap()));
        assert_eq!(fingerprint(&ca.cert_der().unwrap()).len(), 64);
    }

    #[test]
    fn garbage_is_refused_with_what_it_was() {
        let ca = new_ca("test").unwrap();
        let who = Identity { role: Role::Host, name: "h1".into() };
        let err = sign_csr(&ca, "not a csr", &who).unwrap_err().to_string();
        assert!(err.contains("CSR"), "{err}");
        let err = identity_of(&ca.cert_der().unwrap()).unwrap_err().to_string();
        assert!(err.contains("no vr role"), "{err}");
    }
}
