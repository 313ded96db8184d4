//! The Omni adapter: the provider as a static infrastructure provider of Omni
//! (shared/reference/omni.md). It speaks Omni's COSI state service over gRPC ([`client`],
//! messages in [`proto`]), signs every call with the service account's key ([`sign`]),
//! maps Omni's resources onto the provider's model and back ([`mapping`]) and runs the
//! registration, heartbeat, watches and status write-back ([`adapter`]).

pub mod adapter;
pub mod client;
pub mod mapping;
pub mod proto;
pub mod sign;

/// Where Omni keeps the infra providers' shared resources (InfraMachine, its status,
/// BMCConfig, InfraProviderStatus); each carries [`LABEL_PROVIDER_ID`].
pub const NS_INFRA: &str = "infra-provider";
/// Where the heartbeat lives.
pub const NS_EPHEMERAL: &str = "infra-provider-ephemeral";

/// The provider's own namespace, the third one it may touch.
pub fn provider_namespace(provider_id: &str) -> String {
    format!("{NS_INFRA}:{provider_id}")
}

/// Stamped on everything a provider creates; Omni shows a provider its resources by it.
pub const LABEL_PROVIDER_ID: &str = "omni.sidero.dev/infra-provider-id";
/// On the InfraProviderStatus of a static provider (machines it finds, not ones it creates).
pub const LABEL_STATIC: &str = "omni.sidero.dev/is-static-infra-provider";

// Resource types, named as COSI names Omni's (`<plural>.omni.sidero.dev`).
pub const INFRA_MACHINE: &str = "InfraMachines.omni.sidero.dev";
pub const INFRA_MACHINE_STATUS: &str = "InfraMachineStatuses.omni.sidero.dev";
pub const PROVIDER_STATUS: &str = "InfraProviderStatuses.omni.sidero.dev";
pub const PROVIDER_HEALTH: &str = "InfraProviderHealthStatuses.omni.sidero.dev";
pub const BMC_CONFIG: &str = "BMCConfigs.omni.sidero.dev";
