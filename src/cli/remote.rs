//! `vr --url https://HOST:PORT` (or `$VR_URL`): every command talks to a remote vrd's HTTPS API
//! instead of the local socket, as the user of the API token in `$VR_TOKEN`, trusting the CA in
//! `--ca`/`$VR_CA` (vrd's own, `/var/lib/vrd/pki/ca.pem` on that host) or the system's roots.
//! Plain calls are one POST each; subscriptions (`-f`, `vr swarm`'s progress) use a WebSocket on
//! the same connection type. What passes the caller's terminal or files as fds (`vr runner`,
//! builds and image builds with local files) needs the socket, and says so.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, bail, Context};
use rustls::pki_types::ServerName;

/// The environment variables `vr` reads for a remote vrd.
pub const URL_ENV: &str = "VR_URL";
/// The API token.
pub const TOKEN_ENV: &str = "VR_TOKEN";
/// The CA to trust (PEM).
pub const CA_ENV: &str = "VR_CA";

/// A remote vrd: where, as whom, trusting what.
pub struct Remote {
    host: String,
    port: u16,
    token: String,
    tls: Arc<rustls::ClientConfig>,
}

static REMOTE: OnceLock<Remote> = OnceLock::new();

/// The remote vrd this process talks to, if `--url` or `$VR_URL` named one.
pub fn get() -> Option<&'static Remote> {
    REMOTE.get()
}

/// Reads `--url`/`$VR_URL`, `$VR_TOKEN` and `--ca`/`$VR_CA`; with no URL, vr uses the socket.
pub fn configure(url: Option<String>, ca: Option<PathBuf>) -> anyhow::Result<()> {
    let Some(url) = url.or_else(|| std::env::var(URL_ENV).ok()).filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    let parsed =
        url::Url::parse(&url).with_context(|| format!("--url {url}: not a URL, e.g. https://web1:8443"))?;
    if parsed.scheme() != "https" {
        bail!("--url {url}: vrd's API is HTTPS only: use https://HOST:PORT");
    }
    let host = parsed.host_str().ok_or_else(|| anyhow!("--url {url} names no host"))?.to_string();
    let port = parsed.port().unwrap_or(443);
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()).ok_or_else(|| {
        anyhow!("--url needs an API token in ${TOKEN_ENV}: an admin makes one on the host with `vr tokens create --user NAME`")
    })?;
    let ca = ca.or_else(|| std::env::var_os(CA_ENV).map(PathBuf::from));
    let tls = tls_config(ca)?;
    let _ = REMOTE.set(Remote { host, port, token, tls });
    Ok(())
}

fn tls_config(ca: Option<PathBuf>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let pem =
                std::fs::read(&path).with_context(|| format!("failed to read the CA {}", path.display()))?;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                roots.add(cert.with_context(|| format!("{} is not a PEM certificate", path.display()))?)?;
            }
        }
        None => {
            let pem = std::fs::read("/etc/ssl/certs/ca-certificates.crt").context(
                "no CA given (--ca or $VR_CA, e.g. a copy of the host's /var/lib/vrd/pki/ca.pem) and no system roots",
            )?;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Remote {
    /// A new TLS connection to it.
    pub async fn connect(&self) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("failed to reach vrd at {}", self.authority()))?;
        let name = ServerName::try_from(self.host.clone())?;
        tokio_rustls::TlsConnector::from(Arc::clone(&self.tls)).connect(name, tcp).await.with_context(|| {
            format!(
                "TLS with {} failed (is --ca or ${CA_ENV} the CA that signed its certificate?)",
                self.authority()
            )
        })
    }

    /// `host:port`.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The `Authorization` header's value.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.token)
    }
}
