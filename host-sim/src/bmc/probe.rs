//! A BMC whose protocol is not configured: Redfish is tried first (the richer API, and what
//! Omni's own provider prefers), IPMI when Redfish does not answer. The first protocol that
//! completes an operation is kept for good.

use std::os::fd::RawFd;
use std::time::Instant;

use appliance::bmc::{Error, Operation, PowerState};

use super::Link;
use super::ipmi::IpmiLink;
use super::redfish::RedfishLink;

pub struct ProbeLink {
    /// `None` once Redfish was given up on.
    redfish: Option<RedfishLink>,
    ipmi: IpmiLink,
    /// The protocol that answered; until then Redfish is asked and IPMI is the fallback.
    settled: bool,
    pending: Option<Operation>,
}

impl ProbeLink {
    pub fn new(redfish: RedfishLink, ipmi: IpmiLink) -> ProbeLink {
        ProbeLink {
            redfish: Some(redfish),
            ipmi,
            settled: false,
            pending: None,
        }
    }

    fn current(&self) -> &dyn Link {
        match &self.redfish {
            Some(redfish) => redfish,
            None => &self.ipmi,
        }
    }
}

/// Whether an error says the BMC does not speak Redfish (nothing listens, no TLS, no
/// `/redfish/v1`), as opposed to a Redfish BMC that refused us: wrong credentials or an
/// untrusted certificate must not quietly move us to IPMI.
fn no_redfish(error: Error) -> bool {
    !matches!(error, Error::Auth | Error::Busy)
}

impl Link for ProbeLink {
    fn start(&mut self, op: Operation, now: Instant) -> Result<(), Error> {
        self.pending = Some(op);
        match &mut self.redfish {
            Some(redfish) => redfish.start(op, now),
            None => self.ipmi.start(op, now),
        }
    }

    fn poll(&mut self, now: Instant) -> Option<Result<PowerState, Error>> {
        let Some(redfish) = &mut self.redfish else {
            return self.ipmi.poll(now);
        };
        match redfish.poll(now)? {
            Err(error) if !self.settled && no_redfish(error) => {
                redfish.close(now);
                self.redfish = None;
                let op = self.pending?;
                match self.ipmi.start(op, now) {
                    Ok(()) => self.ipmi.poll(now),
                    Err(error) => Some(Err(error)),
                }
            }
            result => {
                self.settled |= result.is_ok();
                Some(result)
            }
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        self.current().poll_at()
    }

    fn fd(&self) -> Option<RawFd> {
        self.current().fd()
    }

    fn close(&mut self, now: Instant) {
        if let Some(redfish) = &mut self.redfish {
            redfish.close(now);
        }
        self.ipmi.close(now);
    }

    fn is_closed(&self) -> bool {
        self.redfish.as_ref().is_none_or(Link::is_closed) && self.ipmi.is_closed()
    }
}
