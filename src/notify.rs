//! systemd's `sd_notify` protocol (sd_notify(3)) without libsystemd: newline-separated
//! `KEY=VALUE` lines in one datagram to the `AF_UNIX` socket named by `$NOTIFY_SOCKET` (a path,
//! or `@name` in the abstract namespace). The daemon sends `READY=1` once it serves, `STATUS=`
//! whenever readiness changes, `RELOADING=1` … `READY=1` around a SIGHUP reload, `STOPPING=1`
//! on shutdown, and `WATCHDOG=1` every half `$WATCHDOG_USEC` while every task is alive
//! (`daemon::supervise`). Without `$NOTIFY_SOCKET` (not started by systemd with `Type=notify`)
//! every call is a no-op. Sending never blocks: a datagram the manager cannot take at once is
//! dropped with a DEBUG line (the next status or ping supersedes it).

use std::ffi::OsStr;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, and the watchdog period systemd asked for.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// `$WATCHDOG_USEC`, when it is meant for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`; disabled when unset (or
    /// unusable, with a warning).
    pub fn from_env() -> Notifier {
        let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::disabled();
        };
        let watchdog = watchdog_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        match Notifier::connect(&socket, watchdog) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(socket = ?socket, error = %e, "NOTIFY_SOCKET is unusable; not notifying systemd");
                Notifier::disabled()
            }
        }
    }

    /// Notifies the socket `socket` (`/path` or `@abstract`); `watchdog` is the full period.
    pub fn connect(socket: &OsStr, watchdog: Option<Duration>) -> std::io::Result<Notifier> {
        let addr = parse_address(socket)?;
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok(Notifier {
            target: Some((sock, addr)),
            watchdog,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1`: half the period systemd enforces (sd_watchdog_enabled(3)).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref()?;
        self.watchdog.map(|w| w / 2)
    }

    /// Sends `state` (newline-separated assignments); false when not sent.
    pub fn send(&self, state: &str) -> bool {
        let Some((sock, addr)) = &self.target else {
            return false;
        };
        match sock.send_to_addr(state.as_bytes(), addr) {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, state, "sd_notify datagram not sent");
                false
            }
        }
    }

    /// `READY=1` with a status line: start-up (or a reload) is complete.
    pub fn ready(&self, status: &str) -> bool {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// A free-form status line (`systemctl status` shows it).
    pub fn status(&self, status: &str) -> bool {
        self.send(&format!("STATUS={}", one_line(status)))
    }

    /// A reload began; `ready` ends it.
    pub fn reloading(&self) -> bool {
        self.send("RELOADING=1\nSTATUS=reloading the configuration")
    }

    /// Shutdown began.
    pub fn stopping(&self) -> bool {
        self.send("STOPPING=1\nSTATUS=stopping: finishing the batches in hand")
    }

    /// The keep-alive ping; nothing unless systemd asked for one (`$WATCHDOG_USEC`).
    pub fn watchdog(&self) -> bool {
        self.watchdog.is_some() && self.send("WATCHDOG=1")
    }
}

/// A status value must stay on one line: each line of a datagram is an assignment.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fn parse_address(socket: &OsStr) -> std::io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(socket),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(b'@') => {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(&bytes[1..])
        }
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "expected an absolute path or @abstract-name (vsock: is not supported)",
        )),
    }
}

/// The watchdog period from `$WATCHDOG_USEC`, if set, positive, and (when `$WATCHDOG_PID` is
/// set) meant for `pid` — as sd_watchdog_enabled(3) decides.
pub fn watchdog_from(usec: Option<&str>, watchdog_pid: Option<&str>, pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(p) = watchdog_pid
        && p.trim().parse::<u32>().ok() != Some(pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_reach_a_path_socket_one_datagram_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::connect(path.as_os_str(), Some(Duration::from_secs(30))).unwrap();
        assert!(n.is_enabled());
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(15)));
        assert!(n.ready("serving\n2 orgs"));
        assert_eq!(recv(&server), "READY=1\nSTATUS=serving 2 orgs");
        assert!(n.watchdog());
        assert_eq!(recv(&server), "WATCHDOG=1");
        assert!(n.reloading());
        assert!(recv(&server).starts_with("RELOADING=1\n"));
        assert!(n.stopping());
        assert!(recv(&server).starts_with("STOPPING=1\n"));
        drop(server);
        assert!(
            !n.status("nobody listens"),
            "a vanished socket is not an error"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_sockets_are_named_with_an_at_sign() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ch-audit-notify-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::connect(OsStr::new(&format!("@{name}")), None).unwrap();
        assert_eq!(n.watchdog_interval(), None);
        assert!(!n.watchdog(), "no ping unless systemd asked for one");
        assert!(n.status("hello"));
        assert_eq!(recv(&server), "STATUS=hello");
    }

    #[test]
    fn disabled_and_unusable_sockets_send_nothing() {
        let n = Notifier::disabled();
        assert!(!n.ready("x") && !n.is_enabled() && n.watchdog_interval().is_none());
        assert!(Notifier::connect(OsStr::new("vsock:2:1234"), None).is_err());
        assert!(Notifier::connect(OsStr::new("relative/path"), None).is_err());
    }

    #[test]
    fn the_watchdog_period_follows_sd_watchdog_enabled() {
        assert_eq!(
            watchdog_from(Some("500000"), None, 7),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            watchdog_from(Some("500000"), Some("7"), 7),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            watchdog_from(Some("500000"), Some("8"), 7),
            None,
            "meant for another process"
        );
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
    }
}
