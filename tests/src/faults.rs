//! Real faults for tests: a private nats-server that can be stopped and started again, a private
//! PostgreSQL that can be crashed and started again (and a hot standby streaming from it), and a
//! TCP proxy in front of Postgres that can
//! cut every connection and refuse new ones.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
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

/// Where Debian keeps PostgreSQL's server binaries, one directory per major version.
const POSTGRES_LIB: &str = "/usr/lib/postgresql";

/// A PostgreSQL server of this test's own: a fresh cluster in a temporary directory on a free port,
/// trust authentication, commits durable (fsync and synchronous commit on), that the test can crash
/// ([`PrivatePostgres::stop_immediate`]) and start again ([`PrivatePostgres::resume`]). Dropping it
/// stops it and removes its directory. The shared cluster is never touched.
pub struct PrivatePostgres {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    /// The OS user the server runs as when this process is root (Postgres refuses to run as root).
    user: Option<String>,
    running: bool,
}

impl PrivatePostgres {
    /// Creates the cluster (`initdb`), starts it and waits until it accepts connections.
    ///
    /// # Panics
    /// When the server binaries are missing (the message says what to install), or the cluster
    /// cannot be created or started.
    pub async fn start() -> Self {
        let mut server = Self::in_new_directory();
        let data = server.data_dir();
        server
            .run(&[
                "initdb".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                // Only initdb's own flush of the new files: the server runs with fsync on.
                "--no-sync".as_ref(),
            ])
            .await;
        server.configure("");
        server.resume().await;
        server
    }

    /// A hot standby of this server: a base backup of it (`pg_basebackup -R`, with a
    /// replication slot of its own so that the primary keeps the WAL it has not received yet),
    /// started on a port of its own, streaming from this one. Like any private server it can be
    /// crashed and started again; started again, it goes on streaming.
    ///
    /// # Panics
    /// When the backup or the start fails.
    pub async fn standby(&self) -> Self {
        let mut standby = Self::in_new_directory();
        let data = standby.data_dir();
        let port = self.port.to_string();
        let slot = format!(
            "questlog_standby_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        standby
            .run(&[
                "pg_basebackup".as_ref(),
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                // standby.signal and primary_conninfo (with primary_slot_name).
                "-R".as_ref(),
                "-X".as_ref(),
                "stream".as_ref(),
                "-C".as_ref(),
                "-S".as_ref(),
                slot.as_ref(),
                "-c".as_ref(),
                "fast".as_ref(),
                "--no-sync".as_ref(),
            ])
            .await;
        // The backup carries the primary's settings; these come after them, so they win.
        standby.configure(
            "hot_standby = on\n\
             hot_standby_feedback = on\n\
             wal_retrieve_retry_interval = '200ms'\n",
        );
        standby.resume().await;
        standby
    }

    /// A server's directory, given to its OS user, and a free port, not started yet.
    fn in_new_directory() -> Self {
        let bin = server_binaries();
        let user = running_as_root().then(|| "postgres".to_owned());
        let dir =
            std::env::temp_dir().join(format!("questlog-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        if let Some(user) = &user {
            let (uid, gid) = os_user_ids(user);
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .expect("giving the cluster's directory to its OS user");
        }
        // Built before anything can fail, so that its drop cleans up after a failed start.
        Self {
            port: free_port(),
            bin,
            dir,
            user,
            running: false,
        }
    }

    /// Appends the tests' settings (its port, durable commits) and `more` to the cluster's
    /// configuration.
    fn configure(&self, more: &str) {
        let settings = format!(
            "\n# questlog's fault tests\n\
             listen_addresses = '127.0.0.1'\n\
             port = {}\n\
             unix_socket_directories = ''\n\
             fsync = on\n\
             synchronous_commit = on\n\
             full_page_writes = on\n\
             shared_buffers = 32MB\n{more}",
            self.port
        );
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .expect("configuring the private cluster");
    }

    /// The URL of `database` on this server.
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// `pg_ctl stop -m immediate` for this cluster.
    fn crash_command(&self) -> Command {
        let data = self.data_dir();
        let mut args: Vec<&std::ffi::OsStr> = vec!["pg_ctl".as_ref(), "-D".as_ref()];
        args.push(data.as_os_str());
        args.extend(["-m", "immediate", "-w", "-s", "stop"].map(std::ffi::OsStr::new));
        self.command(&args)
    }

    /// The URL of its maintenance database, to create test databases from.
    pub fn admin_url(&self) -> String {
        self.url_of("postgres")
    }

    /// Crashes it: `pg_ctl stop -m immediate` (every process quits at once, no checkpoint; the next
    /// start recovers from the WAL). Returns when the server is gone.
    ///
    /// # Panics
    /// When `pg_ctl` fails.
    pub async fn stop_immediate(&mut self) {
        self.run_command(self.crash_command()).await;
        self.running = false;
        wait_for_port(self.port, false).await;
    }

    /// Starts it (again) on the same port and data, and waits until it accepts connections (after
    /// a crash: until recovery is done).
    ///
    /// # Panics
    /// When it does not start.
    pub async fn resume(&mut self) {
        let data = self.data_dir();
        let log = self.dir.join("postgres.log");
        self.run(&[
            "pg_ctl".as_ref(),
            "-D".as_ref(),
            data.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
            "-w".as_ref(),
            "-t".as_ref(),
            "60".as_ref(),
            "-s".as_ref(),
            "start".as_ref(),
        ])
        .await;
        self.running = true;
        wait_for_port(self.port, true).await;
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// One of the server's programs, as its OS user, in the cluster's directory (the user may not
    /// be able to read the current one).
    fn command(&self, args: &[&std::ffi::OsStr]) -> Command {
        let (program, rest) = args.split_first().expect("a program");
        let binary = self.bin.join(program);
        let mut command = match &self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command
            .args(rest)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        command
    }

    async fn run(&self, args: &[&std::ffi::OsStr]) {
        self.run_command(self.command(args)).await;
    }

    async fn run_command(&self, command: Command) {
        let shown = format!("{command:?}");
        let output = tokio::process::Command::from(command)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
        assert!(
            output.status.success(),
            "{shown} failed ({}):\n{}{}\nserver log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .crash_command()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of `initdb`, `pg_ctl` and `postgres`: `QUESTLOG_TEST_POSTGRES_BIN`, else the
/// newest `/usr/lib/postgresql/<version>/bin` that has them.
fn server_binaries() -> PathBuf {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("QUESTLOG_TEST_POSTGRES_BIN").map(PathBuf::from) {
        assert!(
            complete(&dir),
            "QUESTLOG_TEST_POSTGRES_BIN={} lacks initdb, pg_ctl or postgres",
            dir.display()
        );
        return dir;
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(POSTGRES_LIB)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "the fault tests need PostgreSQL's server binaries (initdb, pg_ctl, postgres) in \
             {POSTGRES_LIB}/<version>/bin: install them (Debian: apt-get install postgresql), or set \
             QUESTLOG_TEST_POSTGRES_BIN to the directory that holds them"
        )
    })
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The user and group ids of an OS user.
fn os_user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, user])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
            .unwrap_or_else(|| {
                panic!(
                    "running as root, the fault tests run PostgreSQL as the OS user `{user}`, \
                     which does not exist: install PostgreSQL (Debian: apt-get install \
                     postgresql creates it) or run the tests as another user"
                )
            })
    };
    (id("-u"), id("-g"))
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

/// A nats-server cluster of this test's own: `n` nodes on loopback, each with its own client and
/// route ports and its own JetStream store, that the test can kill one by one
/// ([`NatsCluster::kill`], as a crash would). Dropping it kills every node and removes their
/// directories.
pub struct NatsCluster {
    nodes: Vec<ClusterNode>,
    dir: PathBuf,
}

struct ClusterNode {
    name: String,
    port: u16,
    child: Option<Child>,
}

impl NatsCluster {
    /// Starts `n` nodes and waits until each accepts connections and JetStream answers through
    /// every one (the cluster has elected its meta leader).
    ///
    /// # Panics
    /// When nats-server is missing or the cluster does not come up within 60 s.
    pub async fn start(n: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "questlog-nats-cluster-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let cluster_name = format!("qlc{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for (i, (port, route)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = cluster.dir.join(&name);
            std::fs::create_dir_all(&store).expect("a node's store");
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, r))| format!("\"nats-route://127.0.0.1:{r}\""))
                .collect();
            let config = format!(
                "server_name: {name}\n\
                 listen: \"127.0.0.1:{port}\"\n\
                 jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n\
                 cluster {{\n  name: {cluster_name}\n  listen: \"127.0.0.1:{route}\"\n  \
                 routes: [{}]\n}}\n",
                store.display(),
                routes.join(", ")
            );
            let file = cluster.dir.join(format!("{name}.conf"));
            std::fs::write(&file, config).expect("a node's configuration");
            let child = Command::new(nats_binary())
                .arg("-c")
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server must be installed (scripts/test.sh installs it)");
            cluster.nodes.push(ClusterNode {
                name,
                port: *port,
                child: Some(child),
            });
        }
        for node in &cluster.nodes {
            wait_for_port(node.port, true).await;
        }
        cluster.wait_for_jetstream().await;
        cluster
    }

    /// Waits until JetStream answers through every running node.
    async fn wait_for_jetstream(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let client = async_nats::connect(format!("nats://127.0.0.1:{}", node.port))
                .await
                .expect("connecting to a cluster node");
            let js = async_nats::jetstream::new(client);
            // A stream that does not exist: JetStream answering "not found" is JetStream up.
            let ready = || async {
                matches!(
                    js.get_stream("QUESTLOG_CLUSTER_PROBE").await,
                    Err(e) if matches!(
                        e.kind(),
                        async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                            if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
                    )
                )
            };
            while !ready().await {
                assert!(
                    Instant::now() < deadline,
                    "the NATS cluster's JetStream did not come up within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Every node's client URL, comma-separated, as `QUESTLOG_NATS_URL` takes them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node called `name` (`n1`, `n2`, …: JetStream reports leaders by these names).
    ///
    /// # Panics
    /// When there is none.
    pub fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name} in the cluster"))
    }

    /// Kills node `i` (SIGKILL) and waits until its port is closed.
    pub async fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_for_port(node.port, false).await;
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nats_binary() -> &'static str {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "nats-server",
    ]
    .into_iter()
    .find(|b| !b.starts_with('/') || Path::new(b).exists())
    .unwrap_or("nats-server")
}
