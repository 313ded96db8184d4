//! The outbox on disk (`<state-dir>/uplink/outbox`), so events the provider has not acked
//! survive a restart, SIGKILL included.
//!
//! One small file rewritten whole (temporary name, fsync, rename: `StateDir::write`) each
//! time the outbox changed, and always before any of it is sent, so an ack never precedes
//! persistence and a crash leaves the old copy or the new one, never a mix. A copy per change
//! rather than the lease journal: the outbox is bounded (256 events of at most 1 KiB) and
//! mostly near empty, acks prune it from the front, and the renumbering of a first welcome
//! rewrites every entry. The layout is a version byte, the session's numbered flag, the next
//! sequence number (u64, little-endian), then each event as the tunnel's own frame
//! (`ToProvider::Event`), whose encoding only ever grows compatibly.

use std::io::{self, Write};

use uplink::frame::{self, FrameDecoder, HEADER, MAX_FRAME};
use uplink::{Outbox, Session, ToProvider};

use super::state::{StateDir, invalid};
use super::{UplinkPort, short};

const FILE: &str = "outbox";
const VERSION: u8 = 1;
const PREFIX: usize = 1 + 1 + 8;

/// What the last copy on disk held, to skip rewriting an unchanged outbox: the numbered
/// flag, the next number, the oldest waiting number and the count (every push moves the
/// next number, every ack the oldest, a renumbering both).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Saved(Option<(bool, u64, u64, usize)>);

impl Saved {
    fn of<const N: usize>(session: &Session<N>) -> Saved {
        let outbox = session.outbox();
        let oldest = outbox.iter().next().map_or(0, |e| e.seq);
        Saved(Some((
            session.is_numbered(),
            outbox.next_seq(),
            oldest,
            outbox.len(),
        )))
    }
}

impl StateDir {
    /// The outbox persisted before a restart and its numbered flag; `None` if none.
    pub fn load_outbox<const N: usize>(&self) -> io::Result<Option<(Outbox<N>, bool)>> {
        let bytes = match std::fs::read(self.path(FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let damaged = || invalid("outbox: damaged");
        let (&[version, numbered], rest) = bytes.split_first_chunk().ok_or_else(damaged)?;
        let (next_seq, mut input) = rest.split_first_chunk().ok_or_else(damaged)?;
        if version != VERSION || numbered > 1 {
            return Err(damaged());
        }
        let mut decoder = FrameDecoder::new();
        let mut events = Vec::new();
        while let Some(body) = decoder.decode(&mut input) {
            match body.and_then(frame::decode) {
                Ok(ToProvider::Event(e)) => events.push(e),
                _ => return Err(damaged()),
            }
        }
        decoder.finish().map_err(|_| damaged())?;
        let outbox = Outbox::restore(u64::from_le_bytes(*next_seq), events).ok_or_else(damaged)?;
        Ok(Some((outbox, numbered == 1)))
    }

    /// Drops the stored outbox (before a new enrollment: it belonged to the old identity).
    pub fn remove_outbox(&self) -> io::Result<()> {
        match std::fs::remove_file(self.path(FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes the session's outbox unless `saved` says the disk holds it already; true if
    /// it wrote.
    pub fn store_outbox<const N: usize>(
        &self,
        session: &Session<N>,
        saved: &mut Saved,
    ) -> io::Result<bool> {
        let now = Saved::of(session);
        if now == *saved {
            return Ok(false);
        }
        let outbox = session.outbox();
        let mut bytes = Vec::with_capacity(PREFIX + outbox.len() * 64);
        bytes.extend_from_slice(&[VERSION, u8::from(session.is_numbered())]);
        bytes.extend_from_slice(&outbox.next_seq().to_le_bytes());
        let mut buf = [0u8; HEADER + MAX_FRAME];
        for e in outbox.iter() {
            let n = frame::encode(&ToProvider::Event(e.clone()), &mut buf)
                .map_err(|e| invalid(format!("outbox: {e}")))?;
            bytes.extend_from_slice(&buf[..n]);
        }
        self.write(FILE, &bytes, 0o644)?;
        *saved = now;
        Ok(true)
    }
}

impl UplinkPort {
    /// Queues an event and notes its log line, `uplink event seq=N KIND` (with `replaced=1`
    /// when a full outbox dropped an older state of the same machine for it).
    pub(super) fn queue(&mut self, event: uplink::Event) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let before = session.outbox().len();
        let kind = format!("{event:?}");
        let line = match session.report(event) {
            Ok(seq) if session.outbox().len() == before => {
                format!("uplink event seq={seq} {} replaced=1", short(&kind))
            }
            Ok(seq) => format!("uplink event seq={seq} {}", short(&kind)),
            // The rest is re-observed later.
            Err(_) => format!("uplink outbox full: dropped {}", short(&kind)),
        };
        self.queued.push(line);
    }

    /// Stores the outbox if it changed, then logs the events queued meanwhile: a logged
    /// event is on disk.
    pub(super) fn save_outbox(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(session) = &self.session {
            self.dir.store_outbox(session, &mut self.saved)?;
        }
        if self.queued.is_empty() {
            return Ok(());
        }
        for line in self.queued.drain(..) {
            writeln!(out, "{line}")?;
        }
        // Now, not at the end of the pass: a kill meanwhile would hide stored events.
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use uplink::{
        BootServed, Capabilities, CommandFilter, Event, Hello, Mac, PROTOCOL_VERSION, Served,
        ToAppliance, Welcome,
    };

    use super::*;

    fn served(n: u64) -> Event {
        Event::BootServed(BootServed {
            mac: Mac([2, 0, 0, 0, 0, 1]),
            what: Served::TftpFile("ipxe.efi".try_into().unwrap()),
            at: n,
        })
    }

    fn session() -> Session<16> {
        let hello = Hello {
            protocol: 0,
            appliance_id: "a".try_into().unwrap(),
            firmware_version: "0".try_into().unwrap(),
            capabilities: Capabilities(0),
            command_window: 0,
            boot_id: 1,
        };
        Session::new(hello, CommandFilter::default())
    }

    #[test]
    fn the_outbox_survives_a_restart_with_its_numbers() {
        let tmp = std::env::temp_dir().join(format!("outbox-store-{}", std::process::id()));
        let dir = StateDir::new(&tmp);
        std::fs::create_dir_all(dir.path("")).unwrap();
        assert!(dir.load_outbox::<16>().unwrap().is_none());
        let mut s = session();
        let mut saved = Saved::default();
        s.report(served(1)).unwrap();
        s.connect();
        let mut buf = [0u8; HEADER + MAX_FRAME];
        s.poll_transmit(&mut buf).unwrap();
        s.handle(ToAppliance::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            last_acked_seq: 6,
            time: 0,
        }))
        .unwrap();
        s.report(served(2)).unwrap();
        assert!(dir.store_outbox(&s, &mut saved).unwrap());
        assert!(!dir.store_outbox(&s, &mut saved).unwrap(), "unchanged");
        let (outbox, numbered) = dir.load_outbox::<16>().unwrap().unwrap();
        assert!(numbered);
        let seqs: Vec<u64> = outbox.iter().map(|e| e.seq).collect();
        assert_eq!((seqs, outbox.next_seq()), (vec![7, 8], 9));
        assert_eq!(outbox.iter().nth(1).map(|e| &e.event), Some(&served(2)));
        std::fs::write(dir.path(FILE), [VERSION, 1, 0]).unwrap();
        assert!(dir.load_outbox::<16>().is_err());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
