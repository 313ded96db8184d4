//! `provider serve`'s boot flags: where agent and install images come from (Image Factory)
//! and the join config Talos fetches from the appliance.

use std::path::PathBuf;

use crate::factory::{self, client::Factory};
use crate::store::StoreConfig;

#[derive(clap::Args)]
pub struct FactoryArgs {
    /// Where agent-mode machines boot from when no --agent-talos-version is given (sent to
    /// every appliance).
    #[arg(long, default_value = "")]
    agent_url: String,
    /// Image Factory's API base: schematics are created at <URL>/schematics.
    #[arg(long, default_value = "https://factory.talos.dev")]
    image_factory_url: String,
    /// Image Factory's PXE base: machines chain <URL>/<schematic>/<version>/metal-<arch>.
    #[arg(
        long,
        alias = "factory-url",
        default_value = "https://pxe.factory.talos.dev/pxe"
    )]
    image_factory_pxe_url: String,
    /// PEM file of CA certificates trusted for Image Factory besides the public roots (an
    /// air-gapped factory behind the site's own CA).
    #[arg(long)]
    image_factory_ca: Option<PathBuf>,
    /// Agent mode boots this Talos from Image Factory with the metal-agent extension and the
    /// join config (e.g. v1.10.0); without it, --agent-url.
    #[arg(long)]
    agent_talos_version: Option<String>,
    /// Omni's machine join config (`omnictl jointoken machine-config`, or the UI's Download
    /// Machine Join Config): appliances serve it at /config?u=UUID and every factory boot
    /// gets the kernel argument that fetches it.
    #[arg(long)]
    join_config: Option<PathBuf>,
    /// The HTTP port of the appliances (the same on every rack), for that kernel argument.
    #[arg(long, default_value_t = 80)]
    appliance_http_port: u16,
}

impl FactoryArgs {
    /// Sets the store's lifecycle and appliance configuration from the flags; returns the
    /// factory client.
    pub fn apply(self, config: &mut StoreConfig) -> Result<Factory, String> {
        let read = |path: &PathBuf, flag: &str| {
            std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
        };
        let ca = match &self.image_factory_ca {
            Some(path) => Some(read(path, "--image-factory-ca")?),
            None => None,
        };
        let factory = Factory::new(&self.image_factory_url, ca.as_deref())
            .map_err(|e| format!("--image-factory-url/--image-factory-ca: {e}"))?;
        let agent_url = self.agent_url.as_str();
        config.appliance.agent_url = agent_url
            .try_into()
            .map_err(|_| format!("--agent-url {agent_url}: too long"))?;
        config.lifecycle.factory_url = self.image_factory_pxe_url;
        config.lifecycle.agent_talos_version = self.agent_talos_version;
        if let Some(path) = &self.join_config {
            let text = String::from_utf8(read(path, "--join-config")?)
                .map_err(|_| format!("--join-config {}: not UTF-8", path.display()))?;
            config.appliance.join_config = text.as_str().try_into().map_err(|_| {
                format!(
                    "--join-config {}: {} bytes, more than the {} an appliance holds",
                    path.display(),
                    text.len(),
                    uplink::message::JOIN_CONFIG_MAX
                )
            })?;
            config.lifecycle.join_args = factory::join_kernel_args(self.appliance_http_port);
        }
        Ok(factory)
    }
}
