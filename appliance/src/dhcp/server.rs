//! The sans-IO DHCP server: a received datagram and the time in; a reply, its destination,
//! a lease change to persist and a one-line decision out.

use core::net::{Ipv4Addr, SocketAddrV4};

use super::config::{Config, MAX_SUBNETS, Mode};
use super::decision::{Decision, Destination};
use super::leases::{Lease, LeaseState, LeaseTable};
use super::pxe::{self, Arch, Boot, ClientKind};
use super::wire::{self, Builder, CLIENT_PORT, Message, MessageType, PROXY_PORT, SERVER_PORT, opt};
use crate::inventory::Inventory;
use crate::net::{MacAddr, Uuid};

/// How long an offered address is held for the client's REQUEST.
pub const OFFER_HOLD_SECS: u64 = 60;
/// How long a declined address stays out of the pool.
pub const DECLINE_HOLD_SECS: u64 = 600;

/// A datagram received on one of the server's ports.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'p> {
    pub src: SocketAddrV4,
    /// The local port it arrived on: 67, or 4011 for proxyDHCP requests.
    pub port: u16,
    pub payload: &'p [u8],
}

/// The result of one datagram.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// A reply of this length was written to the output buffer, for this destination.
    pub reply: Option<(Destination, usize)>,
    /// A lease to append to the journal.
    pub change: Option<Lease>,
    pub decision: Decision,
}

/// Counters for what arrived and what was done with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u32,
    pub malformed: u32,
    pub ignored: u32,
    pub offers: u32,
    pub acks: u32,
    pub naks: u32,
    pub releases: u32,
    pub declines: u32,
    /// No address could be given: pool or lease table full.
    pub exhausted: u32,
}

pub struct Server<'a> {
    config: Config,
    leases: LeaseTable<'a>,
    /// Per subnet, where the next free-address search starts.
    cursors: [u32; MAX_SUBNETS],
    stats: Stats,
}

/// A request's facts the handlers share.
struct Ctx<'m, 'p> {
    now: u64,
    msg: &'m Message<'p>,
    port: u16,
    src: SocketAddrV4,
    kind: ClientKind,
    uuid: Option<Uuid>,
    boot: Option<Boot>,
}

/// What a handler decided before the reply is encoded.
struct Answer {
    kind: MessageType,
    yiaddr: Ipv4Addr,
    /// The subnet whose options the reply carries.
    subnet: Option<usize>,
    lease: bool,
    boot: bool,
}

impl<'a> Server<'a> {
    /// `config` must have passed [`Config::validate`].
    pub fn new(config: Config, leases: LeaseTable<'a>) -> Server<'a> {
        Server {
            config,
            leases,
            cursors: [0; MAX_SUBNETS],
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn leases(&self) -> &LeaseTable<'a> {
        &self.leases
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Reloads a lease from the journal; a full table drops it (and says so).
    pub fn restore(&mut self, lease: Lease) -> bool {
        self.leases.bind(lease, 0).is_ok()
    }

    /// Handles one datagram, writing any reply into `out`.
    pub fn handle<const N: usize>(
        &mut self,
        now: u64,
        dg: &Datagram<'_>,
        inventory: &mut Inventory<N>,
        out: &mut [u8],
    ) -> Outcome {
        self.stats.received = self.stats.received.wrapping_add(1);
        let msg = match Message::parse(dg.payload) {
            Ok(m) if m.op == wire::BOOTREQUEST => m,
            Ok(_) => return self.drop_with(Decision::malformed(dg.src, None), false),
            Err(e) => return self.drop_with(Decision::malformed(dg.src, Some(e)), true),
        };
        let kind = pxe::classify(&msg);
        let uuid = msg.client_uuid();
        let target = match kind {
            ClientKind::Plain => inventory.boot_target(msg.chaddr, uuid),
            _ => inventory.observe(now, msg.chaddr, uuid, msg.client_arch),
        };
        let arch = msg.client_arch.map(Arch::from_code);
        let boot = pxe::decide(kind, arch, &target, &self.config.boot);
        let ctx = Ctx {
            now,
            msg: &msg,
            port: dg.port,
            src: dg.src,
            kind,
            uuid,
            boot,
        };
        let mut decision = Decision::new(&msg, dg.port, kind, uuid);
        let mut change = None;
        let answer = match (dg.port, self.config.mode, msg.message_type) {
            (PROXY_PORT, _, MessageType::Request | MessageType::Inform) => {
                self.proxy(&ctx, MessageType::Ack, &mut decision)
            }
            (SERVER_PORT, Mode::Proxy, MessageType::Discover) => {
                self.proxy(&ctx, MessageType::Offer, &mut decision)
            }
            (SERVER_PORT, Mode::Full, MessageType::Discover) => self.discover(&ctx, &mut decision),
            (SERVER_PORT, Mode::Full, MessageType::Request) => {
                self.request(&ctx, &mut decision, &mut change)
            }
            (SERVER_PORT, Mode::Full, MessageType::Inform) => self.inform(&ctx, &mut decision),
            (SERVER_PORT, Mode::Full, MessageType::Release) => {
                self.release(&ctx, &mut decision, &mut change)
            }
            (SERVER_PORT, Mode::Full, MessageType::Decline) => {
                self.decline(&ctx, &mut decision, &mut change)
            }
            _ => {
                decision.note = Some("not-for-us");
                None
            }
        };
        let Some(answer) = answer else {
            if decision.reply.is_none() && change.is_none() {
                self.stats.ignored += 1;
            }
            return Outcome {
                reply: None,
                change,
                decision,
            };
        };
        let reply = match self.encode(&ctx, &answer, out) {
            Ok(len) => {
                let to = destination(&ctx, &answer);
                decision.reply = Some(answer.kind);
                decision.ip = Some(answer.yiaddr)
                    .filter(|ip| !ip.is_unspecified())
                    .or(decision.ip);
                decision.file = ctx
                    .boot
                    .as_ref()
                    .filter(|_| answer.boot)
                    .map(|b| b.file.clone());
                decision.to = Some(to);
                self.count(answer.kind);
                Some((to, len))
            }
            Err(_) => {
                decision.note = Some("reply-too-large");
                self.stats.ignored += 1;
                None
            }
        };
        Outcome {
            reply,
            change,
            decision,
        }
    }

    fn drop_with(&mut self, decision: Decision, malformed: bool) -> Outcome {
        if malformed {
            self.stats.malformed += 1;
        } else {
            self.stats.ignored += 1;
        }
        Outcome {
            reply: None,
            change: None,
            decision,
        }
    }

    fn count(&mut self, kind: MessageType) {
        let counter = match kind {
            MessageType::Offer => &mut self.stats.offers,
            MessageType::Ack => &mut self.stats.acks,
            _ => &mut self.stats.naks,
        };
        *counter += 1;
    }

    /// proxyDHCP: boot information only, yiaddr 0, to PXE-speaking clients.
    fn proxy(&self, ctx: &Ctx<'_, '_>, kind: MessageType, d: &mut Decision) -> Option<Answer> {
        if ctx.kind == ClientKind::Plain || ctx.boot.is_none() {
            d.note = Some(if ctx.kind == ClientKind::Plain {
                "not-pxe"
            } else {
                "no-boot-file"
            });
            return None;
        }
        Some(Answer {
            kind,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            subnet: None,
            lease: false,
            boot: true,
        })
    }

    fn discover(&mut self, ctx: &Ctx<'_, '_>, d: &mut Decision) -> Option<Answer> {
        let Some(si) = self.subnet_index(ctx.msg) else {
            d.note = Some("no-subnet");
            return None;
        };
        let mac = ctx.msg.chaddr;
        let Some(ip) = self.choose(ctx.now, si, mac, ctx.uuid, ctx.msg.requested_ip) else {
            return self.exhausted(d);
        };
        // A client that still holds this address keeps its binding; others get it on hold.
        let held = self
            .leases
            .by_mac(mac)
            .is_some_and(|l| l.ip == ip && l.state == LeaseState::Bound && l.is_active(ctx.now));
        if !held {
            let offer = Lease {
                ip,
                mac,
                state: LeaseState::Offered,
                expires: ctx.now + OFFER_HOLD_SECS,
            };
            if self.leases.bind(offer, ctx.now).is_err() {
                return self.exhausted(d);
            }
        }
        Some(self.grant(si, MessageType::Offer, ip, ctx))
    }

    fn exhausted(&mut self, d: &mut Decision) -> Option<Answer> {
        self.stats.exhausted += 1;
        d.note = Some("no-free-address");
        None
    }

    fn grant(&self, si: usize, kind: MessageType, ip: Ipv4Addr, ctx: &Ctx<'_, '_>) -> Answer {
        Answer {
            kind,
            yiaddr: ip,
            subnet: Some(si),
            lease: true,
            boot: ctx.boot.is_some(),
        }
    }

    fn nak(&self, d: &mut Decision, why: &'static str) -> Option<Answer> {
        d.note = Some(why);
        Some(Answer {
            kind: MessageType::Nak,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            subnet: None,
            lease: false,
            boot: false,
        })
    }

    /// SELECTING, INIT-REBOOT, RENEWING and REBINDING (RFC 2131 4.3.2).
    fn request(
        &mut self,
        ctx: &Ctx<'_, '_>,
        d: &mut Decision,
        change: &mut Option<Lease>,
    ) -> Option<Answer> {
        let msg = ctx.msg;
        let mac = msg.chaddr;
        if !self.ours(msg) {
            // The client chose another server: let our offer go.
            if let Some(&l) = self
                .leases
                .by_mac(mac)
                .filter(|l| l.state == LeaseState::Offered)
            {
                self.release_lease(l, ctx.now);
            }
            d.note = Some("chose-other-server");
            return None;
        }
        let ip = match (msg.requested_ip, msg.ciaddr.is_unspecified()) {
            (Some(ip), _) => ip,
            (None, false) => msg.ciaddr,
            (None, true) => return self.nak(d, "no-address-requested"),
        };
        d.ip = Some(ip);
        let Some(si) = self
            .subnet_index(msg)
            .filter(|&i| self.config.subnets[i].net.contains(ip))
        else {
            return self.nak(d, "wrong-subnet");
        };
        let init_reboot = msg.server_id.is_none() && msg.ciaddr.is_unspecified();
        if init_reboot {
            match self.leases.by_mac(mac) {
                Some(l) if l.ip != ip => return self.nak(d, "not-its-address"),
                Some(_) => {}
                None if self.leases.by_ip(ip).is_none_or(|l| !l.is_active(ctx.now)) => {
                    // RFC 2131: with no record of the client, stay silent; it rediscovers.
                    d.note = Some("unknown-client");
                    return None;
                }
                None => {}
            }
        }
        if !self.acceptable(ctx.now, si, ip, mac, ctx.uuid) {
            return self.nak(d, "address-not-available");
        }
        let lease = Lease {
            ip,
            mac,
            state: LeaseState::Bound,
            expires: ctx.now + u64::from(self.config.lease_secs),
        };
        if self.leases.bind(lease, ctx.now).is_err() {
            return self.exhausted(d);
        }
        *change = Some(lease);
        Some(self.grant(si, MessageType::Ack, ip, ctx))
    }

    fn inform(&self, ctx: &Ctx<'_, '_>, d: &mut Decision) -> Option<Answer> {
        let Some(si) = self.subnet_index(ctx.msg) else {
            d.note = Some("no-subnet");
            return None;
        };
        Some(Answer {
            kind: MessageType::Ack,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            subnet: Some(si),
            lease: false,
            boot: ctx.boot.is_some(),
        })
    }

    fn release(
        &mut self,
        ctx: &Ctx<'_, '_>,
        d: &mut Decision,
        change: &mut Option<Lease>,
    ) -> Option<Answer> {
        let ip = ctx.msg.ciaddr;
        d.ip = Some(ip);
        match self.leases.by_mac(ctx.msg.chaddr) {
            Some(&l) if l.ip == ip && self.ours(ctx.msg) => {
                *change = Some(self.release_lease(l, ctx.now));
                self.stats.releases += 1;
                d.note = Some("released");
            }
            _ => d.note = Some("unknown-lease"),
        }
        None
    }

    fn decline(
        &mut self,
        ctx: &Ctx<'_, '_>,
        d: &mut Decision,
        change: &mut Option<Lease>,
    ) -> Option<Answer> {
        let Some(ip) = ctx.msg.requested_ip else {
            d.note = Some("no-address");
            return None;
        };
        d.ip = Some(ip);
        match self.leases.by_ip(ip) {
            Some(l) if l.mac == ctx.msg.chaddr && self.ours(ctx.msg) => {
                // Held under a placeholder owner, so the client's next DISCOVER moves on.
                let held = Lease {
                    ip,
                    mac: declined_owner(ip),
                    state: LeaseState::Declined,
                    expires: ctx.now + DECLINE_HOLD_SECS,
                };
                let _ = self.leases.bind(held, ctx.now);
                *change = Some(held);
                self.stats.declines += 1;
                d.note = Some("declined");
            }
            _ => d.note = Some("unknown-lease"),
        }
        None
    }

    /// Marks a lease released now; the client keeps it as an affinity hint.
    fn release_lease(&mut self, lease: Lease, now: u64) -> Lease {
        let released = Lease {
            state: LeaseState::Released,
            expires: now,
            ..lease
        };
        // The slot exists already, so binding it again cannot fail.
        let _ = self.leases.bind(released, now);
        released
    }

    fn ours(&self, msg: &Message<'_>) -> bool {
        msg.server_id.is_none_or(|s| s == self.config.server_ip)
    }

    /// The subnet a request belongs to: the relay's, the client's current one, or ours.
    fn subnet_index(&self, msg: &Message<'_>) -> Option<usize> {
        let anchor = [msg.giaddr, msg.ciaddr, self.config.server_ip]
            .into_iter()
            .find(|ip| !ip.is_unspecified())?;
        self.config
            .subnets
            .iter()
            .position(|s| s.net.contains(anchor))
    }

    fn reservation(&self, mac: MacAddr, uuid: Option<Uuid>) -> Option<Ipv4Addr> {
        self.config
            .reservations
            .iter()
            .find(|r| r.matches(mac, uuid))
            .map(|r| r.ip)
    }

    /// Whether `ip` may be bound to this client now.
    fn acceptable(
        &self,
        now: u64,
        si: usize,
        ip: Ipv4Addr,
        mac: MacAddr,
        uuid: Option<Uuid>,
    ) -> bool {
        let subnet = &self.config.subnets[si];
        let reserved = self
            .reservation(mac, uuid)
            .filter(|r| subnet.net.contains(*r));
        let allowed = match reserved {
            Some(r) => r == ip,
            None => subnet.in_pool(ip),
        };
        allowed && self.free_for(now, ip, mac, uuid)
    }

    /// Not the appliance's or a router's, not reserved for another, not held by another.
    fn free_for(&self, now: u64, ip: Ipv4Addr, mac: MacAddr, uuid: Option<Uuid>) -> bool {
        let infrastructure =
            ip == self.config.server_ip
                || self.config.subnets.iter().any(|s| {
                    s.router == Some(ip) || s.net.broadcast() == ip || s.net.network() == ip
                });
        let reserved_for_other = self
            .config
            .reservations
            .iter()
            .any(|r| r.ip == ip && !r.matches(mac, uuid));
        let held = self
            .leases
            .by_ip(ip)
            .is_some_and(|l| l.is_active(now) && (l.mac != mac || l.state == LeaseState::Declined));
        !infrastructure && !reserved_for_other && !held
    }

    /// Picks an address for a DISCOVER: the reservation, the client's previous address, the
    /// one it asks for, else the next never-used address, else the oldest expired one.
    fn choose(
        &mut self,
        now: u64,
        si: usize,
        mac: MacAddr,
        uuid: Option<Uuid>,
        requested: Option<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        let subnet = &self.config.subnets[si];
        if let Some(r) = self
            .reservation(mac, uuid)
            .filter(|r| subnet.net.contains(*r))
        {
            return self.free_for(now, r, mac, uuid).then_some(r);
        }
        let previous = self
            .leases
            .by_mac(mac)
            .filter(|l| l.state != LeaseState::Declined)
            .map(|l| l.ip);
        if let Some(ip) = previous
            .into_iter()
            .chain(requested)
            .find(|&ip| self.acceptable(now, si, ip, mac, uuid))
        {
            return Some(ip);
        }
        self.scan_pool(now, si, mac, uuid)
    }

    /// Walks the pool from the subnet's cursor; each pass is bounded by the pool size.
    fn scan_pool(
        &mut self,
        now: u64,
        si: usize,
        mac: MacAddr,
        uuid: Option<Uuid>,
    ) -> Option<Ipv4Addr> {
        let subnet = &self.config.subnets[si];
        let (first, size) = (u32::from(subnet.pool_first), subnet.pool_size());
        let start = self.cursors[si] % size;
        let nth = |k: u32| Ipv4Addr::from(first + (start + k) % size);
        let never_used = (0..size)
            .map(nth)
            .find(|&ip| self.leases.by_ip(ip).is_none() && self.free_for(now, ip, mac, uuid));
        let found = never_used.or_else(|| {
            (0..size)
                .map(nth)
                .find(|&ip| self.free_for(now, ip, mac, uuid))
        })?;
        self.cursors[si] = u32::from(found) - first + 1;
        Some(found)
    }

    fn encode(&self, ctx: &Ctx<'_, '_>, a: &Answer, out: &mut [u8]) -> Result<usize, wire::Error> {
        let msg = ctx.msg;
        // Respect the client's maximum message size (RFC 2132 9.10), never below 576.
        let limit = usize::from(msg.max_message_size.unwrap_or(576).max(576)) - 28;
        let out_len = out.len().min(limit);
        let mut b = Builder::reply(&mut out[..out_len], msg, a.kind)?;
        b.option_ip(opt::SERVER_ID, self.config.server_ip)?;
        if a.kind == MessageType::Nak {
            if !msg.giaddr.is_unspecified() {
                b.set_broadcast();
            }
            return Ok(b.finish());
        }
        b.yiaddr(a.yiaddr);
        if matches!(msg.message_type, MessageType::Inform | MessageType::Request)
            && a.yiaddr.is_unspecified()
        {
            b.ciaddr(msg.ciaddr);
        }
        if a.lease {
            let secs = self.config.lease_secs;
            b.option_u32(opt::LEASE_TIME, secs)?;
            b.option_u32(opt::RENEWAL_TIME, secs / 2)?;
            b.option_u32(opt::REBINDING_TIME, secs / 8 * 7)?;
        }
        if let Some(s) = a.subnet.map(|i| &self.config.subnets[i]) {
            b.option_ip(opt::SUBNET_MASK, s.net.mask())?;
            if let Some(r) = s.router {
                b.option_ip(opt::ROUTER, r)?;
            }
            if !self.config.dns.is_empty() {
                let mut dns = [0u8; 4 * super::config::MAX_DNS];
                for (chunk, ip) in dns.chunks_mut(4).zip(&self.config.dns) {
                    chunk.copy_from_slice(&ip.octets());
                }
                b.option(opt::DNS, &dns[..4 * self.config.dns.len()])?;
            }
            if !self.config.domain.is_empty() {
                b.option(opt::DOMAIN_NAME, self.config.domain.as_bytes())?;
            }
            b.option_ip(opt::BROADCAST, s.net.broadcast())?;
            for (code, value) in &self.config.extra_options {
                b.option(*code, value)?;
            }
        }
        if let Some(boot) = ctx.boot.as_ref().filter(|_| a.boot) {
            self.encode_boot(ctx, boot, &mut b)?;
        }
        Ok(b.finish())
    }

    fn encode_boot(
        &self,
        ctx: &Ctx<'_, '_>,
        boot: &Boot,
        b: &mut Builder<'_>,
    ) -> Result<(), wire::Error> {
        let msg = ctx.msg;
        b.siaddr(boot.server);
        let mut sname = heapless::String::<16>::new();
        let _ = core::fmt::write(&mut sname, format_args!("{}", boot.server));
        b.sname(&sname);
        let in_header = b.file(&boot.file);
        if let Some(class) = ctx.kind.vendor_class() {
            b.option(opt::VENDOR_CLASS, class)?;
        }
        if ctx.kind == ClientKind::Pxe {
            // PXE discovery control: no boot-server discovery, boot the file in the header.
            b.option(opt::VENDOR_SPECIFIC, &[6, 1, 8, 255])?;
        }
        if msg.requests(opt::TFTP_SERVER) {
            b.option(opt::TFTP_SERVER, sname.as_bytes())?;
        }
        if msg.requests(opt::BOOTFILE) || !in_header {
            b.option(opt::BOOTFILE, boot.file.as_bytes())?;
        }
        if !msg.client_uuid_raw.is_empty() {
            b.option(opt::CLIENT_UUID, msg.client_uuid_raw)?;
        }
        Ok(())
    }
}

/// Where a reply goes (RFC 2131 4.1; PXE spec for port 4011).
fn destination(ctx: &Ctx<'_, '_>, a: &Answer) -> Destination {
    let msg = ctx.msg;
    if ctx.port == PROXY_PORT {
        Destination::Unicast(ctx.src)
    } else if !msg.giaddr.is_unspecified() {
        Destination::Unicast(SocketAddrV4::new(msg.giaddr, SERVER_PORT))
    } else if a.kind == MessageType::Nak {
        Destination::Broadcast
    } else if !msg.ciaddr.is_unspecified() {
        Destination::Unicast(SocketAddrV4::new(msg.ciaddr, CLIENT_PORT))
    } else if msg.is_broadcast() || a.yiaddr.is_unspecified() {
        Destination::Broadcast
    } else {
        // No address yet and no broadcast flag (iPXE): straight to its MAC, no ARP.
        Destination::Link {
            mac: msg.chaddr,
            ip: a.yiaddr,
        }
    }
}

/// A placeholder owner for a declined address: locally administered, never a real NIC's.
fn declined_owner(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0xfe, 0xdc, o[0], o[1], o[2], o[3]])
}
