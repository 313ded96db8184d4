use uplink::{BmcEndpoint, Ipv4, Mac, Uuid};

use super::*;
use crate::model::{Allocation, ApplianceId, ObservedPower};

/// The id Image Factory gave [`allocation`]'s schematic, as the factory task records it.
const INSTALL_ID: &str = "1d5e5c9b2a7e4f60b5f1a3c2d4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f809";

fn settings() -> Settings {
    let s = Settings::default();
    let yaml = install_schematic(&allocation(), &s).yaml();
    s.schematics.insert(yaml, INSTALL_ID.into());
    s
}

fn allocation() -> Allocation {
    Allocation {
        talos_version: "v1.9.0".into(),
        schematic: None,
        kernel_args: "console=ttyS0".into(),
        extensions: vec!["siderolabs/iscsi-tools".into()],
    }
}

fn bmc() -> BmcConfig {
    BmcConfig {
        endpoint: BmcEndpoint::Ipmi {
            ip: Ipv4([10, 0, 0, 9]),
            port: 623,
        },
        user: "admin".into(),
        password: "secret".into(),
    }
}

/// Pending, seen by UUID, with arch x86-64 UEFI.
fn pending() -> Machine {
    let mut m = Machine::new(
        ApplianceId(1),
        Mac([2, 0, 0, 0, 0, 1]),
        Some(Uuid([7; 16])),
        100,
    );
    m.arch = Some(7);
    m
}

/// Accepted, BMC configured and confirmed, wiped, target confirmed: a machine at rest.
fn ready() -> Machine {
    let mut m = pending();
    change(&mut m, Change::Accept, "w1");
    change(&mut m, Change::Bmc(bmc()), "-");
    m.wiped = m.wipe_id.clone();
    m.delivered.bmc_revision = 1;
    m.observed_power = ObservedPower::Off;
    m.delivered.boot = Some(boot(&m, &settings()).wire());
    m
}

fn change(m: &mut Machine, c: Change, fresh: &str) {
    apply_change(m, &c, fresh, &settings()).unwrap();
}

fn agent_with(wipe: Option<&str>) -> BootTarget {
    agent(wipe)
}

fn install_of(m: &Machine) -> BootTarget {
    install_target(m, &settings()).unwrap()
}

fn issues(m: &Machine) -> Vec<Issue> {
    next_commands(m, &plan(m, &settings()), Some(&bmc()), |_| false, 1000)
}

fn purposes(m: &Machine) -> Vec<Purpose> {
    issues(m).into_iter().map(|i| i.purpose).collect()
}

#[test]
fn boot_table() {
    let s = settings();
    let mut m = pending();
    assert_eq!(
        boot(&m, &s),
        Boot::Serve(agent_with(None)),
        "pending -> agent"
    );

    change(&mut m, Change::Accept, "w1");
    assert_eq!(
        boot(&m, &s),
        Boot::Serve(agent_with(Some("w1"))),
        "wipe due -> agent with wipe"
    );
    m.wiped = Some("w1".into());
    assert_eq!(
        boot(&m, &s),
        Boot::Serve(agent_with(None)),
        "no BMC -> agent"
    );
    change(&mut m, Change::Bmc(bmc()), "-");
    assert_eq!(
        boot(&m, &s),
        Boot::Serve(agent_with(None)),
        "unallocated -> agent"
    );

    change(&mut m, Change::Allocate(allocation()), "-");
    let want = format!("https://pxe.factory.talos.dev/pxe/{INSTALL_ID}/v1.9.0/metal-amd64");
    assert!(
        matches!(boot(&m, &s), Boot::Serve(BootTarget::Install { url, .. }) if url == want.as_str())
    );
    m.installed = true;
    assert_eq!(
        boot(&m, &s),
        Boot::Serve(BootTarget::Disk),
        "installed -> disk"
    );

    change(&mut m, Change::Cordon, "-");
    assert_eq!(boot(&m, &s), Boot::Refuse, "cordoned -> refuse");
    assert_eq!(Boot::Refuse.wire(), BootTarget::Disk);
    change(&mut m, Change::Uncordon, "-");
    change(&mut m, Change::Reject, "-");
    assert_eq!(
        boot(&m, &s),
        Boot::Serve(BootTarget::Disk),
        "rejected -> disk"
    );
}

#[test]
fn arm64_and_schematic_pick_the_factory_url() {
    let mut m = ready();
    m.arch = Some(11);
    let mut a = allocation();
    a.schematic = Some("abc".into());
    let refused = apply_change(&mut m, &Change::Allocate(a.clone()), "-", &settings());
    assert!(refused.unwrap_err().contains("carries its own"));
    a.kernel_args.clear();
    a.extensions.clear();
    change(&mut m, Change::Allocate(a), "-");
    let BootTarget::Install { url, kernel_args } = install_of(&m) else {
        panic!()
    };
    assert!(url.ends_with("/pxe/abc/v1.9.0/metal-arm64"), "{url}");
    assert_eq!(kernel_args, "");
}

#[test]
fn installs_wait_for_their_schematic_and_carry_no_kernel_args() {
    let mut s = Settings {
        join_args: crate::factory::join_kernel_args(80),
        ..Settings::default()
    };
    let mut m = ready();
    apply_change(&mut m, &Change::Allocate(allocation()), "-", &s).unwrap();
    m.wiped = m.wipe_id.clone();
    // Not created yet: the agent meanwhile, and the schematic is wanted.
    assert_eq!(
        boot(&m, &s),
        Boot::Serve(BootTarget::Agent { wipe_id: None })
    );
    let want = install_schematic(&allocation(), &s);
    assert_eq!(
        want.kernel_args,
        [
            "talos.config=http://${66:string}/config?u=${uuid}",
            "console=ttyS0"
        ]
    );
    assert_eq!(want.extensions, ["siderolabs/iscsi-tools"]);
    s.schematics.insert(want.yaml(), INSTALL_ID.into());
    let Boot::Serve(BootTarget::Install { url, kernel_args }) = boot(&m, &s) else {
        panic!("{:?}", boot(&m, &s))
    };
    assert_eq!(
        url.as_str(),
        format!("https://pxe.factory.talos.dev/pxe/{INSTALL_ID}/v1.9.0/metal-amd64")
    );
    assert!(kernel_args.is_empty());
    // The agent's URL follows its own schematic, once there, for the configured Talos.
    assert_eq!(agent_url(&s), None);
    s.agent_talos_version = Some("v1.10.0".into());
    assert_eq!(agent_url(&s), None);
    let agent = crate::factory::Schematic::agent(&s.join_args);
    s.schematics.insert(agent.yaml(), "a9".into());
    assert_eq!(
        agent_url(&s).unwrap().as_str(),
        "https://pxe.factory.talos.dev/pxe/a9/v1.10.0/metal-amd64"
    );
}

#[test]
fn overrides_win_over_all_but_cordon() {
    let s = settings();
    let mut m = pending();
    change(
        &mut m,
        Change::Boot {
            target: Some(BootOverride::Disk),
        },
        "-",
    );
    assert_eq!(boot(&m, &s), Boot::Serve(BootTarget::Disk));
    change(
        &mut m,
        Change::Boot {
            target: Some(BootOverride::Url("http://x/a.ipxe".into())),
        },
        "-",
    );
    assert!(matches!(boot(&m, &s), Boot::Serve(BootTarget::Script(_))));
    change(
        &mut m,
        Change::Boot {
            target: Some(BootOverride::Url("http://x/vmlinuz".into())),
        },
        "-",
    );
    assert!(matches!(boot(&m, &s), Boot::Serve(BootTarget::Url(_))));
    assert!(
        apply_change(
            &mut m,
            &Change::Boot {
                target: Some(BootOverride::Install)
            },
            "-",
            &s
        )
        .is_err()
    );
    change(&mut m, Change::Cordon, "-");
    assert_eq!(boot(&m, &s), Boot::Refuse);
    change(&mut m, Change::Uncordon, "-");
    change(&mut m, Change::Boot { target: None }, "-");
    assert_eq!(boot(&m, &s), Boot::Serve(agent_with(None)));
}

#[test]
fn allocate_needs_acceptance() {
    let mut m = pending();
    assert!(apply_change(&mut m, &Change::Allocate(allocation()), "-", &settings()).is_err());
}

#[test]
fn unmanaged_machines_get_no_power() {
    for m in [
        pending(),
        {
            let mut m = ready();
            m.cordoned = true;
            m
        },
        {
            let mut m = ready();
            m.bmc_revision = None;
            m
        },
    ] {
        let p = plan(&m, &settings());
        assert_eq!((p.power, p.one_off), (None, None), "{m:?}");
    }
}

#[test]
fn preferred_power_is_held() {
    let mut m = ready();
    assert_eq!(purposes(&m), vec![], "off and preferred off");
    change(
        &mut m,
        Change::Power {
            state: PreferredPower::On,
        },
        "-",
    );
    let i = issues(&m);
    assert_eq!(i.len(), 1);
    assert!(matches!(
        i[0].command,
        Command::PowerCommand {
            action: PowerAction::On,
            pxe_once: Some(BootMode::Efi),
            ..
        }
    ));
    resolve(
        &mut m,
        &i[0].purpose,
        i[0].into.clone(),
        &Outcome::Done,
        1000,
    );
    assert_eq!(
        purposes(&m),
        vec![],
        "tried once until the observed power changes"
    );
}

#[test]
fn bmc_then_boot_then_power() {
    let mut m = ready();
    m.delivered = Default::default();
    change(
        &mut m,
        Change::Power {
            state: PreferredPower::On,
        },
        "-",
    );
    let p = purposes(&m);
    assert!(
        matches!(
            p.as_slice(),
            [Purpose::Bmc { revision: 1 }, Purpose::Boot(_)]
        ),
        "{p:?}"
    );
    for i in issues(&m) {
        resolve(&mut m, &i.purpose, i.into, &Outcome::Done, 1000);
    }
    assert_eq!(purposes(&m), vec![Purpose::Power(PreferredPower::On)]);
}

#[test]
fn busy_kinds_wait() {
    let mut m = ready();
    m.delivered.boot = None;
    let p = plan(&m, &settings());
    assert!(next_commands(&m, &p, Some(&bmc()), |k| k == Kind::Boot, 1000).is_empty());
}

#[test]
fn reboot_request_cycles_once() {
    let mut m = ready();
    m.observed_power = ObservedPower::On;
    change(&mut m, Change::Reboot, "r1");
    let i = issues(&m);
    assert_eq!(i[0].purpose, Purpose::Reboot("r1".into()));
    assert!(matches!(
        i[0].command,
        Command::PowerCommand {
            action: PowerAction::Cycle,
            ..
        }
    ));
    resolve(
        &mut m,
        &i[0].purpose,
        i[0].into.clone(),
        &Outcome::Done,
        1000,
    );
    assert_eq!(m.last_reboot_id.as_deref(), Some("r1"));
    assert_eq!(purposes(&m), vec![Purpose::Power(PreferredPower::Off)]);
}

#[test]
fn power_off_request_goes_first() {
    let mut m = ready();
    m.power_off_request_id = Some("p1".into());
    change(&mut m, Change::Reboot, "r1");
    assert_eq!(purposes(&m), vec![Purpose::PowerOff("p1".into())]);
    let i = issues(&m);
    resolve(&mut m, &i[0].purpose, None, &Outcome::Done, 1000);
    assert_eq!(m.last_power_off_id.as_deref(), Some("p1"));
}

#[test]
fn allocation_installs_then_boots_disk() {
    let mut m = ready();
    m.observed_power = ObservedPower::On;
    change(&mut m, Change::Allocate(allocation()), "-");
    assert_eq!(purposes(&m), vec![Purpose::Boot(install_of(&m))]);
    let i = issues(&m);
    resolve(&mut m, &i[0].purpose, None, &Outcome::Done, 1000);
    // On (running the agent): cycle into the installer once.
    let i = issues(&m);
    assert_eq!(i[0].purpose, Purpose::CycleInto);
    resolve(
        &mut m,
        &i[0].purpose,
        i[0].into.clone(),
        &Outcome::Done,
        1000,
    );
    assert_eq!(purposes(&m), vec![]);
    let install = install_url(&m);
    for step in [
        tftp("ipxe.efi"),
        own_script(),
        Served::Script(url("http://x/other")),
    ] {
        boot_served(&mut m, &step, &Url::new());
        assert!(!m.installed, "{step:?} is not the install");
    }
    boot_served(&mut m, &Served::Script(install), &Url::new());
    assert!(m.installed);
    assert_eq!(m.install_event_id, 1);
    assert_eq!(purposes(&m), vec![Purpose::Boot(BootTarget::Disk)]);
}

#[test]
fn allocation_of_a_machine_that_is_off_powers_it_on_into_install() {
    let mut m = ready();
    change(&mut m, Change::Allocate(allocation()), "-");
    m.delivered.boot = Some(install_of(&m));
    let i = issues(&m);
    assert_eq!(i[0].purpose, Purpose::Power(PreferredPower::On));
    assert_eq!(i[0].into, Some(install_of(&m)));
    resolve(
        &mut m,
        &i[0].purpose,
        i[0].into.clone(),
        &Outcome::Done,
        1000,
    );
    m.observed_power = ObservedPower::On;
    m.delivered.power_attempt = None;
    assert_eq!(purposes(&m), vec![], "no second boot into the installer");
}

#[test]
fn deallocation_wipes_then_powers_off() {
    let mut m = ready();
    change(&mut m, Change::Allocate(allocation()), "-");
    m.installed = true;
    m.observed_power = ObservedPower::On;
    change(&mut m, Change::Deallocate, "w2");
    let target = agent_with(Some("w2"));
    assert_eq!(boot(&m, &settings()), Boot::Serve(target.clone()));
    assert_eq!(
        plan(&m, &settings()).power,
        Some(PreferredPower::On),
        "on while wiping"
    );
    m.delivered.boot = Some(target.clone());
    let i = issues(&m);
    assert_eq!(i[0].purpose, Purpose::CycleInto);
    resolve(
        &mut m,
        &i[0].purpose,
        i[0].into.clone(),
        &Outcome::Done,
        1000,
    );
    for step in [tftp("ipxe.efi"), own_script()] {
        boot_served(&mut m, &step, &Url::new());
        assert!(m.wipe_due(), "{step:?} is not the agent's boot");
    }
    boot_served(&mut m, &kernel(), &Url::new());
    assert_eq!(m.wiped.as_deref(), Some("w2"));
    let p = purposes(&m);
    assert_eq!(p, vec![Purpose::Boot(agent_with(None))]);
    m.delivered.boot = Some(agent_with(None));
    assert_eq!(purposes(&m), vec![Purpose::Power(PreferredPower::Off)]);
}

#[test]
fn failures_back_off_and_interruptions_reissue() {
    let mut m = ready();
    m.delivered.boot = None;
    let i = issues(&m);
    resolve(&mut m, &i[0].purpose, None, &Outcome::Interrupted, 1000);
    assert_eq!(issues(&m), i, "interrupted: issued again");
    resolve(
        &mut m,
        &i[0].purpose,
        None,
        &Outcome::Failed("bmc".try_into().unwrap()),
        1000,
    );
    assert!(issues(&m).is_empty(), "failed: not before the retry time");
    assert_eq!(m.last_error.as_deref(), Some("bmc"));
    let p = plan(&m, &settings());
    assert_eq!(
        next_commands(&m, &p, Some(&bmc()), |_| false, 1000 + RETRY_SECS).len(),
        1
    );
}

#[test]
fn legacy_bios_boots_legacy() {
    assert_eq!(boot_mode(Some(0)), BootMode::Legacy);
    assert_eq!(boot_mode(Some(7)), BootMode::Efi);
    assert_eq!(boot_mode(None), BootMode::Efi);
}

#[test]
fn after_an_appliance_restart_the_target_is_resent_but_earlier_boots_still_count() {
    let mut m = ready();
    change(&mut m, Change::Allocate(allocation()), "-");
    m.delivered.boot = Some(install_of(&m));
    m.delivered.cycled_into = Some(install_of(&m));
    m.delivered.stale = true;
    let install = install_of(&m);
    assert_eq!(
        purposes(&m),
        vec![Purpose::Boot(install.clone())],
        "resent before any power command"
    );
    let installer = Served::Script(install_url(&m));
    boot_served(&mut m, &installer, &Url::new());
    assert!(
        m.installed,
        "a boot from before the restart is read against it"
    );
    resolve(&mut m, &Purpose::Boot(install), None, &Outcome::Done, 1000);
    assert!(!m.delivered.stale);
}

fn url(s: &str) -> Url {
    s.try_into().unwrap()
}

fn tftp(name: &str) -> Served {
    Served::TftpFile(name.try_into().unwrap())
}

/// The appliance's own boot script, fetched on the way to every target.
fn own_script() -> Served {
    Served::Script(url("http://10.77.0.1/boot.ipxe?mac=02:00:00:00:00:01"))
}

/// The appliance's own agent kernel.
fn kernel() -> Served {
    Served::KernelUrl(url("http://10.77.0.1/vmlinuz"))
}

fn install_url(m: &Machine) -> Url {
    match install_of(m) {
        BootTarget::Install { url, .. } => url,
        other => panic!("not an install: {other:?}"),
    }
}

#[test]
fn a_wipe_with_an_agent_url_counts_only_the_chain_to_it() {
    let mut m = ready();
    change(&mut m, Change::Wipe { id: "w3".into() }, "-");
    m.delivered.boot = Some(agent_with(Some("w3")));
    m.delivered.cycled_into = Some(agent_with(Some("w3")));
    let agent = url("https://pxe.factory.talos.dev/pxe/agent/v1.11.5/metal-amd64");
    for step in [
        tftp("ipxe.efi"),
        own_script(),
        kernel(),
        Served::Script(url("http://x/y")),
    ] {
        boot_served(&mut m, &step, &agent);
        assert!(m.wipe_due(), "{step:?} is not the agent's chain");
    }
    boot_served(&mut m, &Served::Script(agent.clone()), &agent);
    assert_eq!(m.wiped.as_deref(), Some("w3"));
}

#[test]
fn a_boot_of_another_target_counts_for_nothing() {
    let mut m = ready();
    change(&mut m, Change::Wipe { id: "w4".into() }, "-");
    m.delivered.boot = Some(BootTarget::Disk);
    boot_served(&mut m, &kernel(), &Url::new());
    assert!(
        m.wipe_due(),
        "the agent's kernel while the target is the disk"
    );
    assert_eq!(
        m.last_boot.as_deref(),
        Some("kernel http://10.77.0.1/vmlinuz")
    );
}

#[test]
fn a_boot_under_way_before_the_cycle_into_the_wipe_does_not_count() {
    let mut m = pending();
    change(&mut m, Change::Accept, "w5");
    change(&mut m, Change::Bmc(bmc()), "-");
    m.delivered.bmc_revision = 1;
    m.observed_power = ObservedPower::On;
    m.delivered.boot = Some(agent_with(Some("w5")));
    // The pending agent's kernel, fetched after the wipe target was set, before the cycle.
    boot_served(&mut m, &kernel(), &Url::new());
    assert!(m.wipe_due());
    let i = issues(&m);
    assert_eq!(i[0].purpose, Purpose::CycleInto);
    resolve(
        &mut m,
        &i[0].purpose,
        i[0].into.clone(),
        &Outcome::Done,
        1000,
    );
    boot_served(&mut m, &kernel(), &Url::new());
    assert_eq!(m.wiped.as_deref(), Some("w5"));
}
