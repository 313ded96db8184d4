//! The CLI's client for the API: one HTTP/1.1 request per connection over a plain TCP
//! socket (the API listens on loopback), JSON in and out. Small enough to need no HTTP
//! client crate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::NewToken;

/// The API's address, `http://HOST:PORT` or `HOST:PORT`.
pub struct Client {
    authority: String,
}

impl Client {
    pub fn new(api: &str) -> Result<Client, String> {
        let authority = api
            .strip_prefix("http://")
            .unwrap_or(api)
            .trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || api.starts_with("https://") {
            return Err(format!("--api {api}: expected http://HOST:PORT"));
        }
        Ok(Client {
            authority: authority.to_string(),
        })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        self.request("GET", path, None::<&()>)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, String> {
        self.request("POST", path, Some(body))
    }

    /// Creates an enrollment token valid for `expires_in_secs`.
    pub fn create_token(&self, expires_in_secs: u64) -> Result<NewToken, String> {
        self.post("/api/tokens", &crate::api::TokenRequest { expires_in_secs })
    }

    fn request<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, String> {
        let unreachable = |e: std::io::Error| format!("provider API at {}: {e}", self.authority);
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let mut stream = TcpStream::connect(&self.authority).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(unreachable)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.authority,
            body.len()
        );
        stream.write_all(head.as_bytes()).map_err(unreachable)?;
        stream.write_all(&body).map_err(unreachable)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).map_err(unreachable)?;
        let (status, body) = parse_response(&response)?;
        if status != 200 {
            let error = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(error);
        }
        serde_json::from_slice(&body).map_err(|e| format!("unexpected answer from the API: {e}"))
    }
}

/// The status and body (de-chunked) of a whole HTTP/1.1 response.
fn parse_response(response: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let bad = || "malformed HTTP response from the API".to_string();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&response[..split]).map_err(|_| bad())?;
    let body = &response[split + 4..];
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        out.extend_from_slice(rest.get(..size).ok_or_else(bad)?);
        rest = rest.get(size + 2..).ok_or_else(bad)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]";
        assert_eq!(parse_response(plain).unwrap(), (200, b"[]".to_vec()));
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (404, b"abcde".to_vec()));
        assert!(parse_response(b"garbage").is_err());
    }
}
