//! The State service Omni serves a provider: every call's `siderov1` signature checked
//! with the service account's public key (and its clock, 5 minutes of skew as Omni), the
//! provider's namespaces and label enforced, and the resources Omni owns kept read-only.

use std::pin::Pin;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;
use provider::omni::proto::state_server::State;
use provider::omni::proto::*;
use provider::omni::{
    INFRA_MACHINE_STATUS, LABEL_PROVIDER_ID, NS_EPHEMERAL, NS_INFRA, PROVIDER_HEALTH,
    PROVIDER_STATUS, provider_namespace,
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::{Omni, key_of, unix_now};

const SKEW_SECS: i64 = 5 * 60;
type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub(crate) struct Service {
    pub omni: Omni,
    pub key: SignedPublicKey,
    pub provider_id: String,
}

impl Service {
    /// Omni's checks on every call: the signature (go-api-signature's rules), then the
    /// namespace. Refusals are kept for the test to read.
    fn check<T>(&self, req: &Request<T>, method: &str, ns: &str, typ: &str) -> Result<(), Status> {
        let result = self.verify(req, method).and_then(|()| self.namespace(ns));
        let mut w = self.omni.world.lock().unwrap();
        match &result {
            Err(s) => w.refused.push(format!("{method}: {}", s.message())),
            Ok(()) => *w.calls.entry((method.into(), typ.into())).or_default() += 1,
        }
        result
    }

    fn verify<T>(&self, req: &Request<T>, method: &str) -> Result<(), Status> {
        let header = |k: &str| {
            req.metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Status::unauthenticated(format!("{k}: not found")))
        };
        let ts = header("x-sidero-timestamp")?;
        let ts_num: i64 = ts
            .parse()
            .map_err(|_| Status::unauthenticated("x-sidero-timestamp: not a number"))?;
        if (unix_now() - ts_num).abs() > SKEW_SECS {
            return Err(Status::unauthenticated(format!(
                "timestamp is outside of allowed skew: {ts_num}"
            )));
        }
        let payload = header("x-sidero-payload")?;
        let parsed: serde_json::Value = serde_json::from_str(payload)
            .map_err(|e| Status::unauthenticated(format!("payload: {e}")))?;
        if parsed["method"] != method {
            return Err(Status::unauthenticated("payload method does not match"));
        }
        if parsed["headers"]["x-sidero-timestamp"] != serde_json::json!([ts]) {
            return Err(Status::unauthenticated("payload header does not match"));
        }
        let parts: Vec<&str> = header("x-sidero-signature")?.split(' ').collect();
        let [version, _identity, fingerprint, signature] = parts[..] else {
            return Err(Status::unauthenticated("invalid signature header"));
        };
        if version != "siderov1" {
            return Err(Status::unauthenticated("unsupported signature version"));
        }
        if fingerprint != format!("{:x}", self.key.primary_key.fingerprint()) {
            return Err(Status::unauthenticated("unknown key fingerprint"));
        }
        let bytes = STANDARD
            .decode(signature)
            .map_err(|_| Status::unauthenticated("signature: not base64"))?;
        let sig = DetachedSignature::from_bytes(&bytes[..])
            .map_err(|e| Status::unauthenticated(format!("signature: {e}")))?;
        sig.verify(&self.key.primary_key, payload.as_bytes())
            .map_err(|e| Status::unauthenticated(format!("invalid signature: {e}")))
    }

    fn namespace(&self, ns: &str) -> Result<(), Status> {
        if ns == NS_INFRA || ns == NS_EPHEMERAL || ns == provider_namespace(&self.provider_id) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "namespace {ns}: not the provider's"
        )))
    }

    /// The provider sees and writes only resources that carry its id.
    fn ours(&self, r: &Resource) -> bool {
        r.metadata
            .as_ref()
            .and_then(|m| m.labels.get(LABEL_PROVIDER_ID))
            .is_some_and(|id| *id == self.provider_id)
    }

    /// What a provider may write: its own statuses, and anything in its own namespace;
    /// InfraMachine and BMCConfig are Omni's.
    fn writable(&self, r: &Resource) -> Result<(), Status> {
        let (ns, typ, _) = key_of(r);
        if !self.ours(r) {
            return Err(Status::permission_denied(format!(
                "{LABEL_PROVIDER_ID} must be the provider's"
            )));
        }
        let own = [INFRA_MACHINE_STATUS, PROVIDER_STATUS, PROVIDER_HEALTH].contains(&&*typ);
        if own || ns == provider_namespace(&self.provider_id) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{typ}: Omni's, read-only"
            )))
        }
    }

    fn write(&self, r: Option<Resource>, method: &str, create: bool) -> Result<Resource, Status> {
        let r = r.ok_or_else(|| Status::invalid_argument("no resource"))?;
        if let Err(s) = self.writable(&r) {
            let mut w = self.omni.world.lock().unwrap();
            w.refused.push(format!("{method}: {}", s.message()));
            return Err(s);
        }
        let current = self
            .omni
            .world
            .lock()
            .unwrap()
            .resources
            .get(&key_of(&r))
            .cloned();
        match (current, create) {
            (Some(_), true) => Err(Status::already_exists("resource exists")),
            (None, false) => Err(Status::not_found("no such resource")),
            (Some(c), false) if !self.ours(&c) => {
                Err(Status::permission_denied("not the provider's"))
            }
            (Some(c), false)
                if c.metadata.as_ref().map(|m| m.version.clone())
                    != r.metadata.as_ref().map(|m| m.version.clone()) =>
            {
                Err(Status::failed_precondition("version conflict"))
            }
            _ => Ok(self.omni.put(r)),
        }
    }
}

fn ns_of(r: &Option<Resource>) -> (String, String) {
    let (ns, typ, _) = r.as_ref().map(key_of).unwrap_or_default();
    (ns, typ)
}

#[tonic::async_trait]
impl State for Service {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let g = req.get_ref();
        self.check(&req, "/cosi.resource.State/Get", &g.namespace, &g.r#type)?;
        let g = req.into_inner();
        match self.omni.get(&g.namespace, &g.r#type, &g.id) {
            Some(r) if self.ours(&r) => Ok(Response::new(GetResponse { resource: Some(r) })),
            _ => Err(Status::not_found(format!(
                "{} {} not found",
                g.r#type, g.id
            ))),
        }
    }

    type ListStream = Stream_<ListResponse>;
    async fn list(&self, req: Request<ListRequest>) -> Result<Response<Self::ListStream>, Status> {
        let l = req.get_ref();
        self.check(&req, "/cosi.resource.State/List", &l.namespace, &l.r#type)?;
        let l = req.into_inner();
        let w = self.omni.world.lock().unwrap();
        let items: Vec<_> = w
            .resources
            .values()
            .filter(|r| key_of(r).0 == l.namespace && key_of(r).1 == l.r#type && self.ours(r))
            .map(|r| {
                Ok(ListResponse {
                    resource: Some(r.clone()),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    async fn create(
        &self,
        req: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        let (ns, typ) = ns_of(&req.get_ref().resource);
        self.check(&req, "/cosi.resource.State/Create", &ns, &typ)?;
        let r = self.write(req.into_inner().resource, "Create", true)?;
        Ok(Response::new(CreateResponse { resource: Some(r) }))
    }

    async fn update(
        &self,
        req: Request<UpdateRequest>,
    ) -> Result<Response<UpdateResponse>, Status> {
        let (ns, typ) = ns_of(&req.get_ref().new_resource);
        self.check(&req, "/cosi.resource.State/Update", &ns, &typ)?;
        let r = self.write(req.into_inner().new_resource, "Update", false)?;
        Ok(Response::new(UpdateResponse { resource: Some(r) }))
    }

    type WatchStream = Stream_<WatchResponse>;
    /// The existing resources as CREATED, then BOOTSTRAPPED, then every change; the
    /// forwarding task ends when the client goes or falls 256 events behind.
    async fn watch(
        &self,
        req: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let w = req.get_ref();
        self.check(&req, "/cosi.resource.State/Watch", &w.namespace, &w.r#type)?;
        let w = req.into_inner();
        let matches = {
            let id = self.provider_id.clone();
            let (ns, typ) = (w.namespace.clone(), w.r#type.clone());
            move |r: &Resource| {
                let (n, t, _) = key_of(r);
                let label = r
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.get(LABEL_PROVIDER_ID));
                n == ns && t == typ && label == Some(&id)
            }
        };
        let mut live = self.omni.events.subscribe();
        let mut cut = self.omni.cuts.subscribe();
        let existing: Vec<Event> = {
            let world = self.omni.world.lock().unwrap();
            let bootstrapped = Event {
                event_type: EventType::Bootstrapped as i32,
                ..Default::default()
            };
            world
                .resources
                .values()
                .filter(|r| matches(r))
                .map(|r| Event {
                    resource: Some(r.clone()),
                    ..Default::default()
                })
                .chain([bootstrapped])
                .collect()
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let send = |event| tx.send(Ok(WatchResponse { event: vec![event] }));
            for e in existing {
                if send(e).await.is_err() {
                    return;
                }
            }
            loop {
                let event = tokio::select! {
                    biased;
                    _ = cut.recv() => {
                        let _ = tx.send(Err(Status::unavailable("stream cut"))).await;
                        return;
                    }
                    e = live.recv() => e,
                };
                match event {
                    Ok(e) if e.resource.as_ref().is_some_and(&matches) => {
                        if send(e).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
