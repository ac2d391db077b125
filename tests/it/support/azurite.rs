//! A real Azure Blob wire protocol for the object_store sink tests: Azurite (npm `azurite`,
//! installed by `.ci/run`) on a loopback port picked at run time with its well-known dev
//! account, which checks Shared Key signatures (so a wrong key is refused like Azure does).
//! Containers are made with one Shared Key signed `PUT ?restype=container`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use object_store::ObjectStore;
use sha2::Sha256;
use tokio::process::{Child, Command};

use super::wait::wait_until;

/// Azurite's published development account and key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    pub port: u16,
    _dir: tempfile::TempDir,
    _child: Child,
}

/// Whether `azurite-blob` is installed (else the test skips or fails: `support::require`).
pub fn available() -> bool {
    let found = std::process::Command::new("azurite-blob")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    super::require::installed(found, "azurite-blob", "npm install -g azurite")
}

impl Azurite {
    /// Starts Azurite on a fresh port; again on another one if what answers there is not
    /// Azurite (another process took the port between picking and binding).
    pub async fn start() -> Azurite {
        for _ in 0..3 {
            let mut a = Self::start_once().await;
            let ours = reqwest::get(a.endpoint()).await.is_ok_and(|r| {
                r.headers()
                    .get("server")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("Azurite"))
            });
            if ours && a._child.try_wait().ok().flatten().is_none() {
                return a;
            }
        }
        panic!("azurite-blob exited right after starting, three times");
    }

    async fn start_once() -> Azurite {
        let port = super::net::free_port(false);
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("azurite-blob")
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .args(["--skipApiVersionCheck", "--loose", "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting azurite-blob");
        wait_until("azurite listening", Duration::from_secs(30), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Azurite {
            port,
            _dir: dir,
            _child: child,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    pub async fn create_container(&self, name: &str) {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&STANDARD.decode(KEY).unwrap()).unwrap();
        mac.update(to_sign.as_bytes());
        let sig = STANDARD.encode(mac.finalize().into_bytes());
        let r = reqwest::Client::new()
            .put(format!("{}/{name}?restype=container", self.endpoint()))
            .header("x-ms-date", date)
            .header("x-ms-version", version)
            .header("Content-Length", "0")
            .header("Authorization", format!("SharedKey {ACCOUNT}:{sig}"))
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(
            status.is_success(),
            "create container {name}: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// The sink keys pointing at this server with `key`.
    pub fn sink_keys(&self, key: &str) -> String {
        format!(
            "endpoint = \"{}\"\naccount = \"{ACCOUNT}\"\naccess_key = \"{key}\"\ntimeout = \"10s\"\n",
            self.endpoint()
        )
    }

    /// A client of `container` for reading back.
    pub fn store(&self, container: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            object_store::azure::MicrosoftAzureBuilder::new()
                .with_account(ACCOUNT)
                .with_access_key(KEY)
                .with_container_name(container)
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .build()
                .unwrap(),
        )
    }
}
