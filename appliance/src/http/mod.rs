//! The HTTP server iPXE fetches its script and the boot files from: HTTP/1.1 GET and HEAD,
//! keep-alive and pipelining, single byte ranges, in fixed memory per connection.
//!
//! Our own, not a crate. `picoserve` 0.20 and `edge-http` 0.8 were evaluated. Both are async
//! servers that own the socket through `embedded-io-async` (picoserve's timeouts run on
//! embassy-time or tokio timers; edge-http leaves timeouts to `edge-nal` wrappers), so
//! neither runs from host-sim's smoltcp poll loop or a unit test without an executor.
//! Neither serves `Range` requests or streams a body from a block store: picoserve's files
//! are `&'static [u8]`, and it needs Rust 1.93 (we target 1.90) with serde, futures-util and
//! two heapless versions. edge-http without its `io` feature is header helpers over
//! `httparse`. What we need is small, GET/HEAD of files and one rendered script, so a
//! sans-IO state machine (bytes in, bytes out, `poll_at`) that reads the head into a 2 KiB
//! buffer and writes headers and body straight into the socket's send buffer costs less.
//!
//! Choices: several ranges in one `Range` get the whole file (200) rather than a multipart
//! body; `Range` on HEAD or with `If-Range` is ignored (RFC 9110 allows both). Other HTTP
//! methods get 405, unknown ones 501. Request bodies are skipped (up to 64 KiB, else the
//! connection closes after the response). `/boot.ipxe` is always the rendered script.
//!
//! `/config?u=UUID` is Omni's join config (Talos fetches it through its `talos.config`
//! kernel argument; see `connection::join_config`): 400 without a well-formed UUID, 404
//! until the provider has pushed one. It is the same document for every machine, so it is
//! served to any UUID, also a cordoned or unknown machine's: refusing it would protect
//! nothing that another UUID does not get, and a machine whose target moved on to its disk
//! while its installer was booting must still fetch it.
//!
//! [`Connection`] is one TCP connection. The adapter, per connection and poll:
//! - offers the socket's received bytes to `receive` and sends what `send` writes into the
//!   socket's free space, repeating until neither moves (a finished response lets the next
//!   pipelined request in); a [`Site`] is built for each `send`, it only borrows;
//! - calls `peer_closed` once the client's FIN is in and its bytes are all consumed;
//! - wakes at `poll_at` and calls `tick`;
//! - logs each `poll_event` with the client's address ([`Event::line`]);
//! - on `should_close`, closes the socket (FIN after the queued bytes); on that or a reset,
//!   calls `release` so a file still open is closed.

pub mod connection;
pub mod request;
pub mod script;
pub mod url;

use core::fmt;

pub use connection::{Connection, HEAD_TIMEOUT_MS, IDLE_TIMEOUT_MS, SEND_TIMEOUT_MS};
pub use script::{DEFAULT_TEMPLATE, Requester, ScriptConfig};

use crate::assets::AssetStore;
use crate::dhcp::pxe::BootTarget;
use crate::inventory::Inventory;
use crate::net::{MacAddr, Uuid};

/// What a connection serves from: the boot files, the script's settings and each machine's
/// boot target.
pub struct Site<'a, S: AssetStore> {
    pub store: &'a mut S,
    pub script: &'a ScriptConfig<'a>,
    pub targets: &'a dyn BootTargets,
}

/// Where the script looks up a machine's boot target, by what the request's query says,
/// and the provider's join config that `/config` serves.
pub trait BootTargets {
    fn boot_target(&self, mac: Option<MacAddr>, uuid: Option<Uuid>) -> BootTarget;

    /// The join config the provider pushed down; `None` (the default, and before the
    /// provider has sent one) answers `/config` with 404.
    fn join_config(&self) -> Option<&str> {
        None
    }
}

impl<const N: usize> BootTargets for Inventory<N> {
    fn boot_target(&self, mac: Option<MacAddr>, uuid: Option<Uuid>) -> BootTarget {
        match (mac, uuid) {
            (Some(mac), _) => Inventory::boot_target(self, mac, uuid),
            (None, Some(uuid)) => (self.iter().find(|m| m.uuid == Some(uuid)))
                .map(|m| m.boot.clone())
                .unwrap_or_default(),
            (None, None) => BootTarget::Default,
        }
    }
}

/// The same target for every machine (tests, or a site without an inventory).
impl BootTargets for BootTarget {
    fn boot_target(&self, _: Option<MacAddr>, _: Option<Uuid>) -> BootTarget {
        self.clone()
    }
}

/// The response statuses this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    PartialContent,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    RangeNotSatisfiable,
    HeadersTooLarge,
    InternalError,
    NotImplemented,
    /// The store has too many files open.
    Unavailable,
    VersionNotSupported,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::RangeNotSatisfiable => 416,
            Status::HeadersTooLarge => 431,
            Status::InternalError => 500,
            Status::NotImplemented => 501,
            Status::Unavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::PartialContent => "Partial Content",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::RangeNotSatisfiable => "Range Not Satisfiable",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::InternalError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
            Status::Unavailable => "Service Unavailable",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// Longest method and target kept for the log; longer ones are cut, ending in `...`.
pub const MAX_LOG_METHOD: usize = 16;
pub const MAX_LOG_TARGET: usize = 128;

/// One finished (or abandoned) response, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `-` when the request line was unreadable.
    pub method: heapless::String<MAX_LOG_METHOD>,
    /// As sent (printable ASCII only, checked by the parser); `-` when unreadable.
    pub target: heapless::String<MAX_LOG_TARGET>,
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the end of the request head to the last byte handed to the socket.
    pub ms: u64,
    /// False when the connection ended before the whole body was sent.
    pub complete: bool,
}

impl Event {
    /// The log line with the client's address: `http GET /x from=.. -> 200 bytes=.. ms=..`.
    pub fn line<'e, A: fmt::Display + 'e>(&'e self, from: A) -> impl fmt::Display + 'e {
        struct Line<'e, A>(&'e Event, A);
        impl<A: fmt::Display> fmt::Display for Line<'_, A> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let e = self.0;
                write!(f, "http {} {} from={} -> ", e.method, e.target, self.1)?;
                e.outcome(f)
            }
        }
        Line(self, from)
    }

    fn outcome(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes={} ms={}", self.status, self.bytes, self.ms)?;
        if !self.complete {
            f.write_str(" aborted")?;
        }
        Ok(())
    }
}

/// `GET /x -> 200 bytes=.. ms=..`.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> ", self.method, self.target)?;
        self.outcome(f)
    }
}

/// `s` into a log field of capacity `N`, cut with `...` when longer.
fn log_field<const N: usize>(s: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    if out.push_str(s).is_err() {
        let mut cut = N.saturating_sub(3);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let _ = out.push_str(&s[..cut]);
        let _ = out.push_str("...");
    }
    out
}
