//! Joins the TLS front ([`crate::tls`]) to the core: the store answers enrollment and
//! tunnel authorization, and an authenticated tunnel runs [`serve_connection`]. The front
//! knows keys by their SHA-256 bytes and token secrets as bytes; the store keeps both as
//! lowercase hex (the form the API hands secrets out in).

use tokio::net::TcpStream;

use crate::Provider;
use crate::hex;
use crate::model::ApplianceId;
use crate::store::TokenError;
use crate::tls::{BoxError, EnrollRefusal, EnrollmentStore, TlsStream, TunnelHandler};
use crate::tunnel::serve_connection;

impl EnrollmentStore for Provider {
    type Id = ApplianceId;

    fn redeem_token(&self, secret: &[u8], now: u64) -> Result<(), EnrollRefusal> {
        self.store
            .redeem_token(&hex::encode(secret), now)
            .map_err(|e| match e {
                TokenError::Unknown => EnrollRefusal::UnknownToken,
                TokenError::Used => EnrollRefusal::TokenUsed,
                TokenError::Expired => EnrollRefusal::TokenExpired,
                TokenError::Store(e) => {
                    eprintln!("enroll: redeeming a token: {e}");
                    EnrollRefusal::Internal
                }
            })
    }

    fn register_appliance(
        &self,
        key_fingerprint: [u8; 32],
        name: &str,
    ) -> Result<ApplianceId, BoxError> {
        Ok(self
            .store
            .register_appliance(&hex::encode(&key_fingerprint), name)?)
    }

    /// A revoked appliance is unknown to the front: its tunnel is closed after the
    /// handshake.
    fn appliance_by_fingerprint(
        &self,
        key_fingerprint: &[u8; 32],
    ) -> Result<Option<ApplianceId>, BoxError> {
        let appliance = self
            .store
            .appliance_by_fingerprint(&hex::encode(key_fingerprint))?;
        Ok(appliance.filter(|a| !a.revoked).map(|a| a.id))
    }
}

impl TunnelHandler<ApplianceId> for Provider {
    async fn serve(
        &self,
        stream: TlsStream<TcpStream>,
        appliance: ApplianceId,
    ) -> Result<(), BoxError> {
        eprintln!("tunnel: appliance {appliance} connected");
        serve_connection(stream, appliance, self.store.clone(), self.tunnels.clone()).await?;
        eprintln!("tunnel: appliance {appliance} closed");
        Ok(())
    }
}
