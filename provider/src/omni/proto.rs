//! The protobuf messages the adapter exchanges with Omni, written by hand as prost structs:
//! no `.proto` file and no compiler at build time (`build.rs` generates only the gRPC
//! plumbing around them). Fields the adapter never uses are left out; protobuf skips
//! unknown fields on decode, so Omni's extra fields are harmless.
//!
//! Sources of the names and numbers:
//! - `Resource`, `Metadata`, `Spec` and the Infra* specs: shared/reference/omni.md.
//! - The State requests and `Event`: COSI's `state.proto` (cosi-project/specification,
//!   proto/v1alpha1/state.proto).
//! - `BmcConfigSpec` (omni.md names the fields but gives no numbers): Omni's
//!   client/api/omni/specs/infra.proto (`BMCConfigSpec { config = 1 }`) and omni.proto
//!   (`InfraMachineBMCConfigSpec`).

use std::collections::HashMap;

use prost_types::Timestamp;

// The generated `state_client` and `state_server` modules (see build.rs).
include!(concat!(env!("OUT_DIR"), "/cosi.resource.State.rs"));

/// COSI `Resource` (omni.md: metadata=1, spec=2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<Spec>,
}

/// COSI `Metadata` (omni.md: namespace=1 ... annotations=11).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(string, tag = "4")]
    pub version: String,
    #[prost(string, tag = "5")]
    pub owner: String,
    #[prost(string, tag = "6")]
    pub phase: String,
    #[prost(message, optional, tag = "7")]
    pub created: Option<Timestamp>,
    #[prost(message, optional, tag = "8")]
    pub updated: Option<Timestamp>,
    #[prost(string, repeated, tag = "9")]
    pub finalizers: Vec<String>,
    #[prost(map = "string, string", tag = "10")]
    pub labels: HashMap<String, String>,
    #[prost(map = "string, string", tag = "11")]
    pub annotations: HashMap<String, String>,
}

/// COSI `Spec` (omni.md: proto_spec=1, yaml_spec=2). Omni's specs travel as `proto_spec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Spec {
    #[prost(bytes = "vec", tag = "1")]
    pub proto_spec: Vec<u8>,
    #[prost(string, tag = "2")]
    pub yaml_spec: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRequest {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
    #[prost(string, tag = "3")]
    pub id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetResponse {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListRequest {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListResponse {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateRequest {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, optional, tag = "2")]
    pub options: Option<OwnerOptions>,
}

/// `CreateOptions` and `UpdateOptions` (owner=1 in both).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OwnerOptions {
    #[prost(string, tag = "1")]
    pub owner: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateResponse {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
}

/// Field 1 (`current_version`) is reserved: the version travels in the new resource.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateRequest {
    #[prost(message, optional, tag = "2")]
    pub new_resource: Option<Resource>,
    #[prost(message, optional, tag = "3")]
    pub options: Option<OwnerOptions>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateResponse {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchRequest {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
    #[prost(string, optional, tag = "3")]
    pub id: Option<String>,
    #[prost(message, optional, tag = "4")]
    pub options: Option<WatchOptions>,
    /// 1: the stream also carries `BOOTSTRAPPED` (end of the initial contents) and `ERRORED`.
    #[prost(int32, tag = "5")]
    pub api_version: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchOptions {
    /// Send every existing resource first, as `CREATED` events.
    #[prost(bool, tag = "1")]
    pub bootstrap_contents: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchResponse {
    #[prost(message, repeated, tag = "1")]
    pub event: Vec<Event>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(enumeration = "EventType", tag = "2")]
    pub event_type: i32,
    #[prost(message, optional, tag = "3")]
    pub old: Option<Resource>,
    #[prost(string, optional, tag = "4")]
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EventType {
    Created = 0,
    Updated = 1,
    Destroyed = 2,
    Bootstrapped = 3,
    Errored = 4,
    Noop = 5,
}

/// `InfraMachineSpec`: what Omni wants of a machine (omni.md, fields 1-11).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfraMachineSpec {
    /// OFF 0, ON 1.
    #[prost(int32, tag = "1")]
    pub preferred_power_state: i32,
    /// PENDING 0, ACCEPTED 1, REJECTED 2.
    #[prost(int32, tag = "2")]
    pub acceptance_status: i32,
    #[prost(string, tag = "3")]
    pub cluster_talos_version: String,
    #[prost(string, repeated, tag = "4")]
    pub extensions: Vec<String>,
    #[prost(string, tag = "5")]
    pub wipe_id: String,
    #[prost(string, tag = "6")]
    pub extra_kernel_args: String,
    #[prost(string, tag = "7")]
    pub requested_reboot_id: String,
    #[prost(bool, tag = "8")]
    pub cordoned: bool,
    #[prost(uint64, tag = "9")]
    pub install_event_id: u64,
    #[prost(string, tag = "10")]
    pub node_unique_token: String,
    #[prost(string, tag = "11")]
    pub power_off_request_id: String,
}

/// `InfraMachineStatusSpec`: what the provider reports (omni.md, fields 1-7).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfraMachineStatusSpec {
    /// UNKNOWN 0, OFF 1, ON 2.
    #[prost(int32, tag = "1")]
    pub power_state: i32,
    #[prost(bool, tag = "2")]
    pub ready_to_use: bool,
    #[prost(string, tag = "3")]
    pub last_reboot_id: String,
    #[prost(message, optional, tag = "4")]
    pub last_reboot_timestamp: Option<Timestamp>,
    #[prost(bool, tag = "5")]
    pub installed: bool,
    #[prost(string, tag = "6")]
    pub wiped_node_unique_token: String,
    #[prost(string, tag = "7")]
    pub last_power_off_id: String,
}

/// `InfraProviderStatusSpec` (omni.md: schema=1, name=2, description=3, icon=4, version=5).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfraProviderStatusSpec {
    #[prost(string, tag = "1")]
    pub schema: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub icon: String,
    #[prost(string, tag = "5")]
    pub version: String,
}

/// `InfraProviderHealthStatusSpec` (omni.md: last_heartbeat_timestamp=1, error=2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfraProviderHealthStatusSpec {
    #[prost(message, optional, tag = "1")]
    pub last_heartbeat_timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub error: String,
}

/// `BMCConfigSpec { InfraMachineBMCConfigSpec config = 1 }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BmcConfigSpec {
    #[prost(message, optional, tag = "1")]
    pub config: Option<BmcConfig>,
}

/// `InfraMachineBMCConfigSpec { IPMI ipmi = 1; API api = 2 }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BmcConfig {
    #[prost(message, optional, tag = "1")]
    pub ipmi: Option<Ipmi>,
    #[prost(message, optional, tag = "2")]
    pub api: Option<BmcApi>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Ipmi {
    #[prost(string, tag = "1")]
    pub address: String,
    #[prost(uint32, tag = "2")]
    pub port: u32,
    #[prost(string, tag = "3")]
    pub username: String,
    #[prost(string, tag = "4")]
    pub password: String,
}

/// The agent's API address (the agent-mode Talos the provider talks to).
#[derive(Clone, PartialEq, prost::Message)]
pub struct BmcApi {
    #[prost(string, tag = "1")]
    pub address: String,
}
