//! `manifest.json`: what an image holds (files with sizes, SHA-256 and load addresses) and
//! its config in words, without the token's secret. `run-qemu` reads it back.

use std::path::Path;

use appliance::net::MacAddr;
use board_config::{BoardConfig, DhcpMode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uplink::enroll::EnrollmentToken;

pub const FILE: &str = "manifest.json";

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub board: String,
    pub files: Vec<FileEntry>,
    pub config: ConfigSummary,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// Where the file goes in the board's memory (hex); none for the ELF, which says itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_address: Option<String>,
    /// The region reserved for it, when larger than the file (the config region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_size: Option<u32>,
}

impl FileEntry {
    pub fn new(name: &str, bytes: &[u8], load_address: Option<u32>) -> FileEntry {
        let sha256 = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        FileEntry {
            name: name.into(),
            size: bytes.len() as u64,
            sha256,
            load_address: load_address.map(|a| format!("{a:#010x}")),
            region_size: None,
        }
    }
}

/// The config as an operator reads it. The token shows only where it enrolls.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct ConfigSummary {
    pub ip: String,
    pub gateway: Option<String>,
    /// `pool FIRST-LAST` or `proxy`.
    pub dhcp: String,
    pub lease_time: u32,
    pub mac: String,
    /// The provider the token enrolls with (`host:port`), if the image has a token.
    pub token_provider: Option<String>,
}

impl ConfigSummary {
    pub fn new(c: &BoardConfig) -> ConfigSummary {
        ConfigSummary {
            ip: format!("{}/{}", c.ip, c.prefix),
            gateway: c.gateway.map(|g| g.to_string()),
            dhcp: match c.dhcp {
                DhcpMode::Pool { first, last } => format!("pool {first}-{last}"),
                DhcpMode::Proxy => "proxy".into(),
            },
            lease_time: c.lease_secs,
            mac: MacAddr(c.mac).to_string(),
            token_provider: c
                .token
                .as_deref()
                .and_then(|t| EnrollmentToken::parse(t).ok())
                .map(|t| t.addr.to_string()),
        }
    }
}

impl Manifest {
    pub fn file(&self, name: &str) -> Result<&FileEntry, String> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("{FILE} lists no {name}"))
    }

    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e} (not an image directory?)", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let path = dir.join(FILE);
        let mut text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
