//! A home-made stand-in test BMC for IPMI v2.0 over LAN (RMCP+), because no real peer we can run implements cipher suite 17 (HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128); it is proven against ipmitool (tests/tests/test_bmc_ipmitool.rs). The BMC itself is the `sim-bmc` crate (host-sim/sim-bmc); this is its loopback UDP front.
//!
//! ```text
//! test-bmc --listen 127.0.0.1:PORT --user admin --password password [--suites 3,17] [--state-file FILE]
//! ```
//! Loopback UDP only. Prints `ready` on stdout once bound, then one line per handshake step and
//! per command on stderr (never the password). Cipher suites 3 and 17 can be offered (default
//! 17). Power state and boot flags live in memory and, with `--state-file`, in a text file.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sim_bmc::{Bmc, Chassis, Suite, User};

/// The BMC's (and system's) GUID 7b5e1711-6c0a-4d4f-9b3e-7e57b3c00017 in IPMI byte order
/// (§20.8: least significant byte first, i.e. the RFC 4122 bytes reversed).
const GUID: [u8; 16] = [
    0x17, 0x00, 0xc0, 0xb3, 0x57, 0x7e, 0x3e, 0x9b, 0x4f, 0x4d, 0x0a, 0x6c, 0x11, 0x17, 0x5e, 0x7b,
];

struct Args {
    listen: SocketAddr,
    user: String,
    password: String,
    suites: Vec<Suite>,
    state_file: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut listen, mut user, mut password, mut suites, mut state_file) =
        (None, None, None, Vec::new(), None);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                listen = Some(
                    value()?
                        .parse::<SocketAddr>()
                        .map_err(|e| format!("--listen: {e}"))?,
                )
            }
            "--user" => user = Some(value()?),
            "--password" => password = Some(value()?),
            "--suites" => {
                for id in value()?.split(',') {
                    let suite = id.trim().parse().ok().and_then(Suite::by_id);
                    suites.push(suite.ok_or(format!("--suites: {id} is not 3 or 17"))?);
                }
            }
            "--state-file" => state_file = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    if !listen.ip().is_loopback() || !listen.is_ipv4() {
        return Err(format!("--listen {listen}: only IPv4 loopback addresses"));
    }
    let user = user.ok_or("--user is required")?;
    let password = password.ok_or("--password is required")?;
    if user.is_empty() || user.len() > 16 || password.len() > 20 {
        return Err("user name: 1-16 bytes; password: at most 20 bytes".into());
    }
    if suites.is_empty() {
        suites.extend(Suite::by_id(17));
    }
    suites.dedup();
    Ok(Args {
        listen,
        user,
        password,
        suites,
        state_file,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "test-bmc: {e}\nusage: test-bmc --listen 127.0.0.1:PORT --user NAME --password PASS [--suites 3,17] [--state-file FILE]"
            );
            return ExitCode::from(2);
        }
    };
    let socket = match UdpSocket::bind(args.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("test-bmc: bind {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    // Wake up now and then to expire idle sessions.
    if let Err(e) = socket.set_read_timeout(Some(Duration::from_secs(1))) {
        eprintln!("test-bmc: {e}");
        return ExitCode::FAILURE;
    }
    let ids: Vec<String> = args.suites.iter().map(|s| s.id.to_string()).collect();
    eprintln!(
        "test-bmc listening on {} user={} suites={}",
        args.listen,
        args.user,
        ids.join(",")
    );
    let user = User {
        name: args.user.into_bytes(),
        password: args.password.into_bytes(),
    };
    let mut bmc = Bmc::new(user, args.suites, GUID, Chassis::new(args.state_file));
    println!("ready");
    let _ = std::io::stdout().flush();

    let mut buf = [0u8; 2048];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((len, peer)) => {
                if let Some(reply) = bmc.handle(&buf[..len], peer, Instant::now())
                    && let Err(e) = socket.send_to(&reply, peer)
                {
                    eprintln!("send to {peer}: {e}");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                eprintln!("test-bmc: recv: {e}");
                return ExitCode::FAILURE;
            }
        }
        bmc.expire(Instant::now());
    }
}
