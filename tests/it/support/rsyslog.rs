//! A real rsyslogd (Debian package `rsyslog`, plus `rsyslog-gnutls` for TLS) started per test
//! on a loopback port picked at run time: `rsyslogd -n -f <conf> -i <pidfile>` with imtcp/imudp,
//! writing every received message as one JSON line (rsyslog's own RFC 5424 parse: pri, msgid,
//! structured data, app-name, procid, hostname, timestamp, msg — plus the raw message) to a
//! file the test reads back. Can be stopped and started again on the same port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// What the test rsyslog listens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Tcp,
    Udp,
    Tls,
}

/// One message as rsyslog parsed it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    pub raw: String,
    pub pri: String,
    pub msgid: String,
    pub sd: String,
    pub app: String,
    pub host: String,
    pub procid: String,
    pub ts: String,
    pub msg: String,
}

impl Received {
    /// The `event_id` parameter of the structured data.
    pub fn event_id(&self) -> String {
        let start = self.sd.find("event_id=\"").expect("event_id in SD") + 10;
        let mut out = String::new();
        let mut chars = self.sd[start..].chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => break,
                c => out.push(c),
            }
        }
        out
    }
}

pub struct Rsyslog {
    pub port: u16,
    probe_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// Whether rsyslogd is installed; without it the syslog tests skip (loudly) unless
/// `CH_AUDIT_REQUIRE_SERVERS=1`, as in CI.
pub fn available() -> bool {
    let found = Path::new("/usr/sbin/rsyslogd").exists();
    if !found {
        assert!(
            std::env::var("CH_AUDIT_REQUIRE_SERVERS").as_deref() != Ok("1"),
            "rsyslogd is missing: apt-get install rsyslog rsyslog-gnutls (see .ci/run)"
        );
        eprintln!("SKIPPED: rsyslogd not installed (apt-get install rsyslog rsyslog-gnutls)");
    }
    found
}

pub fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn data(file: &str) -> String {
    format!("{}/tests/it/data/{file}", env!("CARGO_MANIFEST_DIR"))
}

impl Rsyslog {
    pub async fn start(listen: Listen) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        let port = free_port(listen == Listen::Udp);
        let probe_port = free_port(false);
        let input = match listen {
            Listen::Tcp => format!(r#"input(type="imtcp" port="{port}" address="127.0.0.1")"#),
            Listen::Udp => format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" port=\"{port}\" address=\"127.0.0.1\")"
            ),
            Listen::Tls => format!(
                r#"input(type="imtcp" port="{port}" address="127.0.0.1" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")"#
            ),
        };
        let conf = format!(
            r#"global(workDirectory="{work}" maxMessageSize="1m"
  DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
# Direct: a message rsyslog has read is written before it reads the next, so a restart loses
# only what sits unread in the socket — the sender's business, which is what the tests check.
main_queue(queue.type="Direct")
module(load="imtcp")
# A plain TCP input only to know when rsyslog is up.
input(type="imtcp" port="{probe_port}" address="127.0.0.1")
{input}
template(name="parsed" type="list" option.jsonf="on") {{
  property(outname="raw" name="rawmsg" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="ts" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
action(type="omfile" file="{out}" template="parsed")
"#,
            work = dir.path().join("work").display(),
            ca = data("test-ca.pem"),
            cert = data("test-server.pem"),
            key = data("test-server.key"),
            out = dir.path().join("out.jsonl").display(),
        );
        std::fs::write(dir.path().join("rsyslog.conf"), conf).unwrap();
        let mut r = Rsyslog {
            port,
            probe_port,
            dir,
            child: None,
        };
        r.spawn().await;
        r
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out.jsonl")
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("rsyslogd.log"))
            .unwrap();
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(self.dir.path().join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("starting rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.probe_port))
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not come up: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The probe port is the first input; give the others a moment.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// rsyslogd's own output, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }

    /// SIGTERM and wait: rsyslog closes its connections and exits.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                // SAFETY: signalling our own child process by its id.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            let _ = child.kill().await;
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Every message written so far (complete lines only: rsyslogd may be mid-write).
    pub fn received(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(self.out()).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Waits until at least `n` messages arrived (and a moment more for stragglers).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if got.len() >= n {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return self.received();
            }
            if Instant::now() >= deadline {
                let ids: Vec<String> = got.iter().map(|r| r.event_id()).collect();
                panic!(
                    "only {} of {n} messages arrived; rsyslogd said: {}\nreceived: {ids:?}",
                    got.len(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
