//! Shared by the tests: a simulated appliance (the real `uplink::Session` over any byte
//! stream, running every command it is handed and counting how often each ran); in
//! [`tls`] an appliance's TLS side (enrollment and the tunnel's client configuration); in
//! [`service`] the built binary, serving and as the CLI.
#![allow(dead_code)] // Each test binary uses part of it.

pub mod service;
pub mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use heapless::String;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uplink::frame::{self, HEADER, MAX_FRAME};
use uplink::{
    Action, Capabilities, Command, CommandFilter, Event, FrameDecoder, Hello, Mac, MachineId,
    MachineSeen, Outcome, Power, PowerAction, PowerState, Session, ToAppliance, Uuid,
};

pub const OUTBOX: usize = 512;

pub fn state_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("provider-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn mac(n: u8) -> Mac {
    Mac([2, 0, 0, 0, 0, n])
}

pub fn uuid(n: u8) -> Uuid {
    Uuid([n; 16])
}

pub fn seen(n: u8) -> Event {
    Event::MachineSeen(MachineSeen {
        mac: mac(n),
        uuid: Some(uuid(n)),
        arch: Some(7),
        first_seen: 1,
        last_seen: 2,
    })
}

pub struct Appliance {
    pub session: Session<OUTBOX>,
    decoder: FrameDecoder,
    /// How many times each command id ran.
    pub executed: HashMap<u64, u32>,
    /// Events accepted by the outbox.
    pub reported: u64,
}

impl Appliance {
    pub fn new(name: &str) -> Self {
        let hello = Hello {
            protocol: 0,
            appliance_id: String::try_from(name).unwrap(),
            firmware_version: String::try_from("test-1").unwrap(),
            capabilities: Capabilities(Capabilities::IPMI),
            command_window: 0,
            boot_id: 1,
        };
        Appliance {
            session: Session::new(hello, CommandFilter::new()),
            decoder: FrameDecoder::new(),
            executed: HashMap::new(),
            reported: 0,
        }
    }

    pub fn report(&mut self, event: Event) {
        self.session.report(event).unwrap();
        self.reported += 1;
    }

    pub fn connect(&mut self) {
        self.session.connect();
        self.decoder = FrameDecoder::new();
    }

    /// Sends what is due, then reads for up to `wait`. `Err` when the stream is gone or the
    /// session failed.
    pub async fn step(
        &mut self,
        io: &mut (impl AsyncRead + AsyncWrite + Unpin),
        wait: Duration,
    ) -> Result<(), String<64>> {
        self.transmit(io, None).await?;
        let mut buf = [0u8; 4096];
        let n = match tokio::time::timeout(wait, io.read(&mut buf)).await {
            Err(_) => return Ok(()),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(String::try_from("closed").unwrap()),
            Ok(Ok(n)) => n,
        };
        let mut input = &buf[..n];
        let mut msgs = Vec::new();
        while let Some(body) = self.decoder.decode(&mut input) {
            let body = body.map_err(|_| String::try_from("frame").unwrap())?;
            msgs.push(frame::decode::<ToAppliance>(body).unwrap());
        }
        for msg in msgs {
            match self.session.handle(msg) {
                Ok(Action::Execute { id, command }) => self.execute(id, command),
                Ok(_) => {}
                Err(e) => {
                    let _ = e;
                    return Err(String::try_from("session").unwrap());
                }
            }
        }
        Ok(())
    }

    /// Writes every due frame; with `cut`, only the first `cut` bytes of them.
    pub async fn transmit(
        &mut self,
        io: &mut (impl AsyncWrite + Unpin),
        cut: Option<usize>,
    ) -> Result<(), String<64>> {
        let mut out = Vec::new();
        let mut buf = [0u8; HEADER + MAX_FRAME];
        while let Some(n) = self.session.poll_transmit(&mut buf).unwrap() {
            out.extend_from_slice(&buf[..n]);
        }
        if let Some(cut) = cut {
            out.truncate(cut);
        }
        // A TLS stream may hold records back until flushed.
        let write = async {
            io.write_all(&out).await?;
            io.flush().await
        };
        write.await.map_err(|_| String::try_from("write").unwrap())
    }

    /// Runs a command at once; a power command changes the machine's reported power.
    fn execute(&mut self, id: u64, command: Command) {
        *self.executed.entry(id).or_default() += 1;
        if let Command::PowerCommand {
            machine, action, ..
        } = command
        {
            let state = match action {
                PowerAction::Off | PowerAction::SoftOff => Power::Off,
                _ => Power::On,
            };
            self.report(Event::PowerState(PowerState {
                machine,
                state,
                at: 3,
            }));
        }
        self.session.complete(id, Outcome::Done).unwrap();
        self.reported += 1;
    }

    pub fn power_of(n: u8) -> MachineId {
        MachineId::Uuid(uuid(n))
    }
}
