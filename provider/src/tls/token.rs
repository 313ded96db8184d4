//! Enrollment tokens on the provider side: building one from the store's secret. The format itself (shared with the appliance) is
//! [`uplink::enroll::EnrollmentToken`].

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
