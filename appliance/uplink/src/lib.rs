//! The uplink protocol between a rack appliance and the provider service: the messages, the
//! framing, and the bookkeeping that delivers every event and runs every command exactly
//! once across dropped connections. `no_std`, no allocator, sans-IO: both sides (the
//! appliance's firmware and the provider's tokio service) drive it with their own transport,
//! one TLS stream per appliance.
//!
//! # Frames
//!
//! A frame is a 2-byte big-endian body length, then a [postcard] body holding exactly one
//! message ([`ToProvider`] or [`ToAppliance`]). Bodies are at most [`frame::MAX_FRAME`]
//! (1024) bytes: the largest message is 546 bytes, since every string has a fixed capacity
//! (the `*_MAX` consts in [`message`]). [`frame::FrameDecoder`] takes stream chunks cut
//! anywhere, rejects an oversize or zero length as soon as its 2 header bytes arrive (it
//! never buffers such a body), and holds at most one body. Any frame or decode error ends the
//! connection.
//!
//! # Versions
//!
//! [`Hello::protocol`] carries the appliance's highest version; the provider answers with
//! the version both speak in [`Welcome::protocol`] (see [`message::negotiate`]) or
//! [`ToAppliance::Refused`]. Postcard writes an enum variant as its index and a struct's
//! fields in order, without names, so the layout may only grow this way:
//! - new message kinds, events, commands, boot targets, ... are appended as new variants at
//!   the end of their enum; no variant is ever removed, reordered or changed (a replacement
//!   is a new variant, the old one stays reserved);
//! - a new variant is only sent to a peer whose negotiated version includes it, so a
//!   receiver never meets a variant it does not know (if it does, the frame is malformed
//!   and the connection ends);
//! - optional abilities within a version are [`Capabilities`] bits;
//! - a change that cannot follow these rules raises [`MIN_PROTOCOL_VERSION`].
//!
//! # Exactly once
//!
//! Events (appliance -> provider) carry increasing sequence numbers. The appliance keeps
//! each in its [`Outbox`], a bounded ring, until the provider acks it; [`Session`] sends the
//! hello on each connection, and after the [`Welcome`] (which carries the provider's last
//! applied number) resends everything above it. The provider's [`Inbox`] applies an event
//! only if its number is above the last applied one, and persists that number in the same
//! transaction as the event's effect, so a resend after a reconnect or a provider restart is
//! dropped. A full outbox replaces the oldest waiting state-like event with the same key
//! (power state, lease or sighting of the same machine) and refuses anything else
//! ([`outbox::Full`]); the appliance re-reports that state later from its tables. After an
//! appliance restart, the events it queues before the first welcome are numbered above the
//! provider's last ack. An appliance that persists its outbox ([`Outbox::iter`],
//! [`Outbox::next_seq`], [`Session::is_numbered`]) before any of it is sent and restores it
//! with [`Session::restore`] loses no unacked event in a restart either: restored events keep
//! their numbers, so the welcome drops the ones the provider applied.
//!
//! Commands (provider -> appliance) carry ids that the provider keeps until it has applied
//! their [`CommandResult`] (itself an event, so delivered exactly once). The provider resends
//! its unresolved commands after each welcome, in id order, keeping at most
//! [`Hello::command_window`] outstanding. The appliance's [`CommandFilter`] (the highest id
//! and a 64-id bitmap, persisted before a command runs) drops the resends, so each command
//! runs at most once; [`Session`] reserves an outbox slot for each running command's result.
//! A resent command whose result was lost in an appliance restart is answered
//! [`Outcome::Interrupted`]. The provider ignores a result for a command it has already
//! resolved.
//!
//! # Wire types
//!
//! [`Mac`], [`Uuid`] and [`Ipv4`] are this crate's own newtypes rather than the
//! `appliance` crate's, so the provider can depend on the protocol without the appliance's
//! network stack and crypto, and the wire format cannot change by accident when the
//! appliance's types do.
#![no_std]
#![forbid(unsafe_code)]
// No allocator: messages are fixed-capacity values (a URL is 256 bytes in place), so the
// variants differ in size and an unaccepted event is handed back whole; boxing is no option.
#![allow(clippy::large_enum_variant, clippy::result_large_err)]

pub mod dedup;
pub mod enroll;
pub mod enroll_client;
pub mod frame;
pub mod message;
pub mod outbox;
pub mod session;
pub mod sightings;

pub use dedup::{CommandFilter, Inbox, Verdict};
pub use frame::FrameDecoder;
pub use message::*;
pub use outbox::Outbox;
pub use session::{Action, COMMAND_WINDOW, Session};
pub use sightings::Sightings;
