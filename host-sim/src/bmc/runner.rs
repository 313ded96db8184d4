//! Drives many BMC links from one thread: the power manager hands out jobs, the links run
//! them over their sockets, poll(2) waits for whichever answers first or times out.

use std::time::{Duration, Instant};

use appliance::bmc::power::{BmcId, PowerManager};
use appliance::bmc::{Error, Operation, PowerState};

use super::Link;

/// A finished operation, as the manager recorded it.
pub struct Completion {
    pub bmc: BmcId,
    pub op: Operation,
    pub result: Result<PowerState, Error>,
}

/// Whether the runner goes on after a completion.
#[derive(PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// The deadline passed before `on_complete` said stop.
#[derive(Debug)]
pub struct DeadlinePassed;

/// Runs jobs until `on_complete` returns [`Flow::Stop`] or `deadline` passes. Times given to
/// the manager are milliseconds since `epoch`.
pub fn drive(
    links: &mut [Box<dyn Link>],
    pm: &mut PowerManager<'_>,
    epoch: Instant,
    deadline: Instant,
    mut on_complete: impl FnMut(&mut PowerManager<'_>, Completion) -> Flow,
) -> Result<(), DeadlinePassed> {
    let mut running: Vec<Option<Operation>> = vec![None; links.len()];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(DeadlinePassed);
        }
        let now_ms = millis(epoch, now);
        while let Some((bmc, op)) = pm.poll_job(now_ms) {
            match links.get_mut(bmc).map(|link| link.start(op, now)) {
                Some(Ok(())) => running[bmc] = Some(op),
                Some(Err(error)) => {
                    let completion = finish(pm, bmc, op, Err(error), now_ms);
                    if on_complete(pm, completion) == Flow::Stop {
                        return Ok(());
                    }
                }
                None => {}
            }
        }
        for (bmc, link) in links.iter_mut().enumerate() {
            let Some(op) = running[bmc] else { continue };
            if let Some(result) = link.poll(now) {
                running[bmc] = None;
                let completion = finish(pm, bmc, op, result, millis(epoch, Instant::now()));
                if on_complete(pm, completion) == Flow::Stop {
                    return Ok(());
                }
            }
        }
        let wake = pm
            .poll_at()
            .map(|ms| epoch + Duration::from_millis(ms))
            .into_iter()
            .chain(links.iter().filter_map(|link| link.poll_at()))
            .fold(deadline, Instant::min);
        wait(links, wake);
    }
}

/// Closes every link politely, waiting at most until `deadline`; returns how many did not
/// close in time.
pub fn close_all(links: &mut [Box<dyn Link>], deadline: Instant) -> usize {
    let now = Instant::now();
    for link in links.iter_mut() {
        link.close(now);
    }
    loop {
        let now = Instant::now();
        for link in links.iter_mut() {
            // Results of a close are of no interest; the link reports `is_closed`.
            let _ = link.poll(now);
        }
        let open = links.iter().filter(|link| !link.is_closed()).count();
        if open == 0 || now >= deadline {
            return open;
        }
        let wake = links
            .iter()
            .filter_map(|link| link.poll_at())
            .fold(deadline, Instant::min);
        wait(links, wake);
    }
}

fn finish(
    pm: &mut PowerManager<'_>,
    bmc: BmcId,
    op: Operation,
    result: Result<PowerState, Error>,
    now_ms: u64,
) -> Completion {
    // Callers read the manager's view; its events matter to the appliance, not to a CLI.
    let _ = pm.complete(bmc, result, now_ms);
    Completion { bmc, op, result }
}

fn millis(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

/// Sleeps until a link's socket is readable or `until`.
fn wait(links: &[Box<dyn Link>], until: Instant) {
    let mut fds: Vec<libc::pollfd> = links
        .iter()
        .filter_map(|link| link.fd())
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let timeout = until.saturating_duration_since(Instant::now());
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms);
    }
}
