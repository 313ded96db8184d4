//! The provider's tunnel against the real appliance-side `uplink::Session` over in-memory
//! streams: exactly-once events and commands across random cuts and a provider restart;
//! another rack's machine refused; a new tunnel replacing the old.
mod support;

use std::sync::Arc;
use std::time::Duration;

use provider::model::{Acceptance, Allocation, ApplianceId, BmcConfig, Change};
use provider::store::{Store, StoreConfig};
use provider::tunnel::{TunnelError, TunnelOptions, Tunnels, serve_connection};
use support::{Appliance, mac, seen, state_dir, uuid};
use tokio::io::{DuplexStream, duplex};
use tokio::task::JoinHandle;
use uplink::{BmcEndpoint, Event, Ipv4, Lease, MachineId, Outcome, Power, PowerState};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn open(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(Store::open(dir, StoreConfig::default()).unwrap())
}

fn connect(
    store: &Arc<Store>,
    tunnels: &Arc<Tunnels>,
    id: ApplianceId,
) -> (DuplexStream, JoinHandle<Result<(), TunnelError>>) {
    let (client, server) = duplex(64 * 1024);
    let task = tokio::spawn(serve_connection(server, id, store.clone(), tunnels.clone()));
    (client, task)
}

async fn ended(task: JoinHandle<Result<(), TunnelError>>) -> Result<(), TunnelError> {
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the tunnel ends when its stream does")
        .unwrap()
}

/// Operator changes that make commands: accept, BMC, allocate, reboot, deallocate.
fn operate(store: &Store, tunnels: &Tunnels, n: u8, round: u64) {
    let key = provider::model::fmt_uuid(uuid(n));
    let Ok(m) = store.machine(&key) else { return };
    let change = match round % 5 {
        0 if m.acceptance == Acceptance::Pending => Change::Accept,
        1 => Change::Bmc(BmcConfig {
            endpoint: BmcEndpoint::Ipmi {
                ip: Ipv4([10, 0, 0, n]),
                port: 623,
            },
            user: "admin".into(),
            password: "pw".into(),
        }),
        2 => Change::Allocate(Allocation {
            talos_version: "v1.9.0".into(),
            schematic: None,
            kernel_args: String::new(),
            extensions: Vec::new(),
        }),
        3 => Change::Reboot,
        _ => Change::Deallocate,
    };
    if store.change_machine(&key, &change).is_ok() {
        tunnels.wake(m.appliance);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_cuts_and_a_provider_restart() {
    let dir = state_dir("faults");
    let mut store = open(&dir);
    let tunnels = Arc::new(Tunnels::new(TunnelOptions::default()));
    let id = store.register_appliance("fp-a", "rack-a").unwrap();
    let mut appliance = Appliance::new(&id.to_string());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    const MACHINES: u8 = 12;

    for round in 0..100u64 {
        if round == 50 {
            drop(store);
            store = open(&dir);
        }
        // Observations while the link is down are queued and sent after the welcome.
        let n = (rng.below(u64::from(MACHINES)) + 1) as u8;
        appliance.report(seen(n));
        appliance.report(Event::Lease(Lease {
            mac: mac(n),
            ip: Ipv4([10, 0, 0, 100 + n]),
            expires: round,
        }));
        let (mut io, task) = connect(&store, &tunnels, id);
        appliance.connect();
        let steps = rng.below(12);
        for step in 0..steps {
            if appliance
                .step(&mut io, Duration::from_millis(5))
                .await
                .is_err()
            {
                break;
            }
            if step == 2 {
                operate(&store, &tunnels, n, round + rng.below(5));
            }
        }
        if rng.below(3) == 0 {
            // Cut inside a frame.
            let cut = rng.below(40) as usize;
            let _ = appliance.transmit(&mut io, Some(cut)).await;
        }
        drop(io);
        appliance.session.disconnect();
        let _ = ended(task).await;
    }

    // A last connection that runs until nothing is left to do.
    let (mut io, task) = connect(&store, &tunnels, id);
    appliance.connect();
    for _ in 0..2000 {
        appliance
            .step(&mut io, Duration::from_millis(5))
            .await
            .unwrap();
        let quiet =
            appliance.session.outbox().is_empty() && store.outstanding(id).unwrap().is_empty();
        if quiet && appliance.session.is_up() {
            break;
        }
    }
    drop(io);
    ended(task).await.unwrap();

    assert!(appliance.session.outbox().is_empty(), "every event acked");
    let (_, link) = store.appliances().unwrap().into_iter().next().unwrap();
    assert_eq!(
        link.applied_events, appliance.reported,
        "each event applied exactly once"
    );
    let commands = store.commands(id).unwrap();
    assert!(
        commands.len() > 10,
        "the scenario made commands: {}",
        commands.len()
    );
    assert!(store.outstanding(id).unwrap().is_empty());
    for c in &commands {
        assert_eq!(c.outcome, Some(Outcome::Done), "{c:?}");
        assert_eq!(
            appliance.executed.get(&c.id),
            Some(&1),
            "command {} ran once",
            c.id
        );
    }
    assert_eq!(appliance.executed.len(), commands.len());
    let machines = store.machines().unwrap();
    assert!(!machines.is_empty() && machines.len() <= usize::from(MACHINES));
}

#[tokio::test]
async fn another_racks_machine_is_refused() {
    let store = open(&state_dir("racks"));
    let tunnels = Arc::new(Tunnels::new(TunnelOptions::default()));
    let a = store.register_appliance("fp-a", "rack-a").unwrap();
    let b = store.register_appliance("fp-b", "rack-b").unwrap();
    for id in [a, b] {
        let mut appliance = Appliance::new(&id.to_string());
        appliance.report(seen(1));
        appliance.report(Event::PowerState(PowerState {
            machine: MachineId::Uuid(uuid(1)),
            state: Power::On,
            at: 5,
        }));
        let (mut io, task) = connect(&store, &tunnels, id);
        appliance.connect();
        while !(appliance.session.is_up() && appliance.session.outbox().is_empty()) {
            appliance
                .step(&mut io, Duration::from_millis(20))
                .await
                .unwrap();
        }
        drop(io);
        ended(task).await.unwrap();
    }
    let m = store.machine(&provider::model::fmt_uuid(uuid(1))).unwrap();
    assert_eq!(m.appliance, a);
    let links = store.appliances().unwrap();
    assert_eq!(
        (links[0].1.refused_events, links[1].1.refused_events),
        (0, 2)
    );
    // The loop above ended with rack-b's outbox empty: the refused events were acked,
    // not resent forever.
    assert!(links[1].1.last_applied_seq >= 2);
}

#[tokio::test]
async fn a_new_tunnel_replaces_the_old_and_a_wrong_id_is_refused() {
    let store = open(&state_dir("replace"));
    let tunnels = Arc::new(Tunnels::new(TunnelOptions::default()));
    let a = store.register_appliance("fp-a", "rack-a").unwrap();
    let mut first = Appliance::new(&a.to_string());
    let (mut io1, task1) = connect(&store, &tunnels, a);
    first.connect();
    while !first.session.is_up() {
        first
            .step(&mut io1, Duration::from_millis(20))
            .await
            .unwrap();
    }
    let mut second = Appliance::new(&a.to_string());
    let (mut io2, task2) = connect(&store, &tunnels, a);
    second.connect();
    while !second.session.is_up() {
        second
            .step(&mut io2, Duration::from_millis(20))
            .await
            .unwrap();
    }
    assert!(matches!(ended(task1).await, Err(TunnelError::Stopped)));
    assert!(tunnels.is_connected(a));
    drop(io2);
    ended(task2).await.unwrap();
    assert!(!tunnels.is_connected(a));

    // Its hello names another appliance than its certificate.
    let mut impostor = Appliance::new("99");
    let (mut io, task) = connect(&store, &tunnels, a);
    impostor.connect();
    let _ = impostor.step(&mut io, Duration::from_millis(50)).await;
    assert!(matches!(ended(task).await, Err(TunnelError::Refused(_))));
    drop(io);
}
