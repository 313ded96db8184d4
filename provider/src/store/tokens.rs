//! Single-use enrollment tokens. Only a hash of each secret is kept, so a copy of the store
//! does not hand out enrollments; a redemption checks and marks the token in one
//! transaction, so a token is used at most once even under concurrent enrollments.

use std::fmt;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Result, Store, StoreError, decode, encode};

/// SHA-256 of the secret (hex) -> token record.
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(TOKENS)?;
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Token {
    id: String,
    expires_at: u64,
    used_at: Option<u64>,
}

/// Why a token was refused.
#[derive(Debug)]
pub enum TokenError {
    Unknown,
    Used,
    Expired,
    Store(StoreError),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Unknown => f.write_str("unknown enrollment token"),
            TokenError::Used => f.write_str("enrollment token already used"),
            TokenError::Expired => f.write_str("enrollment token expired"),
            TokenError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TokenError {}

impl<E: Into<StoreError>> From<E> for TokenError {
    fn from(e: E) -> Self {
        TokenError::Store(e.into())
    }
}

fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Db(format!("randomness: {e}")))?;
    Ok(crate::hex::encode(&buf))
}

fn digest(secret: &str) -> String {
    crate::hex::encode(&Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Creates a single-use token valid until `expires_at` (Unix seconds); returns its id
    /// (for logs) and its secret (shown once, never stored).
    pub fn create_token(&self, expires_at: u64) -> Result<(String, String)> {
        let id = random_hex(4)?;
        let secret = random_hex(20)?;
        let token = Token {
            id: id.clone(),
            expires_at,
            used_at: None,
        };
        let tx = self.db.begin_write()?;
        tx.open_table(TOKENS)?
            .insert(digest(&secret).as_str(), encode(&token)?.as_slice())?;
        tx.commit()?;
        Ok((id, secret))
    }

    /// Uses a token: it must exist, be unused and not expired at `now`.
    pub fn redeem_token(&self, secret: &str, now: u64) -> Result<(), TokenError> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(TOKENS)?;
            let key = digest(secret);
            let row = table.get(key.as_str())?.map(|v| v.value().to_vec());
            let mut token: Token = decode(&row.ok_or(TokenError::Unknown)?)?;
            if token.used_at.is_some() {
                return Err(TokenError::Used);
            }
            if now >= token.expires_at {
                return Err(TokenError::Expired);
            }
            token.used_at = Some(now);
            table.insert(key.as_str(), encode(&token)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }
}
