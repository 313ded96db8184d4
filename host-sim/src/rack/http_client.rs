//! A simulated machine's HTTP client, as iPXE behaves: one keep-alive connection, the
//! script first, then what it names: a kernel and initrd, a script to chain, or `exit`.

use std::collections::VecDeque;

use smoltcp::socket::tcp;

use super::Digest;
use super::machine::Booted;

/// The response being read.
#[derive(Default)]
struct Response {
    path: String,
    head: Vec<u8>,
    length: Option<usize>,
    body: Vec<u8>,
    read: usize,
    digest: Digest,
}

pub struct HttpClient {
    host: String,
    queue: VecDeque<String>,
    current: Option<Response>,
    /// Every file fetched: path, size and digest.
    pub fetched: Vec<(String, usize, Digest)>,
    kernel: bool,
    /// Set once the chain has ended.
    pub booted: Option<Booted>,
}

impl HttpClient {
    /// Whether `url` is on `server` (the rack follows nothing off the segment).
    pub fn on_server(url: &str, server: std::net::Ipv4Addr) -> bool {
        let host = url.strip_prefix("http://").map(|r| r.split('/').next());
        let ip = host.flatten().map(|h| h.split(':').next().unwrap_or(h));
        ip.and_then(|ip| ip.parse().ok()) == Some(server)
    }

    /// Starts with the script URL from DHCP (`http://HOST/PATH`).
    pub fn new(url: &str) -> Result<HttpClient, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http URL: {url}"))?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        Ok(HttpClient {
            host: host.to_owned(),
            queue: VecDeque::from([format!("/{path}")]),
            current: None,
            fetched: Vec::new(),
            kernel: false,
            booted: None,
        })
    }

    pub fn poll(&mut self, socket: &mut tcp::Socket<'_>) -> Result<(), String> {
        if !socket.is_active() {
            return Ok(());
        }
        if self.current.is_none() && socket.may_send() {
            let Some(path) = self.queue.pop_front() else {
                return Ok(());
            };
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rack-sim\r\n\r\n",
                self.host
            );
            socket
                .send_slice(request.as_bytes())
                .map_err(|e| e.to_string())?;
            self.current = Some(Response {
                path,
                ..Response::default()
            });
        }
        while let Some(r) = self.current.as_mut() {
            let got = socket
                .recv(|buf| {
                    let n = take(r, buf);
                    (n, n)
                })
                .map_err(|e| e.to_string())?;
            if r.length.is_some_and(|len| r.read == len) {
                let r = self.current.take().unwrap_or_default();
                self.finish(r)?;
                continue;
            }
            if got == 0 {
                break;
            }
        }
        Ok(())
    }

    fn finish(&mut self, r: Response) -> Result<(), String> {
        let status = String::from_utf8_lossy(&r.head);
        if !status.starts_with("HTTP/1.1 200") {
            return Err(format!(
                "GET {}: {}",
                r.path,
                status.lines().next().unwrap_or("")
            ));
        }
        if r.path.contains(".ipxe") {
            let script = String::from_utf8_lossy(&r.body).into_owned();
            for line in script.lines() {
                let mut words = line.split_whitespace();
                match (words.next(), words.next()) {
                    (Some("exit"), _) => self.booted = Some(Booted::Disk),
                    (Some("chain"), Some(url))
                        if !url.starts_with(&format!("http://{}/", self.host)) =>
                    {
                        self.booted = Some(Booted::Chain(url.to_owned()));
                    }
                    (Some(verb @ ("kernel" | "initrd" | "chain")), Some(url)) => {
                        self.kernel |= verb == "kernel";
                        let path = url
                            .strip_prefix("http://")
                            .and_then(|u| u.split_once('/'))
                            .map(|(_, p)| p);
                        self.queue.push_back(format!(
                            "/{}",
                            path.ok_or_else(|| format!("bad URL {url}"))?
                        ));
                    }
                    _ => {}
                }
            }
        }
        self.fetched.push((r.path, r.read, r.digest));
        if self.booted.is_none() && self.queue.is_empty() {
            self.booted = Some(if self.kernel {
                Booted::Kernel
            } else {
                return Err("the script boots nothing".into());
            });
        }
        Ok(())
    }
}

/// Feeds received bytes into the response: the head first, then the body.
fn take(r: &mut Response, buf: &[u8]) -> usize {
    let mut used = 0;
    if r.length.is_none() {
        for &b in buf {
            used += 1;
            r.head.push(b);
            if r.head.ends_with(b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&r.head).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok());
                r.length = Some(length.unwrap_or(0));
                break;
            }
        }
    }
    let Some(len) = r.length else { return used };
    let n = (len - r.read).min(buf.len() - used);
    let body = &buf[used..used + n];
    r.digest.update(body);
    if r.path.contains(".ipxe") {
        r.body.extend_from_slice(body);
    }
    r.read += n;
    used + n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client after it has read `script` as `/boot.ipxe`.
    fn after_script(script: &str) -> Result<HttpClient, String> {
        let mut c = HttpClient::new("http://10.77.0.1/boot.ipxe")?;
        c.queue.clear();
        c.finish(Response {
            path: "/boot.ipxe".into(),
            head: b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
            body: script.as_bytes().to_vec(),
            ..Response::default()
        })?;
        Ok(c)
    }

    #[test]
    fn the_script_decides_what_boots() {
        let c = after_script("#!ipxe\nkernel http://10.77.0.1/vmlinuz initrd=initrd.img\ninitrd http://10.77.0.1/initrd.img\nboot\n").unwrap();
        assert_eq!(c.queue, ["/vmlinuz", "/initrd.img"]);
        assert_eq!(c.booted, None, "not before the kernel is fetched");
        let c = after_script("#!ipxe\nexit\n").unwrap();
        assert_eq!(c.booted, Some(Booted::Disk));
        let url = "https://pxe.factory.talos.dev/pxe/abc/v1.11.5/metal-amd64";
        let c = after_script(&format!("#!ipxe\nchain {url}\n")).unwrap();
        assert_eq!(c.booted, Some(Booted::Chain(url.into())));
        let c = after_script("#!ipxe\nchain http://10.77.0.1/next.ipxe\n").unwrap();
        assert_eq!(
            c.queue,
            ["/next.ipxe"],
            "a script on the appliance is followed"
        );
        assert!(after_script("#!ipxe\necho nothing\n").is_err());
    }

    #[test]
    fn only_the_appliance_is_followed() {
        let server = "10.77.0.1".parse().unwrap();
        assert!(HttpClient::on_server("http://10.77.0.1/boot.ipxe", server));
        assert!(HttpClient::on_server("http://10.77.0.1:8080/x", server));
        assert!(!HttpClient::on_server("http://10.77.0.2/boot.ipxe", server));
        assert!(!HttpClient::on_server(
            "https://10.77.0.1/boot.ipxe",
            server
        ));
        assert!(!HttpClient::on_server("tftp://10.77.0.1/x", server));
    }
}
