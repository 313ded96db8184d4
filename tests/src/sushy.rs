//! sushy-emulator (PyPI sushy-tools) as the Redfish BMC: the fake driver (no libvirt), Basic
//! auth from a bcrypt htpasswd, on a free loopback port, over HTTP or HTTPS with a CA and a
//! server certificate made for the test. Killed when dropped. The emulator's own view of a
//! system is read with `curl`, independently of the client under test.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::{Child, run_timeout};
use crate::wait::poll_until;
use crate::{Workdir, which};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "password";
/// The fake systems: node-1 (on) is the collection's first member, node-0 (off) second.
const SYSTEMS: &str = "[
    {'uuid': '27946b59-9e44-4fa7-8e91-f3527a1ef094', 'name': 'node-0',
     'power_state': 'Off', 'external_notifier': False,
     'nics': [{'mac': '52:54:00:00:00:01', 'ip': '10.77.0.50'}]},
    {'uuid': '0a5e1b46-6f3b-4c36-9d0d-3b8f2a4c1e01', 'name': 'node-1',
     'power_state': 'On', 'external_notifier': False,
     'nics': [{'mac': '52:54:00:00:00:02', 'ip': '10.77.0.51'}]},
]";

/// True if sushy-emulator is installed; otherwise prints why the test is skipped.
pub fn available() -> bool {
    let found = which("sushy-emulator").is_some() && which("curl").is_some();
    if !found {
        eprintln!("skipped: needs sushy-emulator (pip install sushy-tools) and curl");
    }
    found
}

/// The certificates of an HTTPS emulator.
pub struct Tls {
    /// The CA that issued the server certificate (PEM).
    pub ca: PathBuf,
    /// SHA-256 of the server certificate's DER, in hex.
    pub fingerprint: String,
}

pub struct Sushy {
    _child: Child,
    /// `http://127.0.0.1:PORT` or `https://…`.
    pub url: String,
    pub tls: Option<Tls>,
}

impl Sushy {
    /// Starts the emulator in `work` (over HTTPS if `tls`) and waits until it answers.
    pub fn start(work: &Workdir, tls: bool) -> Sushy {
        let dir = work.dir("sushy");
        let state = work.dir("sushy/state");
        let htpasswd = dir.join("htpasswd");
        let hash = python(&format!(
            "import bcrypt; print(bcrypt.hashpw(b'{PASSWORD}', bcrypt.gensalt()).decode())"
        ));
        fs::write(&htpasswd, format!("{USER}:{}\n", hash.trim())).expect("write htpasswd");
        let port = free_port();
        let mut conf = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = '{}'\n\
             SUSHY_EMULATOR_AUTH_FILE = '{}'\nSUSHY_EMULATOR_FEATURE_SET = 'full'\n\
             SUSHY_EMULATOR_FAKE_SYSTEMS = {SYSTEMS}\n",
            state.display(),
            htpasswd.display()
        );
        let tls = tls.then(|| {
            let (tls, cert, key) = make_certificates(&dir);
            conf.push_str(&format!(
                "SUSHY_EMULATOR_SSL_CERT = '{}'\nSUSHY_EMULATOR_SSL_KEY = '{}'\n",
                cert.display(),
                key.display()
            ));
            tls
        });
        let conf_path = dir.join("emulator.conf");
        fs::write(&conf_path, conf).expect("write emulator.conf");
        let mut child = Child::spawn(
            "sushy-emulator",
            Command::new("sushy-emulator")
                .arg("--config")
                .arg(&conf_path),
            &work.file("sushy.log"),
        );
        let scheme = if tls.is_some() { "https" } else { "http" };
        poll_until("sushy-emulator to listen", Duration::from_secs(30), || {
            child.check_alive()?;
            Ok(std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        Sushy {
            _child: child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            tls,
        }
    }

    /// GET `path` with curl (Basic auth; the test CA for HTTPS); the body.
    pub fn get(&self, path: &str) -> String {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sSf",
            "--max-time",
            "10",
            "-u",
            &format!("{USER}:{PASSWORD}"),
        ]);
        if let Some(tls) = &self.tls {
            cmd.arg("--cacert").arg(&tls.ca);
        }
        let out = run_timeout(
            cmd.arg(format!("{}{path}", self.url)),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|e| panic!("curl {path}: {e}"));
        assert!(out.status.success(), "curl {path}: {}", out.stderr);
        out.stdout
    }

    /// The path of the Systems collection's first member: the one the client picks.
    pub fn first_system(&self) -> String {
        let members = self.get("/redfish/v1/Systems");
        let after = members.split("\"Members\"").nth(1).expect("Members");
        string_after(after, "\"@odata.id\"").expect("a member")
    }

    /// A field of the first system as the emulator reports it, e.g. `PowerState`.
    pub fn field(&self, name: &str) -> String {
        let system = self.get(&self.first_system());
        string_after(&system, &format!("\"{name}\""))
            .unwrap_or_else(|| panic!("no {name} in {system}"))
    }

    /// POSTs a ResetType with curl; the HTTP status.
    pub fn reset_status(&self, reset_type: &str) -> u16 {
        let target = format!("{}/Actions/ComputerSystem.Reset", self.first_system());
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ]);
        cmd.args(["-u", &format!("{USER}:{PASSWORD}")]);
        cmd.args(["-H", "Content-Type: application/json"]);
        cmd.args(["-d", &format!("{{\"ResetType\":\"{reset_type}\"}}")]);
        if let Some(tls) = &self.tls {
            cmd.arg("--cacert").arg(&tls.ca);
        }
        let out = run_timeout(
            cmd.arg(format!("{}{target}", self.url)),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|e| panic!("curl reset: {e}"));
        out.stdout.trim().parse().unwrap_or(0)
    }
}

/// The JSON string value after `key` (`"key": "value"`), without escapes.
fn string_after(text: &str, key: &str) -> Option<String> {
    let rest = &text[text.find(key)? + key.len()..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

fn python(code: &str) -> String {
    let out = run_timeout(
        Command::new("python3").args(["-c", code]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(out.status.success(), "python3: {}", out.stderr);
    out.stdout
}

/// Runs openssl in `dir`; its output.
fn openssl(args: &[&str], dir: &Path) -> String {
    let out = run_timeout(
        Command::new("openssl").args(args).current_dir(dir),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", out.stderr);
    out.stdout
}

/// A CA and a server certificate it issued for IP 127.0.0.1 (P-256): (trust, cert, key).
fn make_certificates(dir: &Path) -> (Tls, PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca_subject = [
        "-days",
        "2",
        "-subj",
        "/CN=e2e test CA",
        "-keyout",
        "ca.key",
    ];
    openssl(
        &[&["req", "-x509"][..], &ec, &ca_subject, &["-out", "ca.pem"]].concat(),
        dir,
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &["-subj", "/CN=bmc", "-keyout", "bmc.key", "-out", "bmc.csr"],
        ]
        .concat(),
        dir,
    );
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext.cnf");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "bmc.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "bmc.pem",
        ],
        dir,
    );
    openssl(
        &[
            "x509", "-in", "bmc.pem", "-outform", "DER", "-out", "bmc.der",
        ],
        dir,
    );
    let digest = openssl(&["dgst", "-sha256", "-r", "bmc.der"], dir);
    let tls = Tls {
        ca: dir.join("ca.pem"),
        fingerprint: digest
            .split_whitespace()
            .next()
            .expect("a digest")
            .to_string(),
    };
    (tls, dir.join("bmc.pem"), dir.join("bmc.key"))
}
