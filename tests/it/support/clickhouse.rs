//! A real ClickHouse server (Debian's `clickhouse-server` package, 18.16 here) started by the
//! tests with a generated config: a temp data dir, HTTP and native ports picked at run time on
//! 127.0.0.1, a user `audit` with a password. `shared()` is one server for the whole test run
//! (each test uses its own database); `start()` gives a test its own, which it may stop and
//! start again on the same ports and data. Servers die with the test process
//! (`PR_SET_PDEATHSIG` from a thread that lives as long as the process).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::wait::poll_until_blocking;

pub const USER: &str = "audit";
pub const PASSWORD: &str = "s3cret-ch-pw";
const BINARY: &str = "/usr/sbin/clickhouse-server";

pub struct ClickHouse {
    pub http_port: u16,
    tcp_port: u16,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pid: Option<u32>,
}

/// Whether the server is installed (else the test skips or fails: `support::require`).
pub fn available() -> bool {
    super::require::installed(
        Path::new(BINARY).exists(),
        "clickhouse-server",
        "apt-get install clickhouse-server",
    )
}

/// One server for every test that does not stop it.
pub fn shared() -> &'static ClickHouse {
    static SHARED: OnceLock<ClickHouse> = OnceLock::new();
    SHARED.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        // Kept for the process lifetime (a static is never dropped; the OS reaps /tmp).
        std::mem::forget(tmp);
        let mut ch = ClickHouse::configure(dir, None);
        ch.spawn_blocking();
        ch
    })
}

impl ClickHouse {
    pub fn start() -> ClickHouse {
        let tmp = tempfile::tempdir().unwrap();
        let mut ch = ClickHouse::configure(tmp.path().to_path_buf(), Some(tmp));
        ch.spawn_blocking();
        ch
    }

    fn configure(dir: PathBuf, tmp: Option<tempfile::TempDir>) -> ClickHouse {
        let http_port = super::net::free_port(false);
        let tcp_port = super::net::free_port(false);
        let d = dir.display();
        std::fs::write(
            dir.join("config.xml"),
            format!(
                r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog><console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/data/tmp/</tmp_path>
  <user_files_path>{d}/data/user_files/</user_files_path>
  <format_schema_path>{d}/data/format_schemas/</format_schema_path>
  <mark_cache_size>104857600</mark_cache_size>
  <uncompressed_cache_size>104857600</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mlock_executable>false</mlock_executable>
</yandex>
"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("users.xml"),
            format!(
                r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <{USER}><password>{PASSWORD}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></{USER}>
  </users>
  <quotas><default></default></quotas>
</yandex>
"#
            ),
        )
        .unwrap();
        ClickHouse {
            http_port,
            tcp_port,
            dir,
            _tmp: tmp,
            pid: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Starts the server from a thread that outlives the test (see the module doc) and waits
    /// for `/ping`.
    fn spawn_blocking(&mut self) {
        let config = self.dir.join("config.xml");
        let log = self.dir.join("stdout.log");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let out = std::fs::File::create(&log).unwrap();
            let mut cmd = Command::new(BINARY);
            cmd.arg(format!("--config-file={}", config.display()))
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out);
            // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().expect("starting clickhouse-server");
            tx.send(child.id()).unwrap();
            let _ = child.wait();
            // Stay alive: the parent-death signal fires when this thread ends.
            loop {
                std::thread::park();
            }
        });
        self.pid = Some(rx.recv().unwrap());
        let up = poll_until_blocking(Duration::from_secs(60), || self.ping().then_some(()));
        assert!(
            up.is_some(),
            "clickhouse-server did not answer /ping within 60 s: {}",
            std::fs::read_to_string(self.dir.join("server.err.log")).unwrap_or_default()
        );
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.http_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /ping HTTP/1.0\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.contains("Ok.")
    }

    /// SIGTERM and wait until the port is closed.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            // SAFETY: signalling the server process we started, by its id.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            // Up to 30 s for a clean stop; then SIGKILL whatever is left.
            let port = self.http_port;
            poll_until_blocking(Duration::from_secs(30), || {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .is_err()
                    .then_some(())
            });
            // SAFETY: as above; the process may already be gone.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }

    /// Starts again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_blocking();
    }

    /// Runs `sql` as the default user; the answer text, or the error text as Err.
    pub async fn query(&self, sql: &str) -> Result<String, String> {
        let resp = reqwest::Client::new()
            .post(self.url())
            .body(sql.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let ok = resp.status().is_success();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if ok { Ok(text) } else { Err(text) }
    }

    /// `sql` with `FORMAT JSONEachRow`, parsed.
    pub async fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        let text = self
            .query(&format!("{sql} FORMAT JSONEachRow"))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        let _ = self.tcp_port;
        self.stop();
    }
}
