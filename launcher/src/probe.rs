//! The network side of start-up: is the port free, and does the app answer yet?

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Bind test for host:port (port 0: pick a free one). Err is the message to show.
pub fn check_port(host: &str, port: u16) -> Result<u16, String> {
    let addrs: Vec<_> =
        (host, port).to_socket_addrs().map_err(|e| format!("--host {host}: cannot resolve it: {e}"))?.collect();
    let Some(addr) = addrs.first() else { return Err(format!("--host {host}: no address")) };
    match TcpListener::bind(addr) {
        Ok(l) => Ok(l.local_addr().map(|a| a.port()).unwrap_or(port)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
            "port {port} on {host} is already in use (another server, or an `oxwsgi serve` still running?); \
             pick another with --port N (--port 0 picks a free one)"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
            "no permission to listen on port {port} (ports below 1024 need root): pick another with --port N"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            Err(format!("cannot listen on {host}: it is not an address of this machine ({e})"))
        }
        Err(e) => Err(format!("cannot listen on {host}:{port}: {e}")),
    }
}

pub enum Probe {
    /// Nothing listening yet (or the connection closed without an answer).
    NotYet,
    /// The status line.
    Answered(u16, String),
    /// Stop requested or the server exited while we waited.
    Aborted,
}

pub fn probe(host: &str, port: u16, path: &str, deadline: Instant, abort: &mut dyn FnMut() -> bool) -> Probe {
    let Ok(Some(addr)) = (host, port).to_socket_addrs().map(|mut a| a.next()) else { return Probe::NotYet };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else { return Probe::NotYet };
    let hosthdr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let req = format!("GET {path} HTTP/1.0\r\nHost: {hosthdr}\r\nUser-Agent: oxwsgi-launcher\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return Probe::NotYet;
    }
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            let code = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            return Probe::Answered(code, line);
        }
        if abort() {
            return Probe::Aborted;
        }
        if Instant::now() > deadline {
            return Probe::NotYet;
        }
        match s.read(&mut chunk) {
            Ok(0) => return Probe::NotYet,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Probe::NotYet,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_in_use() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = check_port("127.0.0.1", port).unwrap_err();
        assert!(e.contains("already in use"), "{e}");
        drop(l);
        assert_eq!(check_port("127.0.0.1", port).unwrap(), port);
        assert_ne!(check_port("127.0.0.1", 0).unwrap(), 0);
    }
}
