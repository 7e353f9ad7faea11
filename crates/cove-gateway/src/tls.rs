//! TLS termination (rustls, ring): certificates from PEM files or from a
//! local certificate authority, chosen by the name the client asks for
//! (SNI), HTTP/2 or HTTP/1.1 by ALPN.
//!
//! **SNI**: a client naming a host gets the first certificate valid for it
//! (exact names and `*.` wildcards, as the client itself would check);
//! one naming none, or an unknown host, gets the first certificate.
//!
//! **Local CA** (development): [`LocalCa::load_or_create`] makes, once, a
//! CA key and certificate in a directory (`ca.pem`, `ca-key.pem`, the key
//! mode 0600, both written to a temporary directory renamed into place),
//! and issues certificates for any names (for example `localhost`,
//! `*.localhost`, `127.0.0.1`), valid 397 days, in memory. To trust it:
//!
//! - Debian/Ubuntu: `sudo cp ca.pem /usr/local/share/ca-certificates/cove.crt
//!   && sudo update-ca-certificates` (curl, most programs);
//! - one command: `curl --cacert ca.pem https://web.localhost:2443/`;
//! - Firefox/Chrome: import `ca.pem` as an authority in the browser's
//!   certificate settings (browsers keep their own store).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::proxy::Gateway;

/// The certificates a TLS listener serves, chosen by SNI.
#[derive(Debug, Default)]
pub struct Certificates {
    keys: Vec<Arc<CertifiedKey>>,
    /// Server name → index in `keys`, as found (cached per name).
    chosen: std::sync::Mutex<HashMap<String, usize>>,
}

impl Certificates {
    pub fn new() -> Certificates {
        Certificates::default()
    }

    /// Adds a certificate; the first one is the default.
    pub fn add(&mut self, key: Arc<CertifiedKey>) {
        self.keys.push(key);
        crate::lock(&self.chosen).clear();
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The certificate for `name` (SNI), else the default.
    pub fn choose(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let name = name.map(|n| n.to_ascii_lowercase());
        if let Some(n) = &name {
            if let Some(i) = crate::lock(&self.chosen).get(n) {
                return self.keys.get(*i).cloned();
            }
            if let Ok(server) = ServerName::try_from(n.as_str()) {
                let found = self.keys.iter().position(|k| {
                    k.end_entity_cert().is_ok_and(|der| {
                        webpki::EndEntityCert::try_from(der)
                            .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&server).is_ok())
                    })
                });
                if let Some(i) = found {
                    let mut chosen = crate::lock(&self.chosen);
                    // Bounded: names come from clients.
                    if chosen.len() < 1024 {
                        chosen.insert(n.clone(), i);
                    }
                    return self.keys.get(i).cloned();
                }
            }
        }
        self.keys.first().cloned()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

/// A certificate chain and its key from PEM files.
pub fn load_pem(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    certified(chain, &key_der).map_err(|e| format!("{}: {e}", key.display()))
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'_>,
) -> Result<Arc<CertifiedKey>, String> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|e| format!("not a usable private key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// A server configuration: TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`.
pub fn server_config(certificates: Certificates) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(certificates));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `listener` over TLS until `shutdown` resolves: the handshake is
/// bounded by the gateway's header read time, then requests are served as
/// on a plain connection (HTTP/2 when ALPN chose it), marked `https`.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    config: Arc<ServerConfig>,
    cap: Arc<Semaphore>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let drain = gateway.limits().drain;
    crate::accept::accept_loop(listener, cap, shutdown, drain, move |stream, peer, stop| {
        let gateway = gateway.clone();
        let acceptor = acceptor.clone();
        async move {
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            let wait = gateway.limits().header_read;
            let Ok(Ok(tls)) = tokio::time::timeout(wait, acceptor.accept(stream)).await else {
                return;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let at = crate::proxy::At { peer, local };
            gateway.serve_io(tls, at, h2, true, stop).await
        }
    })
    .await
}

/// A certificate authority for development, kept in a directory.
pub struct LocalCa {
    dir: PathBuf,
    key: rcgen::KeyPair,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("dir", &self.dir).finish()
    }
}

/// The CA's parameters; the same every time, so a stored key signs
/// certificates whose issuer is the stored certificate.
fn ca_params() -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "cove local development CA");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "cove");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p
}

impl LocalCa {
    /// The CA of `dir`, made there first if there is none.
    pub fn load_or_create(dir: &Path) -> Result<LocalCa, String> {
        let key_file = dir.join("ca-key.pem");
        if !key_file.exists() {
            create(dir)?;
        }
        let pem = fs_err::read_to_string(&key_file).map_err(|e| e.to_string())?;
        let key = rcgen::KeyPair::from_pem(&pem)
            .map_err(|e| format!("{}: not a key: {e}", key_file.display()))?;
        Ok(LocalCa {
            dir: dir.to_path_buf(),
            key,
        })
    }

    /// The CA certificate users trust (`ca.pem`).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `names` (DNS names, `*.` wildcards, IP addresses)
    /// signed by the CA, valid from yesterday for 397 days: as PEM
    /// (certificate, key).
    pub fn issue_pem(&self, names: &[String]) -> Result<(String, String), String> {
        let mut params =
            rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let today = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / 86_400;
        let date = |days: u64| {
            let (y, m, d) = crate::access::civil(days as i64);
            rcgen::date_time_ymd(y as i32, m as u8, d as u8)
        };
        params.not_before = date(today.saturating_sub(1));
        params.not_after = date(today + 397);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let issuer = rcgen::Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// [`LocalCa::issue_pem`], ready to serve.
    pub fn issue(&self, names: &[String]) -> Result<Arc<CertifiedKey>, String> {
        let (cert, key) = self.issue_pem(names)?;
        let chain =
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).map_err(|e| e.to_string())?];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| e.to_string())?;
        certified(chain, &key)
    }
}

/// Makes the CA in `dir`: key and certificate go to a temporary directory
/// beside it, renamed into place; when another process got there first,
/// its CA stays.
fn create(dir: &Path) -> Result<(), String> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::fs::DirBuilderExt as _;
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(parent).map_err(|e| e.to_string())?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("ca"),
        std::process::id()
    ));
    let _ = fs_err::remove_dir_all(&tmp);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = ca_params().self_signed(&key).map_err(|e| e.to_string())?;
    let write = |name: &str, text: &str, mode: u32| -> Result<(), String> {
        use std::io::Write as _;
        let path = tmp.join(name);
        let mut f = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| e.to_string())?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    write("ca-key.pem", &key.serialize_pem(), 0o600)?;
    write("ca.pem", &cert.pem(), 0o644)?;
    match fs_err::rename(&tmp, dir) {
        Ok(()) => Ok(()),
        // Someone else's CA is there now: keep it.
        Err(_) if dir.join("ca-key.pem").exists() => {
            let _ = fs_err::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = fs_err::remove_dir_all(&tmp);
            Err(format!("cannot create {}: {e}", dir.display()))
        }
    }
}
