//! TLS 1.3 between vrds (rustls, ring). The coordinator answers with its certificate and the CA
//! (so a joining host can check the CA against its pin) and asks every client for a certificate
//! of the fleet's CA, but lets a client without one through to the join call only (the HTTP layer
//! enforces that). A host dials with its certificate and accepts only a server whose certificate
//! chains to the fleet's CA and names `coordinator.vr`. Before it has a certificate, a joining host
//! accepts a server only when the CA in the server's chain has the pinned sha256.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::pki::{fingerprint, KeyAndCert, PkiError};

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A key or certificate is unusable.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("TLS client verification: {0}")]
    Verifier(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    store.add(ca.clone())?;
    Ok(Arc::new(store))
}

/// The coordinator's server side: its certificate plus the CA in the chain, client certificates
/// of the fleet's CA checked when given.
pub fn server_config(ca: &KeyAndCert, own: &KeyAndCert) -> Result<Arc<ServerConfig>, TlsError> {
    let ca_der = ca.cert_der()?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&ca_der)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![own.cert_der()?, ca_der], own.key_der()?)?;
    Ok(Arc::new(config))
}

/// The HTTPS listener's server side (issue 14): `own`'s chain, no client certificates (callers
/// authenticate with tokens), HTTP/1.1.
pub fn web_server_config(own: &KeyAndCert) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(own.chain_der()?, own.key_der()?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A host's client side: its certificate, the fleet's CA as the only root.
pub fn client_config(ca_pem: &str, own: &KeyAndCert) -> Result<Arc<ClientConfig>, TlsError> {
    let ca = KeyAndCert { key_pem: String::new(), cert_pem: ca_pem.to_string() }.cert_der()?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(&ca)?)
        .with_client_auth_cert(vec![own.cert_der()?], own.key_der()?)?;
    Ok(Arc::new(config))
}

/// A joining host's client side: no certificate of its own; the server must present a chain
/// whose CA has sha256 `pin` and whose leaf that CA signed for `coordinator.vr`.
pub fn join_config(pin: &str) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = Arc::new(PinnedCa { pin: pin.to_ascii_lowercase() });
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Trusts the CA in the server's chain whose fingerprint is the pin, then verifies as usual.
#[derive(Debug)]
struct PinnedCa {
    pin: String,
}

impl PinnedCa {
    fn delegate(&self, chain: &[CertificateDer<'_>]) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
        let ca = chain.iter().find(|c| fingerprint(c) == self.pin).ok_or_else(|| {
            rustls::Error::General(format!(
                "the coordinator's CA does not have the sha256 {} given with --ca-sha256: check the address and the pin `vr hosts add` printed",
                self.pin
            ))
        })?;
        let mut store = RootCertStore::empty();
        store.add(ca.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.delegate(intermediates)?.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}

/// The server name hosts use for their coordinator.
pub fn coordinator_name() -> ServerName<'static> {
    ServerName::try_from(super::pki::COORDINATOR_SERVER_NAME).expect("a constant DNS name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::peer::pki::{issue_with_key, new_ca, Identity, Role};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn coordinator(ca: &KeyAndCert) -> KeyAndCert {
        issue_with_key(ca, &Identity { role: Role::Coordinator, name: "c".into() }).unwrap()
    }

    /// One TLS handshake over loopback; the server's view of the client's certificate.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> Result<Option<Vec<CertificateDer<'static>>>, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls =
                tokio_rustls::TlsAcceptor::from(server).accept(tcp).await.map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(tls.get_ref().1.peer_certificates().map(|c| c.to_vec()))
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connected = tokio_rustls::TlsConnector::from(client).connect(coordinator_name(), tcp).await;
        match connected {
            Ok(mut tls) => {
                let _ = tls.write_all(b"x").await;
                let _ = tls.flush().await;
            }
            Err(e) => {
                accept.abort();
                return Err(e.to_string());
            }
        }
        accept.await.unwrap()
    }

    #[tokio::test]
    async fn a_host_with_a_fleet_certificate_is_seen_and_one_pinned_to_another_ca_is_refused() {
        let ca = new_ca("a").unwrap();
        let server = server_config(&ca, &coordinator(&ca)).unwrap();
        let host = issue_with_key(&ca, &Identity { role: Role::Host, name: "h1".into() }).unwrap();
        let seen = handshake(server.clone(), client_config(&ca.cert_pem, &host).unwrap()).await.unwrap();
        assert_eq!(seen.unwrap().len(), 1, "the coordinator sees the host's certificate");

        let pin = fingerprint(&ca.cert_der().unwrap());
        let joining = handshake(server.clone(), join_config(&pin).unwrap()).await.unwrap();
        assert!(joining.is_none(), "a joining host has no certificate yet, and is let through");

        let other = new_ca("b").unwrap();
        let wrong_pin = fingerprint(&other.cert_der().unwrap());
        let err = handshake(server.clone(), join_config(&wrong_pin).unwrap()).await.unwrap_err();
        assert!(err.contains("--ca-sha256"), "{err}");
        let stranger = issue_with_key(&other, &Identity { role: Role::Host, name: "h1".into() }).unwrap();
        assert!(handshake(server, client_config(&ca.cert_pem, &stranger).unwrap()).await.is_err());
    }
}
