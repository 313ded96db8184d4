//! The outbox, the command filter and the session, one rule at a time.
mod common;

use common::*;
use uplink::frame::{self, HEADER, MAX_FRAME};
use uplink::session::Error;
use uplink::*;

fn power(machine: u8, at: u64) -> Event {
    Event::PowerState(PowerState {
        machine: MachineId::Mac(Mac([machine; 6])),
        state: Power::On,
        at,
    })
}

fn served(at: u64) -> Event {
    Event::BootServed(BootServed {
        mac: MAC,
        what: Served::TftpFile(s("ipxe.efi")),
        at,
    })
}

fn seqs<const N: usize>(outbox: &Outbox<N>) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(e) = outbox.first_after(out.last().copied().unwrap_or(0)) {
        out.push(e.seq);
    }
    out
}

#[test]
fn a_full_outbox_coalesces_state_and_refuses_history() {
    let mut outbox = Outbox::<4>::new();
    for (i, e) in [power(1, 1), served(2), power(2, 3), power(1, 4)]
        .into_iter()
        .enumerate()
    {
        assert_eq!(outbox.push(e, 4), Ok(i as u64 + 1));
    }
    assert_eq!(outbox.push(served(5), 4), Err(outbox::Full(served(5))));
    assert_eq!(outbox.push(power(3, 5), 4), Err(outbox::Full(power(3, 5))));
    // The oldest state of machine 1 (seq 1) makes way; numbers are never reused.
    assert_eq!(outbox.push(power(1, 6), 4), Ok(5));
    assert_eq!(seqs(&outbox), [2, 3, 4, 5]);
    // A lower limit applies the same rule earlier.
    assert_eq!(outbox.push(served(7), 2), Err(outbox::Full(served(7))));
    outbox.ack(3);
    assert_eq!(seqs(&outbox), [4, 5]);
    assert_eq!(outbox.push(served(7), 4), Ok(6));
}

#[test]
fn the_command_filter_remembers_a_window_of_ids() {
    let mut f = CommandFilter::new();
    assert_eq!(f.accept(0), Verdict::Duplicate);
    for id in [1, 2, 5, 3] {
        assert_eq!(f.accept(id), Verdict::Apply, "{id}");
    }
    for id in [1, 2, 3, 5] {
        assert_eq!(f.accept(id), Verdict::Duplicate, "{id}");
    }
    assert!(f.is_new(4));
    let memory = dedup::COMMAND_MEMORY;
    assert_eq!(f.accept(4 + memory), Verdict::Apply);
    // 4 is the oldest id remembered, still new; 3 (and 5, seen) fall outside the window
    // and count as seen.
    assert!(f.is_new(4) && !f.is_new(3) && !f.is_new(5));
    assert_eq!(f.accept(1000), Verdict::Apply);
    assert!(!f.is_new(4) && !f.is_new(1000) && f.is_new(999));
    assert!(!f.is_new(1000 - memory - 1) && f.is_new(1000 - memory));
}

fn welcome(last_acked_seq: u64) -> ToAppliance {
    ToAppliance::Welcome(Welcome {
        protocol: PROTOCOL_VERSION,
        last_acked_seq,
        time: 1_760_000_000,
    })
}

/// Connects and returns everything the session sends until it has nothing more.
fn drain<const N: usize>(session: &mut Session<N>) -> Vec<ToProvider> {
    let mut buf = [0u8; HEADER + MAX_FRAME];
    let mut out = Vec::new();
    while let Some(len) = session.poll_transmit(&mut buf).unwrap() {
        out.push(frame::decode(&buf[HEADER..len]).unwrap());
    }
    out
}

fn event_seqs(sent: &[ToProvider]) -> Vec<u64> {
    sent.iter()
        .filter_map(|m| match m {
            ToProvider::Event(e) => Some(e.seq),
            _ => None,
        })
        .collect()
}

#[test]
fn after_a_restart_events_are_numbered_above_the_last_ack() {
    let mut session = Session::<16>::new(hello(), CommandFilter::new());
    session.report(served(1)).unwrap();
    session.report(served(2)).unwrap();
    assert_eq!(drain(&mut session), []); // not connected
    session.connect();
    assert!(matches!(drain(&mut session)[..], [ToProvider::Hello(_)]));
    assert_eq!(
        session.handle(welcome(41)),
        Ok(Action::Established {
            time: 1_760_000_000
        })
    );
    assert_eq!(event_seqs(&drain(&mut session)), [42, 43]);
    // Reconnect: the provider had applied 42 only.
    session.disconnect();
    session.report(served(3)).unwrap();
    session.connect();
    drain(&mut session);
    session.handle(welcome(42)).unwrap();
    assert_eq!(event_seqs(&drain(&mut session)), [43, 44]);
    assert_eq!(
        session.handle(ToAppliance::Ack { upto: 44 }),
        Ok(Action::Nothing)
    );
    assert!(session.outbox().is_empty());
}

#[test]
fn a_command_runs_once_and_a_lost_result_is_reported_interrupted() {
    let command = commands().remove(0);
    let cmd = |id| ToAppliance::Command {
        id,
        command: command.clone(),
    };
    let mut session = Session::<16>::new(hello(), CommandFilter::new());
    session.connect();
    drain(&mut session);
    session.handle(welcome(0)).unwrap();
    assert_eq!(
        session.handle(cmd(7)),
        Ok(Action::Execute {
            id: 7,
            command: command.clone()
        })
    );
    // A resend while it runs, or while its result waits, is dropped.
    assert_eq!(session.handle(cmd(7)), Ok(Action::Nothing));
    assert_eq!(session.complete(7, Outcome::Done), Ok(1));
    assert_eq!(session.complete(7, Outcome::Done), Err(Error::NotRunning));
    assert_eq!(session.handle(cmd(7)), Ok(Action::Nothing));
    assert_eq!(session.outbox().len(), 1);

    // Command 8 is accepted (and the filter persisted), then the appliance restarts.
    assert!(matches!(
        session.handle(cmd(8)),
        Ok(Action::Execute { id: 8, .. })
    ));
    let persisted = session.command_filter();
    let mut session = Session::<16>::new(hello(), persisted);
    session.connect();
    drain(&mut session);
    session.handle(welcome(1)).unwrap();
    assert_eq!(session.handle(cmd(8)), Ok(Action::Nothing));
    let sent = drain(&mut session);
    let [ToProvider::Event(e)] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(
        e.event,
        Event::CommandResult(CommandResult {
            command_id: 8,
            outcome: Outcome::Interrupted
        })
    );
}

#[test]
fn results_always_have_room_and_busy_commands_wait() {
    let mut session = Session::<{ COMMAND_WINDOW + 2 }>::new(hello(), CommandFilter::new());
    session.connect();
    drain(&mut session);
    session.handle(welcome(0)).unwrap();
    // Ordinary events stop at N - COMMAND_WINDOW, and a result cannot be reported directly.
    assert!(session.report(served(1)).is_ok() && session.report(served(2)).is_ok());
    assert!(session.report(served(3)).is_err());
    let result = Event::CommandResult(CommandResult {
        command_id: 1,
        outcome: Outcome::Done,
    });
    assert!(session.report(result).is_err());
    let command = commands().remove(3);
    for id in 1..=COMMAND_WINDOW as u64 {
        let action = session.handle(ToAppliance::Command {
            id,
            command: command.clone(),
        });
        assert!(matches!(action, Ok(Action::Execute { .. })), "{id}");
    }
    // No slot left for another result: not accepted, so a later resend can run it.
    let busy = ToAppliance::Command { id: 99, command };
    assert_eq!(session.handle(busy.clone()), Ok(Action::Nothing));
    for id in 1..=COMMAND_WINDOW as u64 {
        session.complete(id, Outcome::Done).unwrap();
    }
    let sent = drain(&mut session);
    session.handle(ToAppliance::Ack { upto: 10 }).unwrap();
    assert_eq!(sent.len(), 2 + COMMAND_WINDOW);
    assert!(matches!(
        session.handle(busy),
        Ok(Action::Execute { id: 99, .. })
    ));
}

#[test]
fn out_of_place_messages_end_the_session() {
    let mut session = Session::<16>::new(hello(), CommandFilter::new());
    assert_eq!(session.handle(welcome(0)), Err(Error::Unexpected)); // not connected
    session.connect();
    assert_eq!(session.handle(welcome(0)), Err(Error::Unexpected)); // hello not sent
    drain(&mut session);
    assert_eq!(session.handle(ToAppliance::Ping(1)), Err(Error::Unexpected));
    let mut newer = welcome(0);
    if let ToAppliance::Welcome(w) = &mut newer {
        w.protocol = PROTOCOL_VERSION + 1;
    }
    assert_eq!(
        session.handle(newer),
        Err(Error::Version(PROTOCOL_VERSION + 1))
    );
    let refusal = Refusal::Version { min: 9, max: 9 };
    assert_eq!(
        session.handle(ToAppliance::Refused(refusal)),
        Err(Error::Refused(refusal))
    );
    assert!(!session.is_up());

    session.connect();
    drain(&mut session);
    session.handle(welcome(0)).unwrap();
    assert_eq!(session.handle(welcome(0)), Err(Error::Unexpected));
    // An ack for an event never sent.
    assert_eq!(
        session.handle(ToAppliance::Ack { upto: 1 }),
        Err(Error::Unexpected)
    );
    // A ping is answered before the events waiting.
    session.report(served(1)).unwrap();
    session.handle(ToAppliance::Ping(5)).unwrap();
    let sent = drain(&mut session);
    assert!(matches!(
        sent[..],
        [ToProvider::Pong(5), ToProvider::Event(_)]
    ));
}

/// Persists the outbox as an appliance would and builds the session after a restart.
fn restarted<const N: usize>(session: &Session<N>) -> Session<N> {
    let outbox = session.outbox();
    let copy = Outbox::restore(outbox.next_seq(), outbox.iter().cloned()).unwrap();
    Session::restore(
        hello(),
        session.command_filter(),
        copy,
        session.is_numbered(),
    )
}

#[test]
fn a_restored_outbox_resends_what_the_provider_lacks_under_the_same_numbers() {
    let mut session = Session::<16>::new(hello(), CommandFilter::new());
    session.report(served(1)).unwrap();
    session.connect();
    drain(&mut session);
    session.handle(welcome(10)).unwrap();
    session.report(served(2)).unwrap();
    session.report(served(3)).unwrap();
    assert_eq!(event_seqs(&drain(&mut session)), [11, 12, 13]);
    // Restart before any ack; the provider had applied 11 and 12.
    let mut session = restarted(&session);
    assert!(session.is_numbered());
    session.report(served(4)).unwrap();
    session.connect();
    drain(&mut session);
    session.handle(welcome(12)).unwrap();
    assert_eq!(event_seqs(&drain(&mut session)), [13, 14]);

    // Never welcomed: the restored events are numbered by the first welcome.
    let mut fresh = Session::<16>::new(hello(), CommandFilter::new());
    fresh.report(served(1)).unwrap();
    let mut fresh = restarted(&fresh);
    assert!(!fresh.is_numbered());
    fresh.connect();
    drain(&mut fresh);
    fresh.handle(welcome(30)).unwrap();
    assert_eq!(event_seqs(&drain(&mut fresh)), [31]);
}

#[test]
fn a_damaged_outbox_copy_is_refused() {
    let e = |seq| Sequenced {
        seq,
        event: served(seq),
    };
    assert!(Outbox::<4>::restore(3, [e(1), e(2)]).is_some());
    assert!(
        Outbox::<4>::restore(2, [e(1), e(2)]).is_none(),
        "not below next"
    );
    assert!(
        Outbox::<4>::restore(9, [e(2), e(1)]).is_none(),
        "out of order"
    );
    assert!(Outbox::<1>::restore(9, [e(1), e(2)]).is_none(), "too many");
}
