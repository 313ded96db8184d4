//! `provider serve`'s Omni flags.

use crate::omni;

/// Omni: all three flags, or none to run standalone on the embedded store.
#[derive(clap::Args)]
pub struct OmniArgs {
    /// Omni's API URL: the provider registers there as a static infrastructure provider.
    #[arg(long, requires_all = ["omni_service_account_key", "provider_id"])]
    omni_endpoint: Option<String>,
    /// The provider's service account key, as `omnictl infraprovider create` prints it.
    #[arg(
        long,
        env = "OMNI_SERVICE_ACCOUNT_KEY",
        hide_env_values = true,
        requires = "omni_endpoint"
    )]
    omni_service_account_key: Option<String>,
    /// The infrastructure provider's id in Omni.
    #[arg(long, requires = "omni_endpoint")]
    provider_id: Option<String>,
}

impl OmniArgs {
    /// The adapter's options, or `None` when the provider runs standalone.
    pub fn options(self) -> Result<Option<omni::adapter::Options>, String> {
        let (Some(endpoint), Some(key), Some(provider_id)) = (
            self.omni_endpoint,
            self.omni_service_account_key,
            self.provider_id,
        ) else {
            return Ok(None);
        };
        let signer =
            omni::sign::Signer::from_service_account_key(&key).map_err(|e| e.to_string())?;
        Ok(Some(omni::adapter::Options {
            endpoint,
            provider_id,
            signer: std::sync::Arc::new(signer),
            clock_offset_secs: 0,
            heartbeat: omni::adapter::HEARTBEAT,
        }))
    }
}
