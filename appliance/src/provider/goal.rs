//! What the provider's commands for one BMC wait for. A command is answered when the power
//! manager has done what it asked (the operation's result, not its start), or failed: the
//! provider then knows the BMC's state, and retries on its own schedule.
//!
//! Every power command is a one-off, `On` and `Off` included, not a desired state the manager
//! would hold: the provider reconciles (it re-sends `On`, with PXE once, when it observes the
//! machine off), and a state held here too would race it, e.g. power a machine that turned
//! itself off back on without the override.

use crate::bmc::{Operation, PowerAction};

/// What a power command waits for: `action` done. With `pxe` the override is set first and
/// the action requested only then (the manager runs an action before an override).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Goal {
    pub action: PowerAction,
    pub pxe: bool,
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

    /// Returns the command this one supersedes (its one-off is to be withdrawn).
    pub fn power(&mut self, id: u64, goal: Goal) -> Option<Waiting> {
        self.power.replace((id, goal)).map(|(old, _)| (old, POWER))
    }

    /// `op` succeeded (the BMC now reads some state).
    pub fn succeeded(&mut self, op: Operation) -> Progress {
        let mut progress = Progress::default();
        if let Some(id) = self.credentials.take() {
            let _ = progress.done.push((id, CREDENTIALS));
        }
        let Some((id, goal)) = self.power.as_mut() else {
            return progress;
        };
        if goal.pxe && matches!(op, Operation::BootPxe(_)) {
            goal.pxe = false;
            progress.request = Some(goal.action);
        } else if !goal.pxe && op == Operation::Power(goal.action) {
            let _ = progress.done.push((*id, POWER));
            self.power = None;
        }
        progress
    }

    /// An operation failed: every waiting command fails with it. Returns them, and whether a
    /// power command was among them (its one-off is to be withdrawn, or the manager would
    /// retry it after its backoff, unasked).
    pub fn failed(&mut self) -> (heapless::Vec<Waiting, 2>, bool) {
        let mut failed = heapless::Vec::new();
        if let Some(id) = self.credentials.take() {
            let _ = failed.push((id, CREDENTIALS));
        }
        let power = self.power.take().map(|(id, _)| failed.push((id, POWER)));
        (failed, power.is_some())
    }
}

#[cfg(test)]
mod tests {
    use crate::bmc::{BootMode, PxeBoot};

    use super::*;

    const PXE: Operation = Operation::BootPxe(PxeBoot {
        persistent: false,
        mode: BootMode::Efi,
    });
    const ON: Operation = Operation::Power(PowerAction::On);
    const STATUS: Operation = Operation::Status;

    fn done(ids: &[u64]) -> heapless::Vec<Waiting, 2> {
        let kind = |id| if id == 1 { CREDENTIALS } else { POWER };
        ids.iter().map(|&id| (id, kind(id))).collect()
    }

    #[test]
    fn credentials_are_done_by_the_first_success() {
        let mut w = Waiters::default();
        assert_eq!(w.credentials(3), None);
        assert_eq!(w.credentials(1), Some((3, CREDENTIALS)));
        assert_eq!(w.succeeded(STATUS).done, done(&[1]));
        assert_eq!(w.succeeded(STATUS).done, done(&[]));
    }

    #[test]
    fn power_on_with_pxe_requests_the_action_after_the_override() {
        let mut w = Waiters::default();
        let goal = Goal {
            action: PowerAction::On,
            pxe: true,
        };
        assert_eq!(w.power(5, goal), None);
        assert_eq!(w.succeeded(STATUS), Progress::default());
        // An `On` before the override (someone else's) does not count.
        assert_eq!(w.succeeded(ON), Progress::default());
        let p = w.succeeded(PXE);
        assert_eq!((p.done, p.request), (done(&[]), Some(PowerAction::On)));
        assert_eq!(w.succeeded(ON).done, done(&[5]));
        assert_eq!(w.failed(), (done(&[]), false));
    }

    #[test]
    fn a_failure_fails_everything_waiting() {
        let mut w = Waiters::default();
        w.credentials(1);
        let goal = Goal {
            action: PowerAction::Cycle,
            pxe: false,
        };
        assert_eq!(w.power(2, goal), None);
        assert_eq!(w.power(4, goal), Some((2, POWER)));
        assert_eq!(w.failed(), (done(&[1, 4]), true));
        assert_eq!(w.failed(), (done(&[]), false));
    }
}
