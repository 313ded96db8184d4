//! The TLS front over loopback: enrollment by token (issued, reused, expired, unknown, bad
//! proof), then the tunnel with the issued certificate; and the refusals: no client
//! certificate, a certificate from another CA, a revoked appliance, no ALPN, TLS 1.2.
//! The store is an in-memory implementation of the front's `EnrollmentStore` trait.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use provider::tls::ca::Ca;
use provider::tls::{
    BoxError, EnrollRefusal, EnrollmentStore, TlsServer, TlsStream, TunnelHandler,
};
use ring::signature::KeyPair as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use support::tls::{Enrolled, client_config, connect, new_key, provider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uplink::enroll::{ALPN_ENROLL, ALPN_TUNNEL};

/// Tokens by secret (expiry, used) and appliances (key fingerprint, revoked).
#[derive(Default)]
struct MemStore {
    tokens: Mutex<HashMap<Vec<u8>, (u64, bool)>>,
    appliances: Mutex<Vec<([u8; 32], bool)>>,
}

impl MemStore {
    fn create_token(&self, secret: &[u8], expires_at: u64) {
        let mut tokens = self.tokens.lock().unwrap();
        tokens.insert(secret.to_vec(), (expires_at, false));
    }

    fn revoke(&self, id: &str) {
        let n: usize = id.trim_start_matches("apl-").parse().unwrap();
        self.appliances.lock().unwrap()[n].1 = true;
    }
}

impl EnrollmentStore for MemStore {
    type Id = String;

    fn redeem_token(&self, secret: &[u8], now: u64) -> Result<(), EnrollRefusal> {
        let mut tokens = self.tokens.lock().unwrap();
        let (expires_at, used) = tokens.get_mut(secret).ok_or(EnrollRefusal::UnknownToken)?;
        if *used {
            return Err(EnrollRefusal::TokenUsed);
        }
        if now >= *expires_at {
            return Err(EnrollRefusal::TokenExpired);
        }
        *used = true;
        Ok(())
    }

    fn register_appliance(&self, fp: [u8; 32], _name: &str) -> Result<String, BoxError> {
        let mut appliances = self.appliances.lock().unwrap();
        appliances.push((fp, false));
        Ok(format!("apl-{}", appliances.len() - 1))
    }

    fn appliance_by_fingerprint(&self, fp: &[u8; 32]) -> Result<Option<String>, BoxError> {
        let appliances = self.appliances.lock().unwrap();
        Ok(appliances
            .iter()
            .position(|(known, revoked)| known == fp && !revoked)
            .map(|n| format!("apl-{n}")))
    }
}

/// Stands in for the core's `serve_connection`: greets the appliance by its id.
struct Greeter;

impl TunnelHandler<String> for Greeter {
    async fn serve(&self, mut stream: TlsStream<TcpStream>, id: String) -> Result<(), BoxError> {
        stream.write_all(format!("hello {id}").as_bytes()).await?;
        stream.shutdown().await?;
        Ok(())
    }
}

struct Provider {
    addr: SocketAddr,
    ca_sha256: [u8; 32],
    store: Arc<MemStore>,
    dir: PathBuf,
}

fn state_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tls-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn start(dir: &Path) -> Provider {
    let store = Arc::new(MemStore::default());
    let names = ["localhost".to_string(), "127.0.0.1".to_string()];
    let addr = "127.0.0.1:0".parse().unwrap();
    let server = TlsServer::bind(addr, dir, &names, store.clone(), Arc::new(Greeter))
        .await
        .unwrap();
    let provider = Provider {
        addr: server.local_addr().unwrap(),
        ca_sha256: server.ca_fingerprint(),
        store,
        dir: dir.to_path_buf(),
    };
    tokio::spawn(server.serve());
    provider
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Enrolls like an appliance; `forge` signs another nonce than the one sent.
async fn enroll(p: &Provider, secret: &[u8], forge: bool) -> Result<Enrolled, EnrollRefusal> {
    support::tls::enroll(p.addr, p.ca_sha256, secret, forge).await
}

/// Dials the tunnel (trusting `ca`) with an optional client identity and ALPN; `Ok` with
/// the greeting if the provider let it through, `Err` with what the client saw otherwise.
async fn tunnel(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    client: Option<(Vec<CertificateDer<'static>>, Vec<u8>)>,
    alpn: &[u8],
) -> Result<String, String> {
    let config = client_config(ca, client, alpn);
    // In TLS 1.3 the client finishes before the server has judged its certificate, so a
    // refusal may only show on the first read.
    let mut tls = connect(addr, config).await.map_err(|e| e.to_string())?;
    let mut greeting = String::new();
    match tls.read_to_string(&mut greeting).await {
        Ok(_) if !greeting.is_empty() => Ok(greeting),
        Ok(_) => Err("closed without a greeting".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn error_has(outcome: &Result<String, String>, what: &str) -> bool {
    outcome.as_ref().is_err_and(|e| e.contains(what))
}

#[tokio::test]
async fn enrollment_issues_a_certificate_once_and_the_tunnel_accepts_it() {
    let p = start(&state_dir()).await;
    p.store.create_token(b"fresh secret", now() + 3600);
    let apl = enroll(&p, b"fresh secret", false).await.unwrap();
    assert_eq!(apl.id, "apl-0");
    assert_eq!(
        ring::digest::digest(&ring::digest::SHA256, &apl.ca).as_ref(),
        p.ca_sha256
    );
    assert_eq!(
        enroll(&p, b"fresh secret", false).await.err(),
        Some(EnrollRefusal::TokenUsed)
    );
    let greeting = tunnel(p.addr, &apl.ca, Some((apl.chain, apl.key)), ALPN_TUNNEL).await;
    assert_eq!(greeting, Ok("hello apl-0".to_string()));
}

#[tokio::test]
async fn expired_unknown_and_forged_enrollments_are_refused() {
    let p = start(&state_dir()).await;
    p.store.create_token(b"old", now() - 1);
    assert_eq!(
        enroll(&p, b"old", false).await.err(),
        Some(EnrollRefusal::TokenExpired)
    );
    assert_eq!(
        enroll(&p, b"never issued", false).await.err(),
        Some(EnrollRefusal::UnknownToken)
    );
    p.store.create_token(b"good", now() + 60);
    assert_eq!(
        enroll(&p, b"good", true).await.err(),
        Some(EnrollRefusal::BadProof)
    );
    // A forged proof does not burn the token.
    assert!(enroll(&p, b"good", false).await.is_ok());
}

#[tokio::test]
async fn tunnel_refuses_anonymous_foreign_revoked_and_alpn_less_clients() {
    let p = start(&state_dir()).await;
    p.store.create_token(b"t", now() + 60);
    let apl = enroll(&p, b"t", false).await.unwrap();
    let ours = Some((apl.chain.clone(), apl.key.clone()));

    let anonymous = tunnel(p.addr, &apl.ca, None, ALPN_TUNNEL).await;
    assert!(
        error_has(&anonymous, "CertificateRequired"),
        "{anonymous:?}"
    );
    let no_alpn = tunnel(p.addr, &apl.ca, ours.clone(), b"").await;
    assert!(error_has(&no_alpn, "eof"), "{no_alpn:?}");

    // A CA of the same shape in another state dir: its certificate is refused.
    let other = Ca::load_or_create(&state_dir()).unwrap();
    let (key, pkcs8) = new_key();
    let foreign = other
        .issue_client(key.public_key().as_ref(), &apl.id)
        .unwrap();
    let refused = tunnel(p.addr, &apl.ca, Some((vec![foreign], pkcs8)), ALPN_TUNNEL).await;
    assert!(error_has(&refused, "UnknownCA"), "{refused:?}");

    assert!(
        tunnel(p.addr, &apl.ca, ours.clone(), ALPN_TUNNEL)
            .await
            .is_ok()
    );
    p.store.revoke(&apl.id);
    let refused = tunnel(p.addr, &apl.ca, ours, ALPN_TUNNEL).await;
    assert_eq!(refused, Err("closed without a greeting".to_string()));
}

#[tokio::test]
async fn tls12_client_is_refused_in_the_handshake() {
    let p = start(&state_dir()).await;
    let ca = CertificateDer::from_pem_file(p.dir.join("ca.crt")).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca).unwrap();
    for alpn in [ALPN_ENROLL, ALPN_TUNNEL] {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let err = connect(p.addr, config).await.expect_err("TLS 1.2 accepted");
        assert!(err.to_string().contains("ProtocolVersion"), "{err}");
    }
}

#[tokio::test]
async fn ca_is_kept_across_restarts_and_keys_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = state_dir();
    let first = start(&dir).await;
    let second = start(&dir).await;
    assert_eq!(first.ca_sha256, second.ca_sha256);
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    // The reloaded CA signs certificates that the chain check accepts.
    second.store.create_token(b"t", now() + 60);
    let apl = enroll(&second, b"t", false).await.unwrap();
    let greeting = tunnel(
        second.addr,
        &apl.ca,
        Some((apl.chain, apl.key)),
        ALPN_TUNNEL,
    )
    .await;
    assert_eq!(greeting, Ok("hello apl-0".to_string()));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn plaintext_client_is_dropped() {
    let p = start(&state_dir()).await;
    let mut tcp = TcpStream::connect(p.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply).await;
    assert!(!reply.starts_with(b"HTTP"), "{reply:?}");
}
