//! The provider's certificate authority: created on first start in the state directory,
//! reloaded after. It signs the provider's server certificate and one client certificate
//! per enrolled appliance. All keys are ECDSA P-256.
//!
//! Files (keys 0600, written to a temporary name and renamed, so a crash leaves no half
//! file):
//! - `ca.key`, `ca.crt`: the CA. Valid [`CA_DAYS`]; its SHA-256 (of the DER) goes into every
//!   enrollment token, so replacing it means re-enrolling every appliance.
//! - `server.key`, `server.crt`, `server.meta`: the TLS server's identity. Valid
//!   [`SERVER_DAYS`]; re-issued at start when its names changed or fewer than
//!   [`SERVER_RENEW_DAYS`] remain (`server.meta` records both). Appliances trust the CA, not
//!   this certificate, so re-issuing it costs them nothing.
//!
//! Client certificates are valid [`CLIENT_DAYS`]: appliances have no renewal path yet and
//! may run for years without a reliable clock; a lost or retired appliance is cut off by
//! revocation (the tunnel looks every key up in the store), not by expiry.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
    SignatureAlgorithm,
};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

pub const CA_DAYS: i64 = 20 * 365;
pub const SERVER_DAYS: i64 = 365;
pub const SERVER_RENEW_DAYS: i64 = 30;
pub const CLIENT_DAYS: i64 = 10 * 365;
/// Certificates start this long in the past, for peers whose clocks lag.
const BACKDATE: Duration = Duration::hours(1);

/// The CA: its key and its certificate. `Debug` is not derived: the key must not be printed.
pub struct Ca {
    key: KeyPair,
    params: CertificateParams,
    cert: CertificateDer<'static>,
}

/// The TLS server's certificate chain (server, then CA) and key.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// An appliance's public key as the enrollment request carries it: an uncompressed SEC1
/// P-256 point, for rcgen to wrap into the certificate's SubjectPublicKeyInfo.
pub struct P256PublicKey<'a>(pub &'a [u8]);

impl PublicKeyData for P256PublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// SHA-256 of a key's SubjectPublicKeyInfo (DER): how the store knows an appliance, so the
/// store can assign the id before the certificate carrying it exists.
pub fn key_fingerprint(spki_der: &[u8]) -> [u8; 32] {
    sha256(spki_der)
}

impl Ca {
    /// Loads the CA from `dir`, or creates it (and `dir`, 0700) on first start.
    pub fn load_or_create(dir: &Path) -> io::Result<Ca> {
        let (key_path, cert_path) = (dir.join("ca.key"), dir.join("ca.crt"));
        if key_path.exists() {
            let key = KeyPair::from_pem(&fs::read_to_string(&key_path)?).map_err(invalid)?;
            let cert = CertificateDer::from_pem_file(&cert_path).map_err(invalid)?;
            let ca = Ca::from_parts(key, cert)?;
            let spki = webpki::EndEntityCert::try_from(&ca.cert)
                .map_err(invalid)?
                .subject_public_key_info();
            if spki.as_ref() != ca.key.subject_public_key_info() {
                return Err(invalid(format!(
                    "{} does not belong to {}",
                    cert_path.display(),
                    key_path.display()
                )));
            }
            return Ok(ca);
        }
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(invalid)?;
        let mut params = ca_params(&key);
        params.not_before = OffsetDateTime::now_utc() - BACKDATE;
        params.not_after = OffsetDateTime::now_utc() + Duration::days(CA_DAYS);
        let cert = params.self_signed(&key).map_err(invalid)?;
        write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
        Ca::from_parts(key, cert.der().clone())
    }

    fn from_parts(key: KeyPair, cert: CertificateDer<'static>) -> io::Result<Ca> {
        let params = ca_params(&key);
        Ok(Ca { key, params, cert })
    }

    /// The CA certificate (DER): the root the tunnel verifies client certificates with.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// SHA-256 of the CA certificate (DER), as enrollment tokens carry it.
    pub fn fingerprint(&self) -> [u8; 32] {
        sha256(&self.cert)
    }

    /// A client certificate for an appliance key (uncompressed P-256 point): common name
    /// and a `urn:rack-appliance:ID` URI name carry the appliance id; client auth only.
    pub fn issue_client(
        &self,
        public_key: &[u8],
        appliance_id: &str,
    ) -> Result<CertificateDer<'static>, rcgen::Error> {
        let mut params = leaf_params(CLIENT_DAYS)?;
        params.distinguished_name = name(appliance_id);
        let uri = format!("urn:rack-appliance:{appliance_id}");
        params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&P256PublicKey(public_key), &self.issuer())?;
        Ok(cert.der().clone())
    }

    /// The server identity from `dir`, re-issued if missing, renamed or nearly expired.
    /// `names` are the DNS names or IP addresses appliances dial.
    pub fn server_identity(&self, dir: &Path, names: &[String]) -> io::Result<ServerIdentity> {
        let (key_path, cert_path) = (dir.join("server.key"), dir.join("server.crt"));
        let meta_path = dir.join("server.meta");
        let now = OffsetDateTime::now_utc();
        let wanted_names = names.join("\n");
        if let Ok(meta) = fs::read_to_string(&meta_path)
            && let Some((not_after, stored_names)) = meta.split_once('\n')
            && stored_names == wanted_names
            && not_after
                .parse::<i64>()
                .is_ok_and(|t| t > (now + Duration::days(SERVER_RENEW_DAYS)).unix_timestamp())
        {
            let key = PrivateKeyDer::from_pem_file(&key_path).map_err(invalid)?;
            let cert = CertificateDer::from_pem_file(&cert_path).map_err(invalid)?;
            return Ok(self.identity(cert, key));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(invalid)?;
        let mut params = leaf_params(SERVER_DAYS).map_err(invalid)?;
        params.distinguished_name = name("rack provider");
        params.subject_alt_names = CertificateParams::new(names.to_vec())
            .map_err(invalid)?
            .subject_alt_names;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer()).map_err(invalid)?;
        write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
        let meta = format!("{}\n{wanted_names}", params.not_after.unix_timestamp());
        write_file(&meta_path, meta.as_bytes(), 0o644)?;
        let key = PrivatePkcs8KeyDer::from(key.serialize_der());
        Ok(self.identity(cert.der().clone(), key.into()))
    }

    fn identity(
        &self,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> ServerIdentity {
        ServerIdentity {
            chain: vec![cert, self.cert.clone()],
            key,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

/// The CA's name and constraints, derived from its key alone, so a reloaded CA signs with
/// exactly the issuer name its stored certificate has (no certificate parser needed). The
/// name carries a key digest so two providers' CAs are told apart.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let digest = sha256(&key.subject_public_key_info());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!("rack provider CA {hex}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Validity from now (back-dated) and a random positive serial.
fn leaf_params(days: i64) -> Result<CertificateParams, rcgen::Error> {
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    serial[0] &= 0x7f;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(days);
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Writes `path` whole with `mode` (through a temporary file and a rename).
fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}
