//! The QEMU board's uplink against the real provider: `images build --token` puts a fresh
//! token in the config region, the firmware enrolls over its own stack (key made on the
//! board, CA pinned by the token), dials the mTLS tunnel, and the provider lists the
//! appliance as connected and, after a dhclient run against the board, the machine; after a
//! reboot the board reconnects with its stored identity, and again after a provider restart.
//! The provider's join config (`serve --join-config`) reaches the board in its
//! `ConfigUpdate`, and curl, as Talos would, fetches it byte-exact at `/config?u=UUID`; a
//! boot target the provider sets for the machine is in the board's script for its MAC.

use std::time::Duration;

use e2e::curl;
use e2e::dhclient::Dhclient;
use e2e::firmware::{self, Board};
use e2e::provider::{PROVIDER_IP, Provider, enrolled_id};
use e2e::wait::poll_until;
use e2e::{APPLIANCE_IP, Rack, Workdir, require_tool};

const BOOT: Duration = Duration::from_secs(20);
/// Key generation and two handshakes in emulated Cortex-M4 code.
const UPLINK: Duration = Duration::from_secs(60);
const BIND: Duration = Duration::from_secs(30);
/// Omni's three join documents with a signed join token, as an admin downloads them.
const JOIN_CONFIG: &str = include_str!("../../appliance/uplink/examples/join-config.yaml");

#[test]
fn enrolls_connects_and_reports_a_machine() {
    let Some(elf) = firmware::uplink_elf_for_test() else {
        return;
    };
    require_tool("curl", "curl");
    let wd = Workdir::new("fw-uplink");
    let rack = Rack::new("fw-uplink");
    let join_config = wd.file("join-config.yaml");
    std::fs::write(&join_config, JOIN_CONFIG).unwrap();
    let join_config = join_config.to_str().unwrap().to_owned();
    let extra = ["--join-config", join_config.as_str()];
    let mut provider = Provider::start_with(&rack, &wd, PROVIDER_IP, &extra);
    let token = provider.token();

    let image = firmware::build_image(&wd, &elf, "10.77.0.100-10.77.0.149", &["--token", &token]);

    let mut board = Board::boot_image(&rack, &wd, &image, "fwu0");
    board
        .wait_line("the token in the config", BOOT, |l| {
            l.contains("token=present")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let enrolled = board
        .wait_line("enrollment", UPLINK, |l| {
            l.contains("uplink enrolled appliance=")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let appliance = enrolled_id(&enrolled);
    let connected = board
        .wait_line("the tunnel", UPLINK, |l| l.contains("uplink connected"))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{enrolled}\n{connected}");
    poll_until("the appliance connected at the provider", UPLINK, || {
        let json = provider
            .cli(&["appliances", "--json"])
            .replace([' ', '\n'], "");
        let connected =
            json.contains(&format!("\"id\":{appliance},")) && json.contains("\"connected\":true");
        Ok(connected.then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", provider.cli(&["appliances", "--json"])));
    serves_the_join_config(&rack, &board);

    let mac = "52:54:00:77:05:01";
    let ns = rack.host("c1", Some(mac), &[]);
    let mut client = Dhclient::new(&ns, &wd, "c1");
    client.start();
    client.wait_event(0, &["BOUND"], BIND);
    poll_until(&format!("{mac} in provider machines"), UPLINK, || {
        Ok(provider.has_machine(&appliance, mac).then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}\n--- firmware log:\n{}",
            provider.cli(&["machines", "--json"]),
            board.lines().join("\n")
        )
    });
    // The provider steers it: the board's script for its MAC now chains the URL.
    let url = "http://10.77.0.3/custom.ipxe";
    provider.cli(&["boot", mac, url]);
    // The lifecycle may set the machine's discovery target first: polled until it is the URL,
    // a second apart (the board has two HTTP sockets, each held until it sees the client's
    // FIN, up to 200 ms; a SYN while both are taken is reset).
    let script_url = format!("http://{APPLIANCE_IP}/boot.ipxe?mac={mac}");
    let fetch = |url: &str| {
        std::thread::sleep(Duration::from_secs(1));
        curl::get(&ns, url)
    };
    let mut script = String::new();
    poll_until("the board's script chaining the URL", UPLINK, || {
        let (code, body) = fetch(&script_url);
        assert_eq!(code, "200", "{body}");
        script = body;
        Ok(script.contains(&format!("chain {url}")).then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{script}\n--- firmware log:\n{}",
            board.lines().join("\n")
        )
    });
    let (_, default) = fetch(&format!("http://{APPLIANCE_IP}/boot.ipxe"));
    eprintln!("the board's script for {mac}:\n{script}");
    assert!(
        !default.contains(url),
        "a request naming no machine: {default}"
    );
    for line in board.lines().iter().filter(|l| l.contains("uplink")) {
        eprintln!("{line}");
    }
    drop(client);

    // A reboot keeps the identity (the board's store, a host file in QEMU): it reconnects as
    // the same appliance without enrolling again (the token is spent).
    drop(board);
    let mut board = Board::boot_image(&rack, &wd, &image, "fwu1");
    let again = board
        .wait_line("the stored identity", UPLINK, |l| {
            l.contains("uplink enrolled already appliance=")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(enrolled_id(&again), appliance, "{again}");
    let connected = board
        .wait_line("the tunnel after the reboot", UPLINK, |l| {
            l.contains("uplink connected")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{again}\n{connected}");
    let json = provider
        .cli(&["appliances", "--json"])
        .replace([' ', '\n'], "");
    assert_eq!(json.matches("\"id\":").count(), 1, "one appliance: {json}");

    // The provider restarts: the board notices, backs off and dials again.
    let before = board.lines().len();
    provider.kill();
    provider.restart();
    poll_until("the tunnel after a provider restart", UPLINK, || {
        let lines = board.lines();
        let again = lines[before.min(lines.len())..]
            .iter()
            .any(|l| l.contains("uplink connected"));
        Ok(again.then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n--- firmware log:\n{}", board.lines().join("\n")));
}

/// Once the board ran the provider's `ConfigUpdate`, curl from a namespace on the segment
/// gets the join config at `/config?u=UUID` byte-exact, and 400 without a UUID.
fn serves_the_join_config(rack: &Rack, board: &Board) {
    let done = wait_done(board, "ConfigUpdate");
    let client = rack.host("talos", None, &["10.77.0.60/24"]);
    curl::check_join_config(&client, APPLIANCE_IP, JOIN_CONFIG);
    let lines = board.lines();
    let served: Vec<&str> = (lines.iter().map(String::as_str))
        .filter(|l| l.contains("/config"))
        .collect();
    eprintln!("{done}\n{}", served.join("\n"));
    assert!(
        (served.iter()).any(|l| l.contains(&format!("GET /config?u={}", curl::UUID))),
        "{}",
        lines.join("\n")
    );
}

/// The board's first result of a `kind` command, which must be Done.
fn wait_done(board: &Board, kind: &str) -> String {
    let want = format!(" {kind} -> ");
    let done = poll_until(&format!("a {kind} result on the board"), UPLINK, || {
        let lines = board.lines();
        Ok((lines.iter())
            .find(|l| l.contains("power command id=") && l.contains(&want))
            .cloned())
    })
    .unwrap_or_else(|e| panic!("{e}\n--- firmware log:\n{}", board.lines().join("\n")));
    assert!(done.ends_with("-> Done"), "{done}");
    done
}

/// The number after `key=` in a firmware log line.
fn field(line: &str, key: &str) -> u64 {
    let rest = line.split(&format!("{key}=")).nth(1).unwrap_or_default();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no {key} in {line}"))
}

/// Events the board queues while the provider is down outlive a reboot of the board (its
/// outbox and command filter on flash, a host file under NOR rules in QEMU) and reach the
/// provider exactly once when it is back.
#[test]
fn events_queued_while_the_provider_is_down_survive_a_reboot() {
    let Some(elf) = firmware::uplink_elf_for_test() else {
        return;
    };
    let wd = Workdir::new("fw-outbox");
    let rack = Rack::new("fw-outbox");
    let mut provider = Provider::start(&rack, &wd);
    let token = provider.token();
    let image = firmware::build_image(&wd, &elf, "10.77.0.100-10.77.0.149", &["--token", &token]);
    let mut board = Board::boot_image(&rack, &wd, &image, "fwo0");
    let appliance = board.wait_enrolled_and_connected(UPLINK);

    // The provider is down while a machine takes a lease: its sighting and lease wait in the
    // board's outbox, which is stored before anything of it is sent.
    provider.kill();
    let before = board.lines().len();
    let mac = "52:54:00:77:05:02";
    let ns = rack.host("c2", Some(mac), &[]);
    let mut client = Dhclient::new(&ns, &wd, "c2");
    client.start();
    client.wait_event(0, &["BOUND"], BIND);
    let stored = poll_until("the events stored", UPLINK, || {
        let lines = board.lines();
        let queued = (lines.get(before..).unwrap_or_default().iter())
            .filter(|l| l.contains("uplink queued seq="))
            .count();
        let last = (lines.iter().rev()).find(|l| l.contains("uplink outbox stored events="));
        Ok(last
            .filter(|l| queued >= 2 && field(l, "events") >= 2)
            .cloned())
    })
    .unwrap_or_else(|e| panic!("{e}\n--- firmware log:\n{}", board.lines().join("\n")));
    let last_seq = (board.lines().iter())
        .filter(|l| l.contains("uplink queued seq="))
        .map(|l| field(l, "seq"))
        .max()
        .unwrap_or_default();
    drop(client);

    // A reboot (QEMU killed): the stored outbox comes back.
    drop(board);
    let mut board = Board::boot_image(&rack, &wd, &image, "fwo1");
    let restored = board
        .wait_line("the restored outbox", UPLINK, |l| {
            l.contains("uplink outbox restored events=")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{stored}\n{restored}");
    assert_eq!(field(&restored, "events"), field(&stored, "events"));

    // The provider is back: the events arrive, each once.
    provider.restart();
    board
        .wait_line("the tunnel after the reboot", UPLINK, |l| {
            l.contains("uplink connected")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // Each number up to the last applied once: as many applied as the last number (a lost
    // event leaves a gap, a twice-applied one a surplus), none refused.
    let applied = poll_until(&format!("{mac}'s events applied once"), UPLINK, || {
        let last = provider.appliance_count("last_applied_seq");
        let applied = provider.appliance_count("applied_events");
        let known = provider.has_machine(&appliance, mac);
        Ok((known && last >= last_seq && applied == last).then_some(applied))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", provider.cli(&["appliances", "--json"])));
    assert_eq!(provider.appliance_count("refused_events"), 0);
    eprintln!("events applied {applied}, last queued before the reboot {last_seq}");
    for l in board.lines().iter().filter(|l| l.contains("high_water")) {
        eprintln!("{l}");
    }
}
