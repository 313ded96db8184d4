//! What the provider's commands for one BMC wait for. A command is answered when the power
//! manager has done what it asked (the operation's result, not its start), or failed: the
//! provider then knows the BMC's state, and retries on its own schedule.

use appliance::bmc::{Operation, PowerAction, PowerState};

/// What a power command waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// A desired state: the BMC reads `state`, after the network-boot override if `pxe`.
    State { state: PowerState, pxe: bool },
    /// A one-off action. With `pxe` the override is set first and the action requested
    /// only then: the manager would otherwise run the action before the override.
    Action { action: PowerAction, pxe: bool },
}

/// A waiting command: its id and kind (for the log).
pub type Waiting = (u64, &'static str);
const CREDENTIALS: &str = "BmcCredentials";
const POWER: &str = "PowerCommand";

/// What the port does after a successful operation.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Commands now done.
    pub done: heapless::Vec<Waiting, 2>,
    /// An action whose override is now set: request it from the manager.
    pub request: Option<PowerAction>,
}

/// The commands waiting on one BMC: the latest credentials and the latest power command (a
/// newer one supersedes an older of its kind; the provider runs one of each at a time).
#[derive(Debug, Default)]
pub struct Waiters {
    credentials: Option<u64>,
    power: Option<(u64, Goal)>,
}

impl Waiters {
    /// New credentials are proven by the next operation that succeeds. Returns the command
    /// this one supersedes.
    pub fn credentials(&mut self, id: u64) -> Option<Waiting> {
        self.credentials.replace(id).map(|old| (old, CREDENTIALS))
    }

    /// Returns the command this one supersedes, and whether it was a one-off (to withdraw).
    pub fn power(&mut self, id: u64, goal: Goal) -> Option<(Waiting, bool)> {
        let old = self.power.replace((id, goal))?;
        Some(((old.0, POWER), matches!(old.1, Goal::Action { .. })))
    }

    /// `op` succeeded and the BMC now reads `state`.
    pub fn succeeded(&mut self, op: Operation, state: PowerState) -> Progress {
        let mut progress = Progress::default();
        if let Some(id) = self.credentials.take() {
            let _ = progress.done.push((id, CREDENTIALS));
        }
        let Some((id, goal)) = self.power.as_mut() else {
            return progress;
        };
        let override_set = matches!(op, Operation::BootPxe(_));
        let done = match goal {
            Goal::State { state: want, pxe } => {
                *pxe &= !override_set;
                !*pxe && *want == state
            }
            Goal::Action { action, pxe } => {
                if *pxe && override_set {
                    *pxe = false;
                    progress.request = Some(*action);
                }
                !*pxe && op == Operation::Power(*action)
            }
        };
        if done {
            let _ = progress.done.push((*id, POWER));
            self.power = None;
        }
        progress
    }

    /// An operation failed: every waiting command fails with it. Returns them, and whether
    /// the power command was a one-off the manager must now withdraw (a desired state stays:
    /// the manager keeps reconciling it, as the provider still wants it).
    pub fn failed(&mut self) -> (heapless::Vec<Waiting, 2>, bool) {
        let mut failed = heapless::Vec::new();
        if let Some(id) = self.credentials.take() {
            let _ = failed.push((id, CREDENTIALS));
        }
        let one_off = match self.power.take() {
            Some((id, goal)) => {
                let _ = failed.push((id, POWER));
                matches!(goal, Goal::Action { .. })
            }
            None => false,
        };
        (failed, one_off)
    }
}

#[cfg(test)]
mod tests {
    use appliance::bmc::{BootMode, PxeBoot};

    use super::*;

    const PXE: Operation = Operation::BootPxe(PxeBoot {
        persistent: false,
        mode: BootMode::Efi,
    });
    const ON: Operation = Operation::Power(PowerAction::On);
    const CYCLE: Operation = Operation::Power(PowerAction::Cycle);

    fn read(w: &mut Waiters, state: PowerState) -> heapless::Vec<Waiting, 2> {
        w.succeeded(Operation::Status, state).done
    }

    fn done(ids: &[u64]) -> heapless::Vec<Waiting, 2> {
        let kind = |id| if id == 1 { CREDENTIALS } else { POWER };
        ids.iter().map(|&id| (id, kind(id))).collect()
    }

    #[test]
    fn credentials_are_done_by_the_first_success() {
        let mut w = Waiters::default();
        assert_eq!(w.credentials(3), None);
        assert_eq!(w.credentials(1), Some((3, CREDENTIALS)));
        let p = w.succeeded(Operation::Status, PowerState::Off);
        assert_eq!(p.done, done(&[1]));
        assert_eq!(read(&mut w, PowerState::Off), done(&[]));
    }

    #[test]
    fn power_on_with_pxe_waits_for_the_override_and_the_state() {
        let mut w = Waiters::default();
        let goal = Goal::State {
            state: PowerState::On,
            pxe: true,
        };
        w.power(5, goal);
        // Off, and the override is still to come.
        assert_eq!(read(&mut w, PowerState::Off), done(&[]));
        // A status read that happens to see On does not skip the override.
        assert_eq!(read(&mut w, PowerState::On), done(&[]));
        assert_eq!(w.succeeded(PXE, PowerState::Off), Progress::default());
        assert_eq!(w.succeeded(ON, PowerState::On).done, done(&[5]));
        assert!(w.failed().0.is_empty());
    }

    #[test]
    fn a_state_already_reached_is_done_at_the_next_read() {
        let mut w = Waiters::default();
        let goal = Goal::State {
            state: PowerState::Off,
            pxe: false,
        };
        w.power(7, goal);
        assert_eq!(read(&mut w, PowerState::Off), done(&[7]));
    }

    #[test]
    fn cycle_with_pxe_requests_the_cycle_after_the_override() {
        let mut w = Waiters::default();
        let goal = Goal::Action {
            action: PowerAction::Cycle,
            pxe: true,
        };
        w.power(9, goal);
        assert_eq!(w.succeeded(Operation::Status, PowerState::On).request, None);
        let p = w.succeeded(PXE, PowerState::On);
        assert_eq!((p.done, p.request), (done(&[]), Some(PowerAction::Cycle)));
        assert_eq!(w.succeeded(CYCLE, PowerState::On).done, done(&[9]));
    }

    #[test]
    fn a_failure_fails_everything_waiting_and_withdraws_one_offs() {
        let mut w = Waiters::default();
        w.credentials(1);
        let goal = Goal::Action {
            action: PowerAction::Cycle,
            pxe: false,
        };
        assert_eq!(w.power(2, goal), None);
        assert_eq!(w.power(4, goal), Some(((2, POWER), true)));
        assert_eq!(w.failed(), (done(&[1, 4]), true));
        let goal = Goal::State {
            state: PowerState::On,
            pxe: false,
        };
        w.power(3, goal);
        assert_eq!(w.failed(), (done(&[3]), false));
    }
}
