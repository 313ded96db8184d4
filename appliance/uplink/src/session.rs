//! The appliance's end of the uplink, sans-IO: the adapter moves decoded messages in and
//! framed bytes out, and says when the transport connects and drops.

use heapless::Vec;

use crate::dedup::CommandFilter;
use crate::frame::{self, Error as FrameError};
use crate::message::{
    Command, CommandResult, Event, Hello, MIN_PROTOCOL_VERSION, Outcome, PROTOCOL_VERSION, Refusal,
    ToAppliance, ToProvider,
};
use crate::outbox::{Full, Outbox};

/// How many commands may be accepted and not yet answered; the outbox keeps this many
/// slots free of ordinary events for their results. Advertised in [`Hello::command_window`].
pub const COMMAND_WINDOW: usize = 8;

/// What the adapter must do after [`Session::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// The provider took the hello; `time` is its clock (Unix seconds).
    Established {
        time: u64,
    },
    /// Persist [`Session::command_filter`], then run the command and call
    /// [`Session::complete`] with its outcome.
    Execute {
        id: u64,
        command: Command,
    },
}

/// Why the session cannot go on; the adapter closes the connection (and reconnects later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The provider refused the hello.
    Refused(Refusal),
    /// The provider chose a version this crate does not speak.
    Version(u16),
    /// A message out of place (before the welcome, a second welcome, an ack of an event
    /// never sent).
    Unexpected,
    /// [`Session::complete`] for a command that is not running.
    NotRunning,
    Frame(FrameError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Down,
    HelloDue,
    AwaitingWelcome,
    Up,
}

/// One appliance's uplink state across connections: the outbox of events, the commands
/// running, the command filter. `N` is the outbox capacity (more than [`COMMAND_WINDOW`]).
pub struct Session<const N: usize> {
    hello: Hello,
    link: Link,
    outbox: Outbox<N>,
    commands: CommandFilter,
    running: Vec<u64, COMMAND_WINDOW>,
    /// The highest event sequence number sent on this connection.
    sent_upto: u64,
    /// False until the first welcome since start-up, which renumbers the outbox.
    numbered: bool,
    pong: Option<u32>,
}

impl<const N: usize> Session<N> {
    /// `commands` is the filter the appliance persisted (or a new one on first start).
    pub fn new(hello: Hello, commands: CommandFilter) -> Self {
        Self::restore(hello, commands, Outbox::new(), false)
    }

    /// A session on the outbox the appliance persisted before a restart, so its unacked
    /// events survive it. `numbered` is what [`Session::is_numbered`] said then: if true the
    /// events keep their numbers (some may have been sent, and the welcome acks the ones the
    /// provider applied); if false the first welcome numbers them, as for a new outbox.
    pub fn restore(
        mut hello: Hello,
        commands: CommandFilter,
        outbox: Outbox<N>,
        numbered: bool,
    ) -> Self {
        hello.protocol = PROTOCOL_VERSION;
        hello.command_window = COMMAND_WINDOW as u16;
        Session {
            hello,
            link: Link::Down,
            outbox,
            commands,
            running: Vec::new(),
            sent_upto: 0,
            numbered,
            pong: None,
        }
    }

    /// The transport is connected: the hello goes out first.
    pub fn connect(&mut self) {
        self.link = Link::HelloDue;
        self.sent_upto = 0;
        self.pong = None;
    }

    /// The transport dropped. Nothing is lost: unacked events are resent after the next
    /// welcome, and running commands still complete into the outbox.
    pub fn disconnect(&mut self) {
        self.link = Link::Down;
    }

    pub fn is_up(&self) -> bool {
        self.link == Link::Up
    }

    pub fn outbox(&self) -> &Outbox<N> {
        &self.outbox
    }

    /// Whether the outbox's numbers are final (a welcome has numbered them): persisted with
    /// the outbox, for [`Session::restore`].
    pub fn is_numbered(&self) -> bool {
        self.numbered
    }

    /// The state to persist before running a command.
    pub fn command_filter(&self) -> CommandFilter {
        self.commands
    }

    /// Queues an observation (connected or not). A [`Event::CommandResult`] is refused here:
    /// results go through [`Session::complete`].
    pub fn report(&mut self, event: Event) -> Result<u64, Full> {
        if matches!(event, Event::CommandResult(_)) {
            return Err(Full(event));
        }
        let limit = N.saturating_sub(COMMAND_WINDOW + self.running.len());
        self.outbox.push(event, limit)
    }

    /// Queues the result of a command [`Action::Execute`] handed out.
    pub fn complete(&mut self, command_id: u64, outcome: Outcome) -> Result<u64, Error> {
        let before = self.running.len();
        self.running.retain(|&id| id != command_id);
        if self.running.len() == before {
            return Err(Error::NotRunning);
        }
        // Cannot be full: the slot was reserved when the command was accepted (every push
        // keeps outbox length + running commands <= N).
        self.push_result(command_id, outcome)
            .map_err(|_| Error::NotRunning)
    }

    fn push_result(&mut self, command_id: u64, outcome: Outcome) -> Result<u64, Full> {
        let result = Event::CommandResult(CommandResult {
            command_id,
            outcome,
        });
        self.outbox
            .push(result, N.saturating_sub(self.running.len()))
    }

    /// Takes one message from the provider.
    pub fn handle(&mut self, msg: ToAppliance) -> Result<Action, Error> {
        match (self.link, msg) {
            (Link::AwaitingWelcome, ToAppliance::Welcome(w)) => {
                if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&w.protocol) {
                    return Err(Error::Version(w.protocol));
                }
                self.outbox.continue_after(w.last_acked_seq, !self.numbered);
                self.outbox.ack(w.last_acked_seq);
                self.numbered = true;
                self.sent_upto = w.last_acked_seq;
                self.link = Link::Up;
                Ok(Action::Established { time: w.time })
            }
            (Link::AwaitingWelcome, ToAppliance::Refused(r)) => {
                self.link = Link::Down;
                Err(Error::Refused(r))
            }
            (Link::Up, ToAppliance::Ack { upto }) if upto <= self.sent_upto => {
                self.outbox.ack(upto);
                Ok(Action::Nothing)
            }
            (Link::Up, ToAppliance::Command { id, command }) => Ok(self.command(id, command)),
            (Link::Up, ToAppliance::Ping(n)) => {
                self.pong = Some(n);
                Ok(Action::Nothing)
            }
            _ => Err(Error::Unexpected),
        }
    }

    fn command(&mut self, id: u64, command: Command) -> Action {
        if !self.commands.is_new(id) {
            // Resent because its result has not reached the provider yet. If the result is
            // neither running nor waiting, it was lost in a restart: say so (once; a result
            // the provider has already resolved is ignored there).
            if !self.running.contains(&id) && !self.outbox.has_result(id) {
                // If even that slot is missing, the provider asks again after a reconnect.
                let _ = self.push_result(id, Outcome::Interrupted);
            }
            return Action::Nothing;
        }
        // Room for its result, or leave it unaccepted: the provider resends it after the
        // next welcome. A provider within its command window never meets this.
        if self.outbox.len() + self.running.len() >= N || self.running.push(id).is_err() {
            return Action::Nothing;
        }
        self.commands.accept(id);
        Action::Execute { id, command }
    }

    /// Writes the next frame to send into `out` and returns its length, or `None` when
    /// there is nothing to send now. The hello first, then a pong, then unsent events.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Result<Option<usize>, Error> {
        let msg = match self.link {
            Link::Down | Link::AwaitingWelcome => return Ok(None),
            Link::HelloDue => ToProvider::Hello(self.hello.clone()),
            Link::Up => match (self.pong, self.outbox.first_after(self.sent_upto)) {
                (Some(n), _) => ToProvider::Pong(n),
                (None, Some(e)) => ToProvider::Event(e.clone()),
                (None, None) => return Ok(None),
            },
        };
        let len = frame::encode(&msg, out).map_err(Error::Frame)?;
        match msg {
            ToProvider::Hello(_) => self.link = Link::AwaitingWelcome,
            ToProvider::Pong(_) => self.pong = None,
            ToProvider::Event(e) => self.sent_upto = e.seq,
        }
        Ok(Some(len))
    }
}
