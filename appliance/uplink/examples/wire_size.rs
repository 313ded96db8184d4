//! Bytes on the wire per message: a postcard frame (2-byte length + body) against the same
//! message as one line of JSON (serde_json of the same types, plus the newline that delimits
//! it). Prints a Markdown table: `cargo run -p uplink --example wire_size`.

use heapless::String;
use uplink::frame::{self, HEADER, MAX_FRAME};
use uplink::*;

fn s<const N: usize>(text: &str) -> String<N> {
    String::try_from(text).unwrap_or_default()
}

fn row<T: serde::Serialize>(name: &str, msg: &T) {
    let mut buf = [0u8; HEADER + MAX_FRAME];
    let postcard = frame::encode(msg, &mut buf).unwrap_or(0);
    let json = serde_json::to_vec(msg).map_or(0, |v| v.len() + 1);
    println!(
        "| {name} | {postcard} | {json} | {:.1}x |",
        json as f64 / postcard as f64
    );
}

fn main() {
    // Mid-life values: a machine seen a while ago, sequence numbers in the tens of thousands.
    let mac = Mac([0x52, 0x54, 0x00, 0xaa, 0x01, 0x2f]);
    let uuid = Uuid([
        0x4c, 0x4c, 0x45, 0x44, 0x00, 0x4d, 0x31, 0x10, 0x80, 0x4b, 0xb5, 0xc0, 0x4f, 0x51, 0x34,
        0x32,
    ]);
    let now = 1_764_000_000;
    let event = |seq, event| ToProvider::Event(Sequenced { seq, event });
    println!("| message | postcard, framed (bytes) | JSON line (bytes) | JSON / postcard |");
    println!("|---|---:|---:|---:|");
    row(
        "PowerState (machine by UUID)",
        &event(
            48_213,
            Event::PowerState(PowerState {
                machine: MachineId::Uuid(uuid),
                state: Power::On,
                at: now,
            }),
        ),
    );
    row(
        "MachineSeen (MAC, UUID, arch)",
        &event(
            48_214,
            Event::MachineSeen(MachineSeen {
                mac,
                uuid: Some(uuid),
                arch: Some(7),
                first_seen: now - 86_400,
                last_seen: now,
            }),
        ),
    );
    row(
        "Lease",
        &event(
            48_215,
            Event::Lease(Lease {
                mac,
                ip: Ipv4([10, 77, 0, 142]),
                expires: now + 3600,
            }),
        ),
    );
    row(
        "BootServed (iPXE script URL)",
        &event(
            48_216,
            Event::BootServed(BootServed {
                mac,
                what: Served::Script(s("http://10.77.0.1/boot.ipxe")),
                at: now,
            }),
        ),
    );
    row(
        "SetBootTarget (Install, Image Factory URL)",
        &ToAppliance::Command {
            id: 9_120,
            command: Command::SetBootTarget {
                machine: MachineId::Uuid(uuid),
                target: BootTarget::Install {
                    url: s(
                        "https://pxe.factory.talos.dev/pxe/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.10.0/metal-amd64",
                    ),
                    kernel_args: s("console=ttyS0,115200"),
                },
            },
        },
    );
    row(
        "SetBootTarget (Disk)",
        &ToAppliance::Command {
            id: 9_121,
            command: Command::SetBootTarget {
                machine: MachineId::Uuid(uuid),
                target: BootTarget::Disk,
            },
        },
    );
    row(
        "ConfigUpdate (agent URL, join config)",
        &ToAppliance::Command {
            id: 9_122,
            command: Command::ConfigUpdate(Config {
                agent_url: s(
                    "https://pxe.factory.talos.dev/pxe/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.10.0/metal-amd64",
                ),
                power_poll_secs: 30,
                min_on_before_off_secs: 900,
                // Omni's three join documents with a signed v1 join token.
                join_config: s(include_str!("join-config.yaml")),
            }),
        },
    );
    row("Ack", &ToAppliance::Ack { upto: 48_216 });
}
