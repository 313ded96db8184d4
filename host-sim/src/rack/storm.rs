//! `rack --boot-only`: every machine PXE-boots once, in virtual time, and the summary
//! checks each got what its firmware needs, byte for byte.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant as WallClock;

use super::dhcp_client::Firmware;
use super::machine::Machine;
use super::{APPLIANCE, Digest, Rack, RackArgs, Rng, boot_files};

/// Virtual time after which a machine that has not booted counts as failed.
const DEADLINE_MS: u64 = 600_000;
/// Virtual start: 2026-01-01, so lease expiry arithmetic is realistic.
const EPOCH_MS: u64 = 1_767_225_600_000;

pub fn run(args: &RackArgs) -> Result<(), String> {
    let wall = WallClock::now();
    let mut rng = Rng(args.seed.max(1));
    let files = boot_files(args.kernel_kib * 1024, args.boot_dir.as_deref())?;
    let expected = digests(files);
    let mut rack = Rack::new(args, &mut rng, files, EPOCH_MS)?;
    let total = rack.machines.len();
    let mut done = 0;
    let mut last_progress = 0;
    let mut now = EPOCH_MS;
    for _ in 0..50_000_000u64 {
        if done == total || now > EPOCH_MS + DEADLINE_MS {
            break;
        }
        now = now.max(rack.next_wake());
        rack.step(now)?;
        done += rack.settled.len();
        if done * 10 / total.max(1) > last_progress {
            last_progress = done * 10 / total;
            eprintln!(
                "rack: {done}/{total} machines through (virtual t={} ms)",
                now - EPOCH_MS
            );
        }
    }
    let (sent, lost) = {
        let s = rack.segment.borrow();
        (s.sent, s.lost)
    };
    let acks = rack.runtime.dhcp().stats().acks;
    let failures = report(&rack.machines, &expected, acks, wall);
    println!("segment: {sent} frames sent, {lost} lost");
    match failures {
        0 => Ok(()),
        n => Err(format!("{n} machines did not boot as expected")),
    }
}

/// Size and digest of each boot file, by name.
pub fn digests(files: &[(&'static str, &[u8])]) -> HashMap<&'static str, (usize, Digest)> {
    files
        .iter()
        .map(|(name, data)| (*name, (data.len(), Digest::of(data))))
        .collect()
}

fn expected_firmware_file(f: Firmware) -> &'static str {
    match f {
        Firmware::Bios => "undionly.kpxe",
        Firmware::UefiX64 => "ipxe.efi",
        Firmware::UefiArm64 => "ipxe-arm64.efi",
    }
}

/// Whether the machine's last boot got its firmware's iPXE binary, the appliance's script,
/// and the kernel and initrd, all byte-exact.
pub fn boot_intact(m: &Machine, expected: &HashMap<&str, (usize, Digest)>) -> bool {
    let script = format!("http://{APPLIANCE}/boot.ipxe");
    let tftp_ok = m.tftp.as_ref().is_some_and(|(name, digest)| {
        name == expected_firmware_file(m.firmware)
            && expected
                .get(name.as_str())
                .is_some_and(|(_, d)| d == digest)
    });
    let http_ok = ["/boot.ipxe", "/vmlinuz", "/initrd.img"].iter().all(|p| {
        m.http.iter().any(|(path, len, digest)| {
            path == p
                && (p.ends_with(".ipxe")
                    || expected
                        .get(&p[1..])
                        .is_some_and(|(l, d)| l == len && d == digest))
        })
    });
    tftp_ok && http_ok && m.script.as_deref() == Some(script.as_str())
}

/// Checks every machine got what its firmware needs, byte-exact, and prints the summary;
/// returns how many machines failed.
fn report(
    machines: &[Machine],
    expected: &HashMap<&str, (usize, Digest)>,
    acks: u32,
    wall: WallClock,
) -> usize {
    let script = format!("http://{APPLIANCE}/boot.ipxe");
    let mut rows: BTreeMap<Firmware, (usize, usize, u32)> = BTreeMap::new();
    let mut failures = 0;
    for m in machines {
        let ok = m.booted_at.is_some() && boot_intact(m, expected);
        let row = rows.entry(m.firmware).or_default();
        row.0 += 1;
        row.2 += m.retries;
        if ok {
            row.1 += 1;
        } else {
            failures += 1;
            eprintln!(
                "rack: machine {} ({}) failed: {} (firmware file {:?}, script {:?}, fetched {:?})",
                m.mac,
                m.firmware.name(),
                m.failure().unwrap_or("did not finish"),
                m.firmware_file,
                m.script,
                m.http.iter().map(|(p, l, _)| (p, l)).collect::<Vec<_>>()
            );
        }
    }
    println!(
        "{:<12} {:>8} {:>8} {:>8}  {:<16} then",
        "firmware", "machines", "booted", "retries", "first stage"
    );
    for (f, (n, ok, retries)) in &rows {
        println!(
            "{:<12} {n:>8} {ok:>8} {retries:>8}  {:<16} {script} -> vmlinuz, initrd.img",
            f.name(),
            expected_firmware_file(*f)
        );
    }
    let mut times: Vec<u64> = machines
        .iter()
        .filter_map(|m| Some(m.booted_at? - m.powered_on))
        .collect();
    times.sort_unstable();
    let addresses: Vec<_> = machines.iter().filter_map(|m| m.ip).collect();
    let distinct: HashSet<_> = addresses.iter().collect();
    println!(
        "booted {}/{}; distinct addresses {}/{}; DHCP ACKs {acks}",
        machines.len() - failures,
        machines.len(),
        distinct.len(),
        addresses.len()
    );
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        println!(
            "time to boot (virtual): min {min} ms, median {} ms, max {max} ms; wall time {} ms",
            times[times.len() / 2],
            wall.elapsed().as_millis()
        );
    }
    failures + (addresses.len() - distinct.len())
}
