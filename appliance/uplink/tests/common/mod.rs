//! Sample messages shared by the tests: one of every variant, and the largest possible.
#![allow(dead_code)] // each test binary uses a part

use heapless::String;
use uplink::*;

pub fn s<const N: usize>(text: &str) -> String<N> {
    String::try_from(text).unwrap()
}

/// A string of exactly `N` bytes.
pub fn full<const N: usize>() -> String<N> {
    let mut out = String::new();
    while out.push('x').is_ok() {}
    out
}

pub const MAC: Mac = Mac([0x52, 0x54, 0, 0xaa, 0, 1]);
pub const UUID: Uuid = Uuid([0x11; 16]);
/// The longest machine id on the wire.
pub const BY_UUID: MachineId = MachineId::Uuid(UUID);

pub fn hello() -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        appliance_id: s("rack-07.dc1"),
        firmware_version: s("0.1.0"),
        capabilities: Capabilities(Capabilities::DHCP_SERVER | Capabilities::IPMI),
        command_window: 8,
        boot_id: 1,
    }
}

pub fn events() -> Vec<Event> {
    vec![
        Event::MachineSeen(MachineSeen {
            mac: MAC,
            uuid: Some(UUID),
            arch: Some(7),
            first_seen: 1_760_000_000,
            last_seen: 1_760_000_042,
        }),
        Event::Lease(Lease {
            mac: MAC,
            ip: Ipv4([10, 77, 0, 100]),
            expires: 1_760_003_600,
        }),
        Event::BootServed(BootServed {
            mac: MAC,
            what: Served::TftpFile(s("ipxe.efi")),
            at: 1_760_000_001,
        }),
        Event::BootServed(BootServed {
            mac: MAC,
            what: Served::Script(s("http://10.77.0.1/boot.ipxe")),
            at: 1_760_000_002,
        }),
        Event::BootServed(BootServed {
            mac: MAC,
            what: Served::KernelUrl(s("http://10.77.0.1/vmlinuz")),
            at: 1_760_000_003,
        }),
        Event::PowerState(PowerState {
            machine: BY_UUID,
            state: Power::On,
            at: 1_760_000_004,
        }),
        Event::CommandResult(CommandResult {
            command_id: 9,
            outcome: Outcome::Done,
        }),
        Event::CommandResult(CommandResult {
            command_id: 10,
            outcome: Outcome::Failed(s("BMC timeout")),
        }),
        Event::CommandResult(CommandResult {
            command_id: 11,
            outcome: Outcome::Interrupted,
        }),
    ]
}

pub fn credentials(endpoint: BmcEndpoint) -> BmcCredentials {
    BmcCredentials {
        machine: MachineId::Mac(MAC),
        endpoint,
        user: s("admin"),
        password: Secret(s("hunter2-very-secret")),
    }
}

pub fn commands() -> Vec<Command> {
    let targets = [
        BootTarget::Agent { wipe_id: None },
        BootTarget::Agent {
            wipe_id: Some(s("wipe-3f2a")),
        },
        BootTarget::Install {
            url: s(
                "https://pxe.factory.talos.dev/pxe/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.10.0/metal-amd64",
            ),
            kernel_args: s("console=ttyS0"),
        },
        BootTarget::Disk,
        BootTarget::Script(s("https://example.net/custom.ipxe")),
        BootTarget::Url(s("http://10.77.0.1/uki.efi")),
    ];
    let mut out: Vec<Command> = targets
        .into_iter()
        .map(|target| Command::SetBootTarget {
            machine: BY_UUID,
            target,
        })
        .collect();
    for (action, pxe_once) in [
        (PowerAction::On, Some(BootMode::Efi)),
        (PowerAction::Off, None),
        (PowerAction::SoftOff, None),
        (PowerAction::Cycle, Some(BootMode::Legacy)),
        (PowerAction::Reset, None),
    ] {
        out.push(Command::PowerCommand {
            machine: BY_UUID,
            action,
            pxe_once,
        });
    }
    out.push(Command::BmcCredentials(credentials(BmcEndpoint::Ipmi {
        ip: Ipv4([10, 77, 1, 5]),
        port: 623,
    })));
    out.push(Command::BmcCredentials(credentials(BmcEndpoint::Redfish {
        url: s("https://10.77.1.6/redfish/v1"),
        cert_sha256: Some([0xab; 32]),
    })));
    out.push(Command::ConfigUpdate(Config {
        agent_url: s("http://10.77.0.1/agent.ipxe"),
        power_poll_secs: 30,
        min_on_before_off_secs: 900,
        join_config: s("apiVersion: v1alpha1\nkind: SideroLinkConfig\napiUrl: https://omni.example:8090?jointoken=t\n"),
    }));
    out
}

pub fn to_provider() -> Vec<ToProvider> {
    let mut out = vec![ToProvider::Hello(hello()), ToProvider::Pong(7)];
    for (i, event) in events().into_iter().enumerate() {
        out.push(ToProvider::Event(Sequenced {
            seq: 1 + i as u64 * 1000,
            event,
        }));
    }
    out
}

pub fn to_appliance() -> Vec<ToAppliance> {
    let mut out = vec![
        ToAppliance::Welcome(Welcome {
            protocol: 1,
            last_acked_seq: 41,
            time: 1_760_000_000,
        }),
        ToAppliance::Refused(Refusal::Version { min: 2, max: 3 }),
        ToAppliance::Ack { upto: u64::MAX },
        ToAppliance::Ping(0),
    ];
    for (i, command) in commands().into_iter().enumerate() {
        out.push(ToAppliance::Command {
            id: u64::MAX - i as u64,
            command,
        });
    }
    out
}

/// The largest messages this crate can build: every string at its capacity.
pub fn largest() -> (Vec<ToProvider>, Vec<ToAppliance>) {
    let up = vec![
        ToProvider::Hello(Hello {
            protocol: u16::MAX,
            appliance_id: full(),
            firmware_version: full(),
            capabilities: Capabilities(u32::MAX),
            command_window: u16::MAX,
            boot_id: u64::MAX,
        }),
        ToProvider::Event(Sequenced {
            seq: u64::MAX,
            event: Event::BootServed(BootServed {
                mac: MAC,
                what: Served::KernelUrl(full()),
                at: u64::MAX,
            }),
        }),
        ToProvider::Event(Sequenced {
            seq: u64::MAX,
            event: Event::CommandResult(CommandResult {
                command_id: u64::MAX,
                outcome: Outcome::Failed(full()),
            }),
        }),
    ];
    let command = |command| ToAppliance::Command {
        id: u64::MAX,
        command,
    };
    let down = vec![
        command(Command::SetBootTarget {
            machine: BY_UUID,
            target: BootTarget::Install {
                url: full(),
                kernel_args: full(),
            },
        }),
        command(Command::BmcCredentials(BmcCredentials {
            machine: BY_UUID,
            endpoint: BmcEndpoint::Redfish {
                url: full(),
                cert_sha256: Some([0xff; 32]),
            },
            user: full(),
            password: Secret(full()),
        })),
        command(Command::ConfigUpdate(Config {
            agent_url: full(),
            power_poll_secs: u16::MAX,
            min_on_before_off_secs: u32::MAX,
            join_config: full(),
        })),
    ];
    (up, down)
}
