//! One appliance's tunnel: the provider's end of the uplink protocol over an authenticated
//! stream. Events are applied in batches (one store transaction per read, the inbox number
//! committed with their effects) and acked cumulatively; the commands the lifecycle wants
//! are issued in the store and sent within the appliance's command window, all unresolved
//! ones again on every new connection.
//!
//! Store calls are synchronous (redb): a batch costs one commit, short enough to run on the
//! runtime's worker thread.

mod registry;

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};
use uplink::frame::{self, HEADER, MAX_FRAME};
use uplink::{FrameDecoder, Hello, Sequenced, ToAppliance, ToProvider, Welcome};

use crate::model::ApplianceId;
use crate::store::{Store, StoreError, now};

pub use registry::Tunnels;

/// Time limits of a tunnel.
#[derive(Clone, Debug)]
pub struct TunnelOptions {
    /// From connect to the appliance's hello.
    pub hello_timeout: Duration,
    /// Silence after which the tunnel is taken for dead (pings make a live one speak).
    pub idle_timeout: Duration,
    pub ping_interval: Duration,
    /// One write of frames.
    pub write_timeout: Duration,
}

impl Default for TunnelOptions {
    fn default() -> Self {
        TunnelOptions {
            hello_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(45),
            ping_interval: Duration::from_secs(15),
            write_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
pub enum TunnelError {
    Io(io::Error),
    Frame(frame::Error),
    Timeout(&'static str),
    /// A message out of place.
    Protocol(String),
    /// The hello was refused (version, unknown or revoked appliance).
    Refused(String),
    /// Stopped by the provider: a newer tunnel of the same appliance took over, or the
    /// appliance was revoked.
    Stopped,
    Store(StoreError),
}

impl fmt::Display for TunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelError::Io(e) => write!(f, "i/o: {e}"),
            TunnelError::Frame(e) => write!(f, "frame: {e}"),
            TunnelError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            TunnelError::Protocol(e) => write!(f, "protocol: {e}"),
            TunnelError::Refused(e) => write!(f, "refused: {e}"),
            TunnelError::Stopped => f.write_str("stopped: replaced by a newer tunnel, or revoked"),
            TunnelError::Store(e) => write!(f, "store: {e}"),
        }
    }
}

impl std::error::Error for TunnelError {}

impl From<io::Error> for TunnelError {
    fn from(e: io::Error) -> Self {
        TunnelError::Io(e)
    }
}

impl From<StoreError> for TunnelError {
    fn from(e: StoreError) -> Self {
        TunnelError::Store(e)
    }
}

impl From<frame::Error> for TunnelError {
    fn from(e: frame::Error) -> Self {
        TunnelError::Frame(e)
    }
}

/// Serves one authenticated connection of appliance `appliance` until it ends. `Ok` on a
/// clean end of stream.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    appliance: ApplianceId,
    store: Arc<Store>,
    tunnels: Arc<Tunnels>,
) -> Result<(), TunnelError> {
    let options = tunnels.options().clone();
    let mut conn = Conn {
        stream,
        decoder: Box::new(FrameDecoder::new()),
        out: Vec::new(),
        options,
    };
    let hello = conn.read_hello().await?;
    let protocol = match uplink::negotiate(&hello) {
        Ok(p) => p,
        Err(refusal) => {
            conn.queue(&ToAppliance::Refused(refusal))?;
            conn.flush().await?;
            return Err(TunnelError::Refused(format!("{refusal:?}")));
        }
    };
    // The id enrollment gave the appliance, also in its certificate: a mismatch is a
    // misconfigured appliance, refused before it can touch the store.
    if hello.appliance_id.as_str() != appliance.to_string() {
        return Err(TunnelError::Refused(format!(
            "hello names {}, the certificate {appliance}",
            hello.appliance_id
        )));
    }
    let last_acked_seq = store
        .hello(appliance, &hello, now())
        .map_err(|e| TunnelError::Refused(e.to_string()))?;
    let live = tunnels.register(appliance);
    conn.queue(&ToAppliance::Welcome(Welcome {
        protocol,
        last_acked_seq,
        time: now(),
    }))?;
    let mut tunnel = Tunnel {
        appliance,
        store,
        window: usize::from(hello.command_window.max(1)),
        sent: BTreeSet::new(),
    };
    tunnel.store.reconcile(appliance, None, now())?;
    tunnel.send_commands(&mut conn)?;
    conn.flush().await?;

    let mut buf = vec![0u8; 16 * 1024];
    let mut ping = tokio::time::interval(conn.options.ping_interval);
    ping.reset();
    let mut ping_id = 0u32;
    let mut deadline = Instant::now() + conn.options.idle_timeout;
    loop {
        tokio::select! {
            read = timeout_at(deadline, conn.stream.read(&mut buf)) => {
                let n = read.map_err(|_| TunnelError::Timeout("the appliance"))??;
                if n == 0 {
                    return conn.decoder.finish().map_err(TunnelError::Frame);
                }
                deadline = Instant::now() + conn.options.idle_timeout;
                let events = conn.decode(&buf[..n])?;
                if !events.is_empty() {
                    tunnel.take_events(&events, &mut conn)?;
                }
            }
            _ = live.wake.notified() => {
                tunnel.store.reconcile(appliance, None, now())?;
                tunnel.send_commands(&mut conn)?;
            }
            _ = live.stop.notified() => return Err(TunnelError::Stopped),
            _ = ping.tick() => {
                ping_id = ping_id.wrapping_add(1);
                conn.queue(&ToAppliance::Ping(ping_id))?;
                // Retries after a failure wait for time to pass, not for an event.
                tunnel.store.reconcile(appliance, None, now())?;
                tunnel.send_commands(&mut conn)?;
            }
        }
        conn.flush().await?;
    }
}

/// The framed stream.
struct Conn<S> {
    stream: S,
    decoder: Box<FrameDecoder>,
    out: Vec<u8>,
    options: TunnelOptions,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn queue(&mut self, msg: &ToAppliance) -> Result<(), TunnelError> {
        let mut frame = [0u8; HEADER + MAX_FRAME];
        let len = frame::encode(msg, &mut frame)?;
        self.out.extend_from_slice(&frame[..len]);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TunnelError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        timeout(self.options.write_timeout, write)
            .await
            .map_err(|_| TunnelError::Timeout("a write"))??;
        self.out.clear();
        Ok(())
    }

    /// Reads until the first frame, which must be the hello.
    async fn read_hello(&mut self) -> Result<Hello, TunnelError> {
        let deadline = Instant::now() + self.options.hello_timeout;
        let mut buf = [0u8; 2 * (HEADER + MAX_FRAME)];
        loop {
            let n = timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .map_err(|_| TunnelError::Timeout("the hello"))??;
            if n == 0 {
                return Err(TunnelError::Protocol("closed before the hello".into()));
            }
            let mut input = &buf[..n];
            if let Some(body) = self.decoder.decode(&mut input) {
                let ToProvider::Hello(hello) = frame::decode(body?)? else {
                    return Err(TunnelError::Protocol("first message is not a hello".into()));
                };
                if !input.is_empty() {
                    return Err(TunnelError::Protocol("sent before the welcome".into()));
                }
                return Ok(hello);
            }
        }
    }

    /// Decodes the frames in `chunk`: returns the events; answers pings are pongs (nothing
    /// to do, they only prove the appliance alive).
    fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Sequenced>, TunnelError> {
        let mut input = chunk;
        let mut events = Vec::new();
        while let Some(body) = self.decoder.decode(&mut input) {
            match frame::decode(body?)? {
                ToProvider::Event(e) => events.push(e),
                ToProvider::Pong(_) => {}
                ToProvider::Hello(_) => return Err(TunnelError::Protocol("second hello".into())),
            }
        }
        Ok(events)
    }
}

/// The tunnel's own state on this connection.
struct Tunnel {
    appliance: ApplianceId,
    store: Arc<Store>,
    /// The appliance's command window.
    window: usize,
    /// Commands sent on this connection and not yet resolved.
    sent: BTreeSet<u64>,
}

impl Tunnel {
    /// Applies a batch, acks it, and sends what it made due.
    fn take_events<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        events: &[Sequenced],
        conn: &mut Conn<S>,
    ) -> Result<(), TunnelError> {
        let applied = self.store.apply_events(self.appliance, events, now())?;
        conn.queue(&ToAppliance::Ack {
            upto: applied.last_applied,
        })?;
        if !applied.touched.is_empty() {
            self.store
                .reconcile(self.appliance, Some(&applied.touched), now())?;
        }
        self.send_commands(conn)
    }

    /// Queues unresolved commands not yet sent on this connection, in id order, within the
    /// window.
    fn send_commands<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
    ) -> Result<(), TunnelError> {
        let outstanding = self.store.outstanding(self.appliance)?;
        let ids: BTreeSet<u64> = outstanding.iter().map(|(id, _)| *id).collect();
        self.sent.retain(|id| ids.contains(id));
        for (id, command) in outstanding {
            if self.sent.len() >= self.window {
                break;
            }
            if self.sent.insert(id) {
                conn.queue(&ToAppliance::Command { id, command })?;
            }
        }
        Ok(())
    }
}
