//! Enrollment tokens on the provider side: building one from the store's secret, and the
//! `--expires` duration. The format itself (shared with the appliance) is
//! [`uplink::enroll::EnrollmentToken`].

use std::time::Duration;

pub use uplink::enroll::{EnrollmentToken, TokenError};

/// The token for a secret from the store's `create_token`: `addr` is the `host:port`
/// appliances dial, `ca_sha256` the CA fingerprint ([`super::ca::Ca::fingerprint`]).
pub fn enrollment_token(
    addr: &str,
    ca_sha256: [u8; 32],
    secret: &[u8],
) -> Result<EnrollmentToken, TokenError> {
    Ok(EnrollmentToken {
        addr: addr.try_into().map_err(|_| TokenError::TooLong)?,
        ca_sha256,
        secret: secret.try_into().map_err(|_| TokenError::TooLong)?,
    })
}

/// A duration such as `90s`, `30m`, `24h`, `7d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit in {text:?}: use s, m, h or d")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .filter(|&secs| secs > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("not a positive duration: {text:?}"))
}
