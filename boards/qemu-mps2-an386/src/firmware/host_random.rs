//! QEMU/TEST-ONLY randomness: this board has no RNG, so TLS and the device key draw from the
//! host's `/dev/urandom` over semihosting (SYS_OPEN/READ). A real board uses its TRNG.

use semihosting::fs::File;
use semihosting::io::Read;
use uplink_tls::{Entropy, EntropyError};

const PATH: &core::ffi::CStr = c"/dev/urandom";

/// The host's entropy, opened for each draw (a handful per connection).
pub struct HostRandom;

impl Entropy for HostRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        let mut file = File::open(PATH).map_err(|_| EntropyError)?;
        file.read_exact(buf).map_err(|_| EntropyError)
    }
}
