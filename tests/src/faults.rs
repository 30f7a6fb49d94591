//! Real faults for tests: a private nats-server that can be stopped and started again, and a TCP
//! proxy in front of Postgres that can cut every connection and refuse new ones.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn wait_for_port(port: u16, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let open = TcpStream::connect(("127.0.0.1", port)).await.is_ok();
        if open == up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "port {port} did not become {}",
        if up { "open" } else { "closed" }
    );
}

/// A nats-server of this test's own, with JetStream, on a free port.
pub struct NatsServer {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts it and waits until it accepts connections.
    ///
    /// # Panics
    /// When nats-server is not installed or does not start.
    pub async fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("questlog-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Where it keeps its JetStream store (`-sd`).
    pub fn store_dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Stops the server (as a crash would: SIGKILL) and waits until the port is closed.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_for_port(self.port, false).await;
    }

    /// Starts it again on the same port and storage.
    ///
    /// # Panics
    /// When it does not start.
    pub async fn resume(&mut self) {
        let binary = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "nats-server",
        ]
        .into_iter()
        .find(|b| !b.starts_with('/') || std::path::Path::new(b).exists())
        .unwrap_or("nats-server");
        let child = Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port, true).await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy to Postgres that can be cut (every connection closed, new ones refused) and
/// restored, to play "Postgres went away".
pub struct PgProxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    stopped: Arc<AtomicBool>,
}

impl PgProxy {
    /// A proxy in front of `target` (host:port).
    ///
    /// # Panics
    /// When it cannot bind.
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("address");
        let (up, _) = watch::channel(true);
        let stopped = Arc::new(AtomicBool::new(false));
        let target = target.to_owned();
        let state = up.clone();
        let done = stopped.clone();
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !*state.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut = state.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up, stopped }
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// A database URL that goes through the proxy.
    pub fn url_for(&self, database_url: &str) -> String {
        let (head, tail) = database_url.split_once('@').expect("URL with user@host");
        let path = tail.split_once('/').map_or("", |(_, p)| p);
        format!("{head}@{}/{path}", self.addr)
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.up.send_replace(false);
    }
}
