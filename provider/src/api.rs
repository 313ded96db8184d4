//! The JSON HTTP API the CLI (and later the Omni adapter) drives. Listings never carry BMC
//! configurations, only whether one is set.

use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::model::{Appliance, Change, Machine, NewToken};
use crate::store::{Link, StoreError, now};
use crate::{Provider, hex};

/// An appliance as listed.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplianceView {
    #[serde(flatten)]
    pub appliance: Appliance,
    pub connected: bool,
    pub last_applied_seq: u64,
    pub applied_events: u64,
    pub refused_events: u64,
    /// Commands issued in all, and those without a result yet (for scripts and tests
    /// checking that every command was resolved).
    pub issued_commands: u64,
    pub outstanding_commands: usize,
    pub machines: usize,
}

/// A machine as listed: `bmc` is `configured` or `none`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MachineView {
    #[serde(flatten)]
    pub machine: Machine,
    pub bmc: String,
}

impl From<Machine> for MachineView {
    fn from(machine: Machine) -> Self {
        let bmc = if machine.bmc_revision.is_some() {
            "configured"
        } else {
            "none"
        };
        MachineView {
            machine,
            bmc: bmc.into(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TokenRequest {
    pub expires_in_secs: u64,
}

/// Where appliances enroll and tunnel: what a token carries besides its secret.
#[derive(Clone, Debug)]
pub struct TunnelEndpoint {
    /// `host:port` of the TLS front.
    pub addr: String,
    /// SHA-256 of the CA certificate.
    pub ca_sha256: [u8; 32],
}

/// The handlers' state; most take only the provider (through [`FromRef`]).
#[derive(Clone)]
struct ApiState {
    provider: Arc<Provider>,
    endpoint: Arc<TunnelEndpoint>,
}

impl FromRef<ApiState> for Arc<Provider> {
    fn from_ref(state: &ApiState) -> Self {
        state.provider.clone()
    }
}

/// An error answer: `{"error": "..."}` with a status.
pub struct ApiError(StatusCode, String);

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Db(_) | StoreError::Decode(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

type Answer<T> = Result<Json<T>, ApiError>;

pub fn router(provider: Arc<Provider>, endpoint: TunnelEndpoint) -> Router {
    Router::new()
        .route("/api/appliances", get(appliances))
        .route("/api/appliances/{name}/revoke", post(revoke))
        .route("/api/machines", get(machines))
        .route("/api/machines/{name}", get(machine).post(change))
        .route("/api/tokens", post(create_token))
        .with_state(ApiState {
            provider,
            endpoint: Arc::new(endpoint),
        })
}

/// Serves the API on `listener` until the process ends; tokens name `endpoint`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    provider: Arc<Provider>,
    endpoint: TunnelEndpoint,
) -> std::io::Result<()> {
    axum::serve(listener, router(provider, endpoint)).await
}

async fn appliances(State(p): State<Arc<Provider>>) -> Answer<Vec<ApplianceView>> {
    let machines = p.store.machines()?;
    let views = p
        .store
        .appliances()?
        .into_iter()
        .map(|(a, link)| view(&p, a, &link, &machines));
    Ok(Json(views.collect::<Result<_, StoreError>>()?))
}

fn view(
    p: &Provider,
    appliance: Appliance,
    link: &Link,
    machines: &[Machine],
) -> Result<ApplianceView, StoreError> {
    Ok(ApplianceView {
        connected: p.tunnels.is_connected(appliance.id),
        last_applied_seq: link.last_applied_seq,
        applied_events: link.applied_events,
        refused_events: link.refused_events,
        issued_commands: link.last_command_id,
        outstanding_commands: p.store.outstanding(appliance.id)?.len(),
        machines: machines
            .iter()
            .filter(|m| m.appliance == appliance.id)
            .count(),
        appliance,
    })
}

async fn revoke(State(p): State<Arc<Provider>>, Path(name): Path<String>) -> Answer<Appliance> {
    let appliance = p.store.find_appliance(&name)?;
    p.store.revoke_appliance(appliance.id)?;
    p.tunnels.disconnect(appliance.id);
    Ok(Json(p.store.appliance(appliance.id)?))
}

async fn machines(State(p): State<Arc<Provider>>) -> Answer<Vec<MachineView>> {
    Ok(Json(
        p.store
            .machines()?
            .into_iter()
            .map(MachineView::from)
            .collect(),
    ))
}

async fn machine(State(p): State<Arc<Provider>>, Path(name): Path<String>) -> Answer<MachineView> {
    Ok(Json(p.store.machine(&name)?.into()))
}

async fn change(
    State(p): State<Arc<Provider>>,
    Path(name): Path<String>,
    Json(change): Json<Change>,
) -> Answer<MachineView> {
    let m = p.store.change_machine(&name, &change)?;
    p.tunnels.wake(m.appliance);
    Ok(Json(m.into()))
}

async fn create_token(
    State(s): State<ApiState>,
    Json(req): Json<TokenRequest>,
) -> Answer<NewToken> {
    let expires_at = now().saturating_add(req.expires_in_secs);
    let (id, secret) = s.provider.store.create_token(expires_at)?;
    Ok(Json(NewToken {
        id,
        secret,
        expires_at,
        addr: s.endpoint.addr.clone(),
        ca_sha256: hex::encode(&s.endpoint.ca_sha256),
    }))
}
