//! Request signing as Omni expects it (omni.md "Auth"; the format is that of Sidero's
//! go-api-signature, `siderov1`): every gRPC call carries
//! - `x-sidero-timestamp`: Unix seconds; Omni refuses a skew over 5 minutes,
//! - `x-sidero-payload`: JSON `{"headers":{..},"method":"/cosi.resource.State/Get"}` where
//!   `headers` holds the signed metadata keys (only the timestamp is set by us, the others
//!   are `null`), and
//! - `x-sidero-signature`: `siderov1 <identity> <fingerprint> <base64 signature>`, a
//!   detached binary OpenPGP signature over the payload's exact bytes.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pgp::composed::{Deserializable, DetachedSignature, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{KeyDetails, Password};
use serde::{Deserialize, Serialize};

pub const TIMESTAMP: &str = "x-sidero-timestamp";
pub const PAYLOAD: &str = "x-sidero-payload";
pub const SIGNATURE: &str = "x-sidero-signature";
/// The metadata keys go-api-signature signs (`includedHeaders`); we send only the timestamp.
pub const SIGNED_HEADERS: [&str; 10] = [
    TIMESTAMP,
    "nodes",
    "selectors",
    "fieldSelectors",
    "runtime",
    "context",
    "cluster",
    "namespace",
    "uid",
    "authorization",
];

/// The signed payload (`x-sidero-payload`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    pub headers: BTreeMap<String, Option<Vec<String>>>,
    pub method: String,
}

/// A service account key: base64 of JSON `{name, pgp_key}` (armored private key).
#[derive(Deserialize)]
struct KeyFile {
    name: String,
    pgp_key: String,
}

#[derive(Debug)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service account key: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

/// Signs requests with a service account's key. `Debug` shows only who it signs as.
pub struct Signer {
    key: SignedSecretKey,
    identity: String,
    fingerprint: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({} {})", self.identity, self.fingerprint)
    }
}

impl Signer {
    /// From the key as `omnictl` prints it (base64 JSON), surrounding whitespace allowed.
    pub fn from_service_account_key(encoded: &str) -> Result<Signer, KeyError> {
        let json = STANDARD
            .decode(encoded.trim())
            .map_err(|e| KeyError(format!("not base64: {e}")))?;
        let file: KeyFile = serde_json::from_slice(&json)
            .map_err(|e| KeyError(format!("not {{name, pgp_key}}: {e}")))?;
        Signer::from_armored(&file.name, &file.pgp_key)
    }

    /// From an armored private key. The identity is the key's first user id's email (what
    /// Omni knows the account by), else `name`.
    pub fn from_armored(name: &str, armored: &str) -> Result<Signer, KeyError> {
        let (key, _) = SignedSecretKey::from_string(armored)
            .map_err(|e| KeyError(format!("not an OpenPGP private key: {e}")))?;
        let identity = key
            .details
            .users
            .first()
            .and_then(|u| u.id.as_str())
            .map(email_of)
            .unwrap_or(name)
            .to_string();
        let fingerprint = format!("{:x}", key.primary_key.fingerprint());
        Ok(Signer {
            key,
            identity,
            fingerprint,
        })
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The metadata for a call of `method` (e.g. `/cosi.resource.State/Get`) at `unix_secs`.
    pub fn sign(
        &self,
        method: &str,
        unix_secs: i64,
    ) -> Result<[(&'static str, String); 3], String> {
        let timestamp = unix_secs.to_string();
        let payload = Payload {
            headers: SIGNED_HEADERS
                .iter()
                .map(|h| {
                    let v = (*h == TIMESTAMP).then(|| vec![timestamp.clone()]);
                    (h.to_string(), v)
                })
                .collect(),
            method: method.to_string(),
        };
        let payload = serde_json::to_string(&payload).map_err(|e| e.to_string())?;
        let signature = DetachedSignature::sign_binary_data(
            rand::rngs::OsRng,
            &self.key.primary_key,
            &Password::empty(),
            HashAlgorithm::Sha256,
            payload.as_bytes(),
        )
        .map_err(|e| format!("signing: {e}"))?;
        let mut bytes = Vec::new();
        pgp::ser::Serialize::to_writer(&signature, &mut bytes).map_err(|e| e.to_string())?;
        let header = format!(
            "siderov1 {} {} {}",
            self.identity,
            self.fingerprint,
            STANDARD.encode(bytes)
        );
        Ok([
            (TIMESTAMP, timestamp),
            (PAYLOAD, payload),
            (SIGNATURE, header),
        ])
    }
}

/// `Name <email>` -> `email`; anything else as it is.
fn email_of(user_id: &str) -> &str {
    match (user_id.rfind('<'), user_id.rfind('>')) {
        (Some(a), Some(b)) if a < b => &user_id[a + 1..b],
        _ => user_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email_of("p <p@infra-provider.example>"),
            "p@infra-provider.example"
        );
        assert_eq!(email_of("plain"), "plain");
    }

    #[test]
    fn bad_keys_are_errors() {
        let e = Signer::from_service_account_key("%%%").unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
        let e = Signer::from_service_account_key(&STANDARD.encode("{}")).unwrap_err();
        assert!(e.to_string().contains("name, pgp_key"), "{e}");
        let key = STANDARD.encode(r#"{"name":"n","pgp_key":"junk"}"#);
        let e = Signer::from_service_account_key(&key).unwrap_err();
        assert!(e.to_string().contains("OpenPGP"), "{e}");
    }
}
