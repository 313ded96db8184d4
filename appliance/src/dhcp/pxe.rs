//! The PXE boot decision: who is asking (firmware PXE, iPXE, UEFI HTTP boot or a plain DHCP
//! client), for which architecture, and what it should boot next.
//!
//! The chain is firmware PXE -> an iPXE binary over TFTP -> iPXE fetches a script over HTTP.
//! iPXE also sends `PXEClient`, so it is recognised first (user class `iPXE` or option 175)
//! to break the loop.

use core::fmt::{self, Write};
use core::net::Ipv4Addr;

use heapless::String;

use super::wire::Message;

/// Longest boot file name or URL the appliance hands out: what one option 67 holds. Over
/// 127 bytes it no longer fits the header's `file` field and goes in option 67 alone.
pub const MAX_BOOT_FILE: usize = 255;
pub type BootFile = String<MAX_BOOT_FILE>;

/// The client architectures of option 93 (RFC 4578, IANA registry) that we boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Bios,
    EfiIa32,
    /// Code 7, and 9, which RFC 4578 swapped with 7 once: real x64 firmware sends 7.
    EfiX64,
    EfiArm64,
    HttpIa32,
    HttpX64,
    HttpArm64,
    Unsupported(u16),
}

impl Arch {
    pub fn from_code(code: u16) -> Arch {
        match code {
            0 => Arch::Bios,
            6 => Arch::EfiIa32,
            7 | 9 => Arch::EfiX64,
            11 => Arch::EfiArm64,
            15 => Arch::HttpIa32,
            16 => Arch::HttpX64,
            19 => Arch::HttpArm64,
            other => Arch::Unsupported(other),
        }
    }
}

/// What kind of client sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// An OS DHCP client: an address, no boot file.
    Plain,
    /// Firmware PXE (option 60 `PXEClient`).
    Pxe,
    /// iPXE, which gets the script URL.
    Ipxe,
    /// UEFI HTTP boot (option 60 `HTTPClient`), which gets an http:// URL.
    Http,
}

impl ClientKind {
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Plain => "plain",
            ClientKind::Pxe => "pxe",
            ClientKind::Ipxe => "ipxe",
            ClientKind::Http => "http",
        }
    }

    /// The vendor class a reply to this client carries (option 60), if any.
    pub fn vendor_class(self) -> Option<&'static [u8]> {
        match self {
            ClientKind::Plain => None,
            ClientKind::Pxe | ClientKind::Ipxe => Some(b"PXEClient"),
            ClientKind::Http => Some(b"HTTPClient"),
        }
    }
}

pub fn classify(msg: &Message<'_>) -> ClientKind {
    if msg.ipxe_encap || is_ipxe_user_class(msg.user_class) {
        ClientKind::Ipxe
    } else if msg.vendor_class.starts_with(b"PXEClient") {
        ClientKind::Pxe
    } else if msg.vendor_class.starts_with(b"HTTPClient") {
        ClientKind::Http
    } else {
        ClientKind::Plain
    }
}

/// iPXE sends the bare bytes `iPXE`; RFC 3004 frames each class with a length byte.
fn is_ipxe_user_class(class: &[u8]) -> bool {
    class == b"iPXE" || class == b"\x04iPXE"
}

/// What the provider chose for one machine; `Default` follows the chain above.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum BootTarget {
    #[default]
    Default,
    /// iPXE chains this script URL instead of the appliance's own.
    Script(BootFile),
    /// Firmware loads this file (TFTP, or HTTP for HTTP boot) instead of iPXE.
    File(BootFile),
    /// No boot offer, so the firmware falls through to its next boot device (the disk).
    Local,
}

/// Where boot files come from, and their names per architecture.
#[derive(Clone, Debug)]
pub struct BootConfig {
    /// The TFTP and HTTP server: the appliance itself unless the site says otherwise.
    pub server: Ipv4Addr,
    pub http_port: u16,
    /// Path of the iPXE script on the HTTP server.
    pub script: BootFile,
    pub bios: BootFile,
    pub efi_ia32: BootFile,
    pub efi_x64: BootFile,
    pub efi_arm64: BootFile,
}

impl BootConfig {
    /// Debian's iPXE builds' names (package `ipxe`), served by this appliance.
    pub fn new(server: Ipv4Addr) -> BootConfig {
        let name = |s: &str| BootFile::try_from(s).unwrap_or_default();
        BootConfig {
            server,
            http_port: 80,
            script: name("boot.ipxe"),
            bios: name("undionly.kpxe"),
            efi_ia32: name("ipxe-i386.efi"),
            efi_x64: name("ipxe.efi"),
            efi_arm64: name("ipxe-arm64.efi"),
        }
    }

    /// `http://server[:port]/path`; `None` when it does not fit [`MAX_BOOT_FILE`].
    pub fn http_url(&self, path: &str) -> Option<BootFile> {
        let mut url = BootFile::new();
        let port = Port(self.http_port);
        write!(
            url,
            "http://{}{port}/{}",
            self.server,
            path.trim_start_matches('/')
        )
        .ok()?;
        Some(url)
    }
}

struct Port(u16);

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            80 => Ok(()),
            p => write!(f, ":{p}"),
        }
    }
}

/// The boot part of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    /// A TFTP file name, or an http:// URL.
    pub file: BootFile,
    /// `siaddr`: where the TFTP file is.
    pub server: Ipv4Addr,
}

/// The boot decision for one request. `None`: nothing to boot (a plain client, an
/// unsupported architecture, or a machine set to boot locally).
pub fn decide(
    kind: ClientKind,
    arch: Option<Arch>,
    target: &BootTarget,
    config: &BootConfig,
) -> Option<Boot> {
    let file = match (kind, target) {
        (ClientKind::Plain, _) | (_, BootTarget::Local) => return None,
        (ClientKind::Ipxe, BootTarget::Script(url)) => url.clone(),
        (ClientKind::Ipxe, _) => config.http_url(&config.script)?,
        (ClientKind::Pxe, BootTarget::File(name)) => name.clone(),
        (ClientKind::Http, BootTarget::File(name)) => config.http_url(name)?,
        (ClientKind::Pxe, _) => match arch? {
            Arch::Bios => config.bios.clone(),
            Arch::EfiIa32 => config.efi_ia32.clone(),
            Arch::EfiX64 => config.efi_x64.clone(),
            Arch::EfiArm64 => config.efi_arm64.clone(),
            _ => return None,
        },
        (ClientKind::Http, _) => match arch? {
            Arch::HttpIa32 => config.http_url(&config.efi_ia32)?,
            Arch::HttpX64 => config.http_url(&config.efi_x64)?,
            Arch::HttpArm64 => config.http_url(&config.efi_arm64)?,
            _ => return None,
        },
    };
    Some(Boot {
        file,
        server: config.server,
    })
}
