//! Runs the provider's commands with [`appliance::provider`] (its doc has the boot target
//! table) against `serve`'s inventory and power port, and hands the port's reports to the
//! session ([`UplinkPort::deliver`]).

use std::io::{self, Write};

use appliance::inventory::Inventory;
use appliance::provider::power::Report;
use uplink::{Command, Outcome};

use super::UplinkPort;
use crate::runtime::MACHINES;
use crate::runtime::power::PowerPort;

/// What commands act on.
pub struct Tables<'a> {
    pub inventory: &'a mut Inventory<MACHINES>,
    pub power: &'a mut PowerPort,
}

/// The provider's run-time configuration and the machines booting the agent.
#[derive(Default)]
pub struct Applied(pub(super) appliance::provider::Applied<MACHINES>);

impl Applied {
    /// `None`: the command runs on and its outcome comes through [`UplinkPort::deliver`].
    pub fn run(
        &mut self,
        id: u64,
        command: Command,
        tables: &mut Tables<'_>,
        now: u64,
    ) -> Option<Outcome> {
        let power = &mut *tables.power;
        let reports = &mut power.reports;
        let answer = &mut |r| reports.push(r);
        (self.0).run(id, command, tables.inventory, &mut power.port, now, answer)
    }
}

impl UplinkPort {
    /// Hands the power port's reports to the session, in order: a state before the result
    /// it explains. Queued like every event, so they are stored and logged with their number.
    pub(super) fn deliver(&mut self, power: &mut PowerPort, out: &mut dyn Write) -> io::Result<()> {
        for report in power.reports() {
            match report {
                Report::Power(state) => self.queue(uplink::Event::PowerState(state)),
                Report::Result { id, what, outcome } => {
                    writeln!(out, "uplink command id={id} {what} -> {outcome:?}")?;
                    // Only a command this session handed out reaches the power port.
                    if let Some(Ok(seq)) = self.session.as_mut().map(|s| s.complete(id, outcome)) {
                        self.queued
                            .push(format!("uplink event seq={seq} CommandResult"));
                    }
                }
            }
        }
        Ok(())
    }
}
