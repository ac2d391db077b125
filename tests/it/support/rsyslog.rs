//! A real rsyslogd (Debian package `rsyslog`, plus `rsyslog-gnutls` for TLS) started per test
//! on a loopback port picked at run time: `rsyslogd -n -f <conf> -i <pidfile>` with imtcp/imudp,
//! writing every received message as one JSON line (rsyslog's own RFC 5424 parse: pri, msgid,
//! structured data, app-name, procid, hostname, timestamp, msg — plus the raw message) to a
//! file the test reads back. Can be stopped and started again on the same port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::net::{free_port, listening};
use super::require;
use super::wait::{poll_until, wait_until};

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
    udp: bool,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// Whether rsyslogd is installed (else the test skips or fails: `support::require`).
pub fn available() -> bool {
    require::installed(
        Path::new(RSYSLOGD).exists(),
        "rsyslogd",
        "apt-get install rsyslog",
    )
}

/// Whether rsyslogd and a TLS network stream driver are installed.
pub fn tls_available() -> bool {
    available()
        && require::installed(
            tls_driver().is_some(),
            "rsyslog's TLS module (lmnsd_gtls.so or lmnsd_ossl.so)",
            "apt-get install rsyslog-gnutls",
        )
}

/// The TLS stream driver rsyslog can load: `gtls` (rsyslog-gnutls) or `ossl`
/// (rsyslog-openssl), found as `lmnsd_<driver>.so` in a module directory.
fn tls_driver() -> Option<&'static str> {
    let mut dirs = vec![
        PathBuf::from("/usr/lib/rsyslog"),
        PathBuf::from("/usr/lib64/rsyslog"),
    ];
    // Debian's multiarch directories: /usr/lib/x86_64-linux-gnu/rsyslog and the like.
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(entries.flatten().map(|e| e.path().join("rsyslog")));
    }
    ["gtls", "ossl"].into_iter().find(|driver| {
        let module = format!("lmnsd_{driver}.so");
        require::first_existing(dirs.iter().map(|d| d.join(&module))).is_some()
    })
}

fn data(file: &str) -> String {
    format!("{}/tests/it/data/{file}", env!("CARGO_MANIFEST_DIR"))
}

impl Rsyslog {
    pub async fn start(listen: Listen) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        let port = free_port(listen == Listen::Udp);
        let input = match listen {
            Listen::Tcp => format!(
                "module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")"
            ),
            Listen::Udp => format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" port=\"{port}\" address=\"127.0.0.1\")"
            ),
            Listen::Tls => format!(
                r#"module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1" StreamDriver.Name="{driver}" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")"#,
                driver = tls_driver().expect("callers check tls_available()"),
            ),
        };
        let conf = format!(
            r#"global(workDirectory="{work}" maxMessageSize="1m"
  DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
# Direct: a message rsyslog has read is written before it reads the next, so a restart loses
# only what sits unread in the socket — the sender's business, which is what the tests check.
main_queue(queue.type="Direct")
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
            udp: listen == Listen::Udp,
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
        let child = Command::new(RSYSLOGD)
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
        // Up once its input socket is bound (asked of the kernel: a probe connection would
        // reach rsyslog, and an aborted TLS handshake would be logged).
        let (port, udp) = (self.port, self.udp);
        let log = self.dir.path().join("rsyslogd.log");
        let child = self.child.as_mut().expect("just spawned");
        wait_until(
            &format!("rsyslogd listening on port {port}"),
            Duration::from_secs(15),
            async || {
                if let Ok(Some(status)) = child.try_wait() {
                    let said = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("rsyslogd exited ({status}) before listening: {said}");
                }
                listening(port, udp).then_some(())
            },
        )
        .await;
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
        let enough = poll_until(Duration::from_secs(20), async || {
            (self.received().len() >= n).then_some(())
        })
        .await;
        if enough.is_none() {
            let got = self.received();
            let ids: Vec<String> = got.iter().map(|r| r.event_id()).collect();
            panic!(
                "only {} of {n} messages arrived within 20 s; rsyslogd said: {}\nreceived: {ids:?}",
                got.len(),
                self.log()
            );
        }
        // A moment more, so that extra copies show up for the callers' duplicate checks: an
        // absence can only be watched for, not waited on.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.received()
    }
}
