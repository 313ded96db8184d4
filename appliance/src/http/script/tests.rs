extern crate std;
use std::string::String;

use super::*;

fn script(config: &ScriptConfig<'_>, who: &Requester, target: &BootTarget) -> String {
    let mut s = String::new();
    render(&mut s, config, who, target).unwrap();
    assert_eq!(rendered_len(config, who, target), Ok(s.len()));
    s
}

#[test]
fn each_boot_target() {
    let config = ScriptConfig::new(Ipv4Addr::new(10, 77, 0, 1));
    let who = Requester::default();
    assert_eq!(
        script(&config, &who, &BootTarget::Default),
        "#!ipxe\nkernel http://10.77.0.1/vmlinuz initrd=initrd.img console=ttyS0\n\
         initrd http://10.77.0.1/initrd.img\nboot\n"
    );
    let url = BootTarget::Script("http://10.77.0.9/x.ipxe".try_into().unwrap());
    assert_eq!(
        script(&config, &who, &url),
        "#!ipxe\nchain http://10.77.0.9/x.ipxe\n"
    );
    assert_eq!(script(&config, &who, &BootTarget::Local), "#!ipxe\nexit\n");
    let file = BootTarget::File("custom.efi".try_into().unwrap());
    assert_eq!(
        script(&config, &who, &file),
        script(&config, &who, &BootTarget::Default)
    );
}

#[test]
fn paths_ports_and_an_empty_cmdline() {
    let config = ScriptConfig {
        port: 8080,
        kernel: "/talos/vmlinuz-amd64",
        initrd: "talos/initramfs amd64.xz",
        cmdline: "",
        ..ScriptConfig::new(Ipv4Addr::new(10, 77, 0, 1))
    };
    // A space in the initrd's own name would split the command line.
    assert_eq!(
        render(
            &mut String::new(),
            &config,
            &Requester::default(),
            &BootTarget::Default
        ),
        Err(ScriptError::BadValue)
    );
    let config = ScriptConfig {
        initrd: "talos dir/initramfs.xz",
        ..config
    };
    assert_eq!(
        script(&config, &Requester::default(), &BootTarget::Default),
        "#!ipxe\nkernel http://10.77.0.1:8080/talos/vmlinuz-amd64 initrd=initramfs.xz\n\
         initrd http://10.77.0.1:8080/talos%20dir/initramfs.xz\nboot\n"
    );
}

#[test]
fn placeholders_and_query() {
    let template = "#!ipxe\necho {{ server }} {{mac}} {{uuid}} {{arch}} ${net0/mac} \
                    {{kernel}} {{initrd}} {{cmdline}}\n{{target}}\n";
    let config = ScriptConfig {
        template,
        ..ScriptConfig::new(Ipv4Addr::new(10, 0, 0, 1))
    };
    assert_eq!(check_template(template), Ok(()));
    let who = Requester::from_query(
        "mac=52-54-00-AB-00-01&uuid=12345678-9abc-4def-8123-0000000b1051&arch=x86%5F64",
    );
    assert_eq!(
        script(&config, &who, &BootTarget::Local),
        "#!ipxe\necho 10.0.0.1 52:54:00:ab:00:01 12345678-9abc-4def-8123-0000000b1051 \
         x86_64 ${net0/mac} vmlinuz initrd.img console=ttyS0\nexit\n"
    );
    assert_eq!(Requester::from_query("mac=525400ab0001").mac, who.mac);
    // Unparseable values are dropped, never echoed.
    let bad = Requester::from_query(
        "mac=52:54:00:ab:00&uuid=00000000-0000-0000-0000-000000000000&arch=x%0Aexit",
    );
    assert_eq!(bad, Requester::default());
}

#[test]
fn bad_templates_and_values() {
    assert_eq!(check_template("{{mac}"), Err(ScriptError::Unclosed));
    assert_eq!(
        check_template("{{nope}}"),
        Err(ScriptError::UnknownPlaceholder)
    );
    let config = ScriptConfig {
        template: "{{macs}}",
        ..ScriptConfig::new(Ipv4Addr::new(10, 0, 0, 1))
    };
    let who = Requester::default();
    let r = |c: &ScriptConfig<'_>, t: &BootTarget| render(&mut String::new(), c, &who, t);
    assert_eq!(
        r(&config, &BootTarget::Local),
        Err(ScriptError::UnknownPlaceholder)
    );
    let config = ScriptConfig {
        template: DEFAULT_TEMPLATE,
        cmdline: "a\nshell",
        ..config
    };
    assert_eq!(r(&config, &BootTarget::Default), Err(ScriptError::BadValue));
    let config = ScriptConfig {
        cmdline: "",
        ..config
    };
    let url = BootTarget::Script("http://x/a b".try_into().unwrap());
    assert_eq!(r(&config, &url), Err(ScriptError::BadValue));
    let big = "x".repeat(MAX_SCRIPT + 1);
    let config = ScriptConfig {
        template: &big,
        ..config
    };
    assert_eq!(
        rendered_len(&config, &who, &BootTarget::Local),
        Err(ScriptError::TooLarge)
    );
    let mut small = heapless::String::<8>::new();
    assert_eq!(
        render(&mut small, &config, &who, &BootTarget::Local),
        Err(ScriptError::TooLarge)
    );
}
