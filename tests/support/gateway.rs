//! The gateway in-process on a free port, and the `switchyard` binary.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use switchyard::serve::{Gateway, ServeOptions};

/// A running in-process gateway with its base URL and the directory holding its policy file
/// (kept with it: the gateway watches the file).
pub struct TestGateway {
    pub gateway: Gateway,
    pub base: String,
    pub dir: tempfile::TempDir,
}

impl TestGateway {
    /// The policy file the gateway serves (write it to reload).
    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the gateway, draining what is in flight.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
    }
}

impl std::ops::Deref for TestGateway {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}

/// `switchyard serve` on a free loopback port under `policy` (TOML text), its base URL, and the
/// directory holding the policy file (keep it while the gateway runs: it watches the file).
pub async fn gateway(policy: &str) -> (Gateway, String, tempfile::TempDir) {
    let g = gateway_with(policy, &[]).await;
    (g.gateway, g.base, g.dir)
}

/// [`gateway`] with more files (`(name, text)`, e.g. a `keys.toml` the policy names) written
/// next to the policy before it starts.
pub async fn gateway_with(policy: &str, files: &[(&str, &str)]) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy).unwrap();
    let mut options = ServeOptions::new(&path);
    options.listen = Some("127.0.0.1:0".parse().unwrap());
    let gateway = match Gateway::start(options).await {
        Ok(g) => g,
        Err(e) => panic!("the gateway did not start: {e}"),
    };
    let base = format!("http://{}", gateway.addr());
    TestGateway { gateway, base, dir }
}

/// The `switchyard` binary built for these tests (cargo builds it with the `cli` feature).
pub fn binary() -> &'static str {
    // option_env: the test files still compile without `cli`; only the tests running it need it
    match option_env!("CARGO_BIN_EXE_switchyard") {
        Some(path) => path,
        None => panic!("the switchyard binary needs the `cli` feature"),
    }
}

/// `switchyard serve` (the binary) on a free loopback port.
pub struct ServeProcess {
    /// Killed on drop.
    pub child: tokio::process::Child,
    pub port: u16,
    pub base: String,
    /// Holds the policy file (`policy.toml`).
    pub dir: tempfile::TempDir,
}

/// Starts `switchyard serve` under `policy` (TOML text, written to a file of its own) with
/// `envs` added to its environment and its stderr going to `stderr`, and waits (10 s at most)
/// until its `/healthz` answers 200.
pub async fn serve_binary(policy: &str, envs: &[(&str, &str)], stderr: Stdio) -> ServeProcess {
    serve_binary_under(&[], policy, envs, stderr).await
}

/// [`serve_binary`] started through `wrapper` (a command and its arguments, e.g.
/// `["prlimit", "--nofile=256:256", "--"]`); empty: started directly.
pub async fn serve_binary_under(wrapper: &[&str], policy: &str, envs: &[(&str, &str)], stderr: Stdio) -> ServeProcess {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (program, before) = match wrapper.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (binary(), &[][..]),
    };
    let mut command = tokio::process::Command::new(program);
    if !wrapper.is_empty() {
        command.args(before).arg(binary());
    }
    let child = command
        .args(["serve", "--policy", &path.display().to_string(), "--listen", &format!("127.0.0.1:{port}")])
        .envs(envs.iter().copied())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start `{program}` ({e}); `prlimit` comes with util-linux: apt-get install util-linux")
        });
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let up = super::poll::eventually_async(Duration::from_secs(10), || async {
        http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(up, "the gateway did not come up at {base}");
    ServeProcess { child, port, base, dir }
}
