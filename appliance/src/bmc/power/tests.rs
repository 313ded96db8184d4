use super::*;
use crate::bmc::BootMode;

const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const PXE: PxeBoot = PxeBoot {
    persistent: false,
    mode: BootMode::Efi,
};

fn config() -> Config {
    Config {
        max_in_flight: 2,
        status_interval_ms: 30_000,
        min_power_interval_ms: 5_000,
        min_on_before_off_ms: 0,
        backoff_ms: 1_000,
        max_backoff_ms: 8_000,
    }
}

/// Runs every due job at `now`, answering each with `answer`.
fn run(
    pm: &mut PowerManager<'_>,
    now: u64,
    mut answer: impl FnMut(Operation) -> Result<PowerState, Error>,
) -> heapless::Vec<(BmcId, Operation), 16> {
    let mut jobs = heapless::Vec::new();
    while let Some(job) = pm.poll_job(now) {
        let _ = jobs.push(job);
    }
    for &(id, op) in &jobs {
        pm.complete(id, answer(op), now);
    }
    jobs
}

#[test]
fn the_provider_sets_the_status_interval() {
    let mut slots = [Slot::default(); 4];
    let mut pm = PowerManager::new(config(), &mut slots);
    pm.add(Some(MAC), 0).unwrap();
    run(&mut pm, 0, |_| Ok(PowerState::Off));
    assert_eq!(pm.poll_at(), Some(30_000));
    pm.set_status_interval(10_000, 1_000);
    assert_eq!(pm.poll_at(), Some(11_000), "brought forward");
    assert_eq!(run(&mut pm, 11_000, |_| Ok(PowerState::Off)).len(), 1);
    assert_eq!(pm.poll_at(), Some(21_000));
    pm.set_status_interval(60_000, 12_000);
    assert_eq!(
        pm.poll_at(),
        Some(21_000),
        "a longer interval applies after the next read"
    );
}

#[test]
fn reads_state_first_then_powers_on_after_setting_pxe() {
    let mut slots = [Slot::default(); 4];
    let mut pm = PowerManager::new(config(), &mut slots);
    let id = pm.add(Some(MAC), 0).unwrap();
    pm.set_desired(id, PowerState::On, Some(PXE));
    assert_eq!(pm.poll_job(0), Some((id, Operation::Status)));
    let event = pm.complete(id, Ok(PowerState::Off), 10);
    assert_eq!(
        event,
        Some(Event::PowerChanged {
            bmc: id,
            machine: Some(MAC),
            state: PowerState::Off
        })
    );
    assert!(pm.poll_at().is_some_and(|t| t <= 10));
    assert_eq!(pm.poll_job(10), Some((id, Operation::BootPxe(PXE))));
    assert_eq!(pm.complete(id, Ok(PowerState::Off), 20), None);
    // The override counted as a power operation: the power-on waits the interval.
    assert_eq!(pm.poll_at(), Some(5_010));
    assert_eq!(pm.poll_job(5_009), None);
    assert_eq!(
        pm.poll_job(5_010),
        Some((id, Operation::Power(PowerAction::On)))
    );
    assert!(pm.complete(id, Ok(PowerState::On), 5_100).is_some());
    // Settled: the next job is the periodic status read.
    assert_eq!(pm.poll_at(), Some(35_100));
}

#[test]
fn bounds_operations_in_flight() {
    let mut slots = [Slot::default(); 4];
    let mut pm = PowerManager::new(config(), &mut slots);
    for _ in 0..4 {
        pm.add(None, 0).unwrap();
    }
    assert!(pm.poll_job(0).is_some());
    assert!(pm.poll_job(0).is_some());
    assert_eq!(pm.poll_job(0), None);
    pm.complete(0, Ok(PowerState::Off), 1);
    assert_eq!(pm.poll_job(1), Some((2, Operation::Status)));
}

#[test]
fn backs_off_exponentially_and_recovers() {
    let mut slots = [Slot::default(); 1];
    let mut pm = PowerManager::new(config(), &mut slots);
    let id = pm.add(None, 0).unwrap();
    let mut now = 0;
    let mut delays = heapless::Vec::<u64, 8>::new();
    for _ in 0..5 {
        let (_, op) = pm.poll_job(now).unwrap();
        let event = pm.complete(id, Err(Error::Timeout), now);
        assert_eq!(
            event,
            Some(Event::Failed {
                bmc: id,
                op,
                error: Error::Timeout
            })
        );
        let next = pm.poll_at().unwrap();
        delays.push(next - now).unwrap();
        now = next;
    }
    assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 8_000]);
    assert_eq!(pm.view(id).unwrap().failures, 5);
    pm.poll_job(now).unwrap();
    pm.complete(id, Ok(PowerState::On), now);
    assert_eq!(pm.view(id).unwrap().failures, 0);
    assert_eq!(pm.poll_at(), Some(now + 30_000));
}

#[test]
fn one_off_action_runs_once_and_unsupported_is_dropped() {
    let mut slots = [Slot::default(); 1];
    let mut pm = PowerManager::new(config(), &mut slots);
    let id = pm.add(None, 0).unwrap();
    run(&mut pm, 0, |_| Ok(PowerState::On));
    pm.request(id, PowerAction::Cycle);
    let jobs = run(&mut pm, 1, |_| Ok(PowerState::On));
    assert_eq!(jobs, [(id, Operation::Power(PowerAction::Cycle))]);
    assert_eq!(pm.poll_at(), Some(30_001));

    pm.request(id, PowerAction::SoftOff);
    let jobs = run(&mut pm, 10_000, |_| Err(Error::Unsupported));
    assert_eq!(jobs, [(id, Operation::Power(PowerAction::SoftOff))]);
    let later = pm.poll_at().unwrap();
    let jobs = run(&mut pm, later, |_| Ok(PowerState::On));
    assert_eq!(jobs, [(id, Operation::Status)]);
}

#[test]
fn withdrawn_action_is_not_retried() {
    let mut slots = [Slot::default(); 1];
    let mut pm = PowerManager::new(config(), &mut slots);
    let id = pm.add(None, 0).unwrap();
    run(&mut pm, 0, |_| Ok(PowerState::On));
    pm.request(id, PowerAction::Cycle);
    let jobs = run(&mut pm, 10_000, |_| Err(Error::Timeout));
    assert_eq!(jobs, [(id, Operation::Power(PowerAction::Cycle))]);
    pm.withdraw(id);
    let later = pm.poll_at().unwrap();
    let jobs = run(&mut pm, later, |_| Ok(PowerState::On));
    assert_eq!(jobs, [(id, Operation::Status)]);
}

#[test]
fn a_machine_turned_on_is_not_turned_off_before_the_minimum() {
    let mut slots = [Slot::default(); 1];
    let mut pm = PowerManager::new(config(), &mut slots);
    pm.set_min_on_before_off(60_000);
    let id = pm.add(None, 0).unwrap();
    run(&mut pm, 0, |_| Ok(PowerState::Off));
    pm.set_desired(id, PowerState::On, None);
    let jobs = run(&mut pm, 1_000, |_| Ok(PowerState::On));
    assert_eq!(jobs, [(id, Operation::Power(PowerAction::On))]);
    pm.set_desired(id, PowerState::Off, None);
    assert_eq!(pm.poll_at(), Some(31_000), "a status read, not the off");
    let jobs = run(&mut pm, 31_000, |_| Ok(PowerState::On));
    assert_eq!(jobs, [(id, Operation::Status)]);
    assert_eq!(pm.poll_at(), Some(61_000));
    let jobs = run(&mut pm, 61_000, |_| Ok(PowerState::Off));
    assert_eq!(jobs, [(id, Operation::Power(PowerAction::Off))]);
}

#[test]
fn a_one_off_off_waits_too_but_a_cycle_does_not() {
    let mut slots = [Slot::default(); 1];
    let mut pm = PowerManager::new(config(), &mut slots);
    pm.set_min_on_before_off(60_000);
    let id = pm.add(None, 0).unwrap();
    run(&mut pm, 0, |_| Ok(PowerState::Off));
    // Seen turning on (by someone else): the minimum counts from then.
    pm.refresh(id, 1_000);
    run(&mut pm, 1_000, |_| Ok(PowerState::On));
    pm.request(id, PowerAction::Cycle);
    let jobs = run(&mut pm, 2_000, |_| Ok(PowerState::On));
    assert_eq!(jobs, [(id, Operation::Power(PowerAction::Cycle))]);
    pm.request(id, PowerAction::SoftOff);
    assert_eq!(
        pm.poll_at(),
        Some(32_000),
        "the soft-off waits until 62 s: a read first"
    );
    let jobs = run(&mut pm, 32_000, |_| Ok(PowerState::On));
    assert_eq!(jobs, [(id, Operation::Status)]);
    let jobs = run(&mut pm, 62_000, |_| Ok(PowerState::Off));
    assert_eq!(jobs, [(id, Operation::Power(PowerAction::SoftOff))]);
}

#[test]
fn an_off_for_a_machine_that_went_off_by_itself_runs_at_once() {
    let mut slots = [Slot::default(); 1];
    let mut pm = PowerManager::new(config(), &mut slots);
    pm.set_min_on_before_off(60_000);
    let id = pm.add(None, 0).unwrap();
    run(&mut pm, 0, |_| Ok(PowerState::Off));
    pm.request(id, PowerAction::On);
    run(&mut pm, 1_000, |_| Ok(PowerState::On));
    pm.request(id, PowerAction::Off);
    // The machine powered itself off; the next read sees it, and the off runs then.
    let jobs = run(&mut pm, 31_000, |_| Ok(PowerState::Off));
    assert_eq!(jobs, [(id, Operation::Status)]);
    assert!(pm.poll_at().is_some_and(|t| t <= 31_000), "due now");
    let jobs = run(&mut pm, 31_000, |_| Ok(PowerState::Off));
    assert_eq!(jobs, [(id, Operation::Power(PowerAction::Off))]);
}

#[test]
fn a_cycle_that_reads_off_is_read_again_soon() {
    let mut slots = [Slot::default(); 1];
    let mut pm = PowerManager::new(config(), &mut slots);
    let id = pm.add(None, 0).unwrap();
    run(&mut pm, 0, |_| Ok(PowerState::On));
    pm.request(id, PowerAction::Cycle);
    let jobs = run(&mut pm, 1_000, |_| Ok(PowerState::Off));
    assert_eq!(jobs, [(id, Operation::Power(PowerAction::Cycle))]);
    assert_eq!(
        pm.poll_at(),
        Some(6_000),
        "the interval, not the status period"
    );
    let jobs = run(&mut pm, 6_000, |_| Ok(PowerState::On));
    assert_eq!(jobs, [(id, Operation::Status)]);
    assert_eq!(pm.poll_at(), Some(36_000));
}

#[test]
fn full_table_is_refused() {
    let mut slots = [Slot::default(); 1];
    let mut pm = PowerManager::new(config(), &mut slots);
    assert_eq!(pm.add(None, 0), Ok(0));
    assert_eq!(pm.add(None, 0), Err(Full));
    assert_eq!(pm.len(), 1);
}

#[test]
fn unknown_or_idle_bmc_results_are_ignored() {
    let mut slots = [Slot::default(); 2];
    let mut pm = PowerManager::new(config(), &mut slots);
    let id = pm.add(None, 0).unwrap();
    assert_eq!(pm.complete(id, Ok(PowerState::On), 0), None);
    assert_eq!(pm.complete(7, Ok(PowerState::On), 0), None);
    assert_eq!(pm.poll_job(0), Some((id, Operation::Status)));
}
