use std::path::PathBuf;

use uplink::{Command, CommandResult, Event, Mac, MachineSeen, Outcome, Sequenced, Uuid};

use super::*;
use crate::model::{Acceptance, Change};

/// A fresh state directory under the target dir's tmp.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("provider-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn open(d: &Path) -> Store {
    Store::open(d, StoreConfig::default()).unwrap()
}

fn seen(seq: u64, mac: u8, uuid: Option<u8>) -> Sequenced {
    Sequenced {
        seq,
        event: Event::MachineSeen(MachineSeen {
            mac: Mac([2, 0, 0, 0, 0, mac]),
            uuid: uuid.map(|u| Uuid([u; 16])),
            arch: Some(7),
            first_seen: 10,
            last_seen: 10 + seq,
        }),
    }
}

fn hello(boot_id: u64) -> uplink::Hello {
    uplink::Hello {
        protocol: 0,
        appliance_id: "1".try_into().unwrap(),
        firmware_version: "fw".try_into().unwrap(),
        capabilities: uplink::Capabilities(0),
        command_window: 0,
        boot_id,
    }
}

fn done(seq: u64, id: u64) -> Sequenced {
    Sequenced {
        seq,
        event: Event::CommandResult(CommandResult {
            command_id: id,
            outcome: Outcome::Done,
        }),
    }
}

#[test]
fn reopen_finds_everything() {
    let d = dir("reopen");
    let store = open(&d);
    let a = store.register_appliance("fp-a", "rack-a").unwrap();
    store
        .apply_events(a, &[seen(1, 1, None), seen(2, 1, Some(9))], 100)
        .unwrap();
    store
        .change_machine("02:00:00:00:00:01", &Change::Accept)
        .unwrap();
    store.reconcile(a, None, 100).unwrap();
    let (token, secret) = store.create_token(1000).unwrap();
    assert_eq!(token.len(), 8);
    drop(store);

    let store = open(&d);
    let appliance = store.appliance_by_fingerprint("fp-a").unwrap().unwrap();
    assert_eq!((appliance.id, appliance.name.as_str()), (a, "rack-a"));
    let machines = store.machines().unwrap();
    assert_eq!(machines.len(), 1, "re-keyed by UUID, not duplicated");
    assert_eq!(machines[0].key.0, "09090909-0909-0909-0909-090909090909");
    assert_eq!(machines[0].acceptance, Acceptance::Accepted);
    assert_eq!(store.hello(a, &hello(1), 200).unwrap(), 2);
    assert!(!store.outstanding(a).unwrap().is_empty());
    store.redeem_token(&secret, 500).unwrap();
}

#[test]
fn tokens_are_single_use_and_expire() {
    let store = open(&dir("tokens"));
    let (_, secret) = store.create_token(1000).unwrap();
    assert!(matches!(
        store.redeem_token("nope", 1),
        Err(TokenError::Unknown)
    ));
    store.redeem_token(&secret, 999).unwrap();
    assert!(matches!(
        store.redeem_token(&secret, 999),
        Err(TokenError::Used)
    ));
    let (_, late) = store.create_token(1000).unwrap();
    assert!(matches!(
        store.redeem_token(&late, 1000),
        Err(TokenError::Expired)
    ));
}

#[test]
fn enrollment_and_revocation() {
    let store = open(&dir("enroll"));
    let a = store.register_appliance("fp", "rack").unwrap();
    assert!(store.register_appliance("fp", "again").is_err());
    assert!(store.appliance_by_fingerprint("other").unwrap().is_none());
    store.revoke_appliance(a).unwrap();
    assert!(store.appliance(a).unwrap().revoked);
    assert!(
        store.hello(a, &hello(1), 1).is_err(),
        "a revoked appliance gets no welcome"
    );
}

#[test]
fn events_apply_once_and_other_racks_are_refused() {
    let store = open(&dir("events"));
    let a = store.register_appliance("fa", "a").unwrap();
    let b = store.register_appliance("fb", "b").unwrap();
    let r = store
        .apply_events(a, &[seen(1, 1, None), seen(2, 2, None)], 1)
        .unwrap();
    assert_eq!((r.applied, r.last_applied), (2, 2));
    let r = store
        .apply_events(
            a,
            &[seen(1, 1, None), seen(2, 2, None), seen(3, 3, None)],
            1,
        )
        .unwrap();
    assert_eq!((r.applied, r.duplicates, r.last_applied), (1, 2, 3));

    let r = store.apply_events(b, &[seen(1, 1, None)], 1).unwrap();
    assert_eq!((r.refused, r.last_applied), (1, 1), "refused, yet acked");
    assert_eq!(store.machine("02:00:00:00:00:01").unwrap().appliance, a);
    let links = store.appliances().unwrap();
    assert_eq!(links[1].1.refused_events, 1);
}

#[test]
fn results_resolve_once() {
    let store = open(&dir("results"));
    let a = store.register_appliance("fa", "a").unwrap();
    store.apply_events(a, &[seen(1, 1, None)], 1).unwrap();
    store.reconcile(a, None, 1).unwrap();
    let out = store.outstanding(a).unwrap();
    assert_eq!(out.len(), 2, "boot target and config: {out:?}");
    store.reconcile(a, None, 1).unwrap();
    assert_eq!(
        store.outstanding(a).unwrap(),
        out,
        "nothing twice while in flight"
    );
    store
        .apply_events(a, &[done(2, 1), done(3, 1), done(4, 2)], 1)
        .unwrap();
    assert!(store.outstanding(a).unwrap().is_empty());
    let commands = store.commands(a).unwrap();
    assert!(commands.iter().all(|c| c.outcome == Some(Outcome::Done)));
    store.reconcile(a, None, 1).unwrap();
    assert!(
        store.outstanding(a).unwrap().is_empty(),
        "confirmed: nothing more to do"
    );
}

#[test]
fn a_restarted_appliance_is_sent_its_tables_again() {
    let store = open(&dir("restart"));
    let a = store.register_appliance("fa", "a").unwrap();
    store.hello(a, &hello(7), 1).unwrap();
    store.apply_events(a, &[seen(1, 1, None)], 1).unwrap();
    store.reconcile(a, None, 1).unwrap();
    store.apply_events(a, &[done(2, 1), done(3, 2)], 1).unwrap();
    store.reconcile(a, None, 1).unwrap();
    assert!(store.outstanding(a).unwrap().is_empty(), "all delivered");

    store.hello(a, &hello(7), 2).unwrap();
    store.reconcile(a, None, 2).unwrap();
    assert!(
        store.outstanding(a).unwrap().is_empty(),
        "a reconnect of the same run keeps what was delivered"
    );
    store.hello(a, &hello(8), 3).unwrap();
    store.reconcile(a, None, 3).unwrap();
    let again: Vec<_> = store.outstanding(a).unwrap();
    assert!(
        matches!(
            again[..],
            [
                (_, Command::SetBootTarget { .. }),
                (_, Command::ConfigUpdate(_))
            ]
        ),
        "after a restart the boot target and config go again: {again:?}"
    );
}
