//! A `redis-server` started by a test (or bench) of its own, on a free port, never a mock: shared
//! by tests/shared_state.rs and benches/fleet.rs.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of the test's own, on a free port, without persistence; stopped on drop.
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    /// With TLS: the port it speaks TLS on (its plain port stays, for the readiness check).
    pub(crate) tls_port: Option<u16>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub(crate) fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let mut server = RedisServer { port, tls_port: None, child: None, _dir: dir };
        server.restart();
        server
    }

    /// One that speaks TLS too, with the test certificate of `localhost`/`127.0.0.1`.
    pub(crate) fn start_tls() -> RedisServer {
        let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let mut server = RedisServer { port: free(), tls_port: Some(free()), child: None, _dir: dir };
        server.restart();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port, and waits until it answers `PING`.
    pub(crate) fn restart(&mut self) {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
        let tls: Vec<String> = match self.tls_port {
            Some(p) => vec![
                "--tls-port".into(),
                p.to_string(),
                "--tls-cert-file".into(),
                format!("{fixtures}/cert-a.pem"),
                "--tls-key-file".into(),
                format!("{fixtures}/key-a.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            None => Vec::new(),
        };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&tls)
            .current_dir(self._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): these tests need a real Redis. Run `scripts/test`, which installs it, or `apt-get install -y redis-server`"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING within 20 s", self.port);
    }

    /// Kills it (no goodbye: a crash, as far as its clients can tell).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
