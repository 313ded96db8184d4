//! What the uplink keeps in `<state-dir>/uplink/`: the identity enrollment gave (key,
//! certificate, CA, appliance id, provider address), the command filter and the outbox
//! (`outbox_store`). Each file is written whole to a temporary name, synced and renamed; the
//! `identity` file goes last, so its presence means the rest is complete. The key is 0600.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uplink::CommandFilter;
use uplink_tls::{Entropy, EntropyError, KeyPair, Random, TimeProvider, UnixTime};

/// The OS RNG for keys, handshakes and the kx group (rustls wants it `'static`).
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(buf).map_err(|_| EntropyError)
    }
}

pub static RANDOM: Random<OsEntropy> = Random(OsEntropy);

/// Certificate validity is checked against the system clock.
#[derive(Debug)]
pub struct SystemClock;

impl TimeProvider for SystemClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::now())
    }
}

pub fn clock() -> Arc<dyn TimeProvider> {
    Arc::new(SystemClock)
}

/// An enrolled appliance.
pub struct Identity {
    pub appliance_id: String,
    /// `host:port` of the provider, from the token.
    pub addr: String,
    pub ca_sha256: [u8; 32],
    pub key: KeyPair,
    pub certificate: Vec<u8>,
    pub ca: Vec<u8>,
}

pub struct StateDir(PathBuf);

impl StateDir {
    pub fn new(state_dir: &Path) -> StateDir {
        StateDir(state_dir.join("uplink"))
    }

    /// The stored identity; `Ok(None)` before enrollment.
    pub fn load(&self) -> io::Result<Option<Identity>> {
        let text = match fs::read_to_string(self.0.join("identity")) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("identity: no {name}")))
        };
        let key: [u8; 32] = fs::read(self.0.join("key"))?
            .try_into()
            .map_err(|_| invalid("key: not 32 bytes"))?;
        Ok(Some(Identity {
            appliance_id: field("appliance")?,
            addr: field("provider")?,
            ca_sha256: parse_hex(&field("ca_sha256")?).ok_or_else(|| invalid("ca_sha256"))?,
            key: KeyPair::from_bytes(&key).ok_or_else(|| invalid("key: not a P-256 scalar"))?,
            certificate: fs::read(self.0.join("cert.der"))?,
            ca: fs::read(self.0.join("ca.der"))?,
        }))
    }

    pub fn store(&self, id: &Identity) -> io::Result<()> {
        fs::create_dir_all(&self.0)?;
        self.write("key", &id.key.to_bytes(), 0o600)?;
        self.write("cert.der", &id.certificate, 0o644)?;
        self.write("ca.der", &id.ca, 0o644)?;
        let hex: String = id.ca_sha256.iter().map(|b| format!("{b:02x}")).collect();
        let text = format!(
            "appliance={}\nprovider={}\nca_sha256={hex}\n",
            id.appliance_id, id.addr
        );
        self.write("identity", text.as_bytes(), 0o644)
    }

    /// The command filter persisted before each command runs (a new one if none).
    pub fn load_filter(&self) -> io::Result<CommandFilter> {
        match fs::read(self.0.join("commands")) {
            Ok(bytes) => {
                postcard::from_bytes(&bytes).map_err(|e| invalid(format!("commands: {e}")))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CommandFilter::default()),
            Err(e) => Err(e),
        }
    }

    pub fn store_filter(&self, filter: &CommandFilter) -> io::Result<()> {
        let mut buf = [0u8; 32];
        let bytes = postcard::to_slice(filter, &mut buf).map_err(io::Error::other)?;
        self.write("commands", bytes, 0o644)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub(super) fn write(&self, name: &str, contents: &[u8], mode: u32) -> io::Result<()> {
        let tmp = self.0.join(format!(".{name}.tmp"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, self.0.join(name))?;
        fs::File::open(&self.0)?.sync_all()
    }
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    (s.len() == 64).then_some(())?;
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

pub(super) fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}
