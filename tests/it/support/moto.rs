//! A real S3 wire protocol for the object_store sink tests: moto in server mode (PyPI
//! `moto[server]`, installed by `.ci/run`) on a loopback port picked at run time, buckets made
//! with a plain `PUT /<bucket>` (moto accepts any credentials), objects read back with the
//! `object_store` crate itself (list + get).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use tokio::process::{Child, Command};

use super::wait::wait_until;

/// The credentials the tests give the sink (moto checks none of them).
pub const ACCESS_KEY_ID: &str = "AKIAMOTOTEST";
pub const SECRET_ACCESS_KEY: &str = "moto-secret-never-shown";

pub struct Moto {
    pub port: u16,
    _child: Child,
}

/// Whether `moto_server` is installed (else the test skips or fails: `support::require`).
pub fn available() -> bool {
    let found = std::process::Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    super::require::installed(found, "moto_server", "pip install 'moto[server]'")
}

impl Moto {
    /// Starts moto on a fresh port; again on another one if what answers there is not moto's
    /// S3 (another process took the port between picking and binding).
    pub async fn start() -> Moto {
        for _ in 0..3 {
            let mut m = Self::start_once().await;
            let ours = match reqwest::get(m.endpoint()).await {
                Ok(r) => r
                    .text()
                    .await
                    .is_ok_and(|b| b.contains("ListAllMyBucketsResult")),
                Err(_) => false,
            };
            if ours && m._child.try_wait().ok().flatten().is_none() {
                return m;
            }
        }
        panic!("moto_server exited right after starting, three times");
    }

    async fn start_once() -> Moto {
        let port = super::net::free_port(false);
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting moto_server");
        let m = Moto {
            port,
            _child: child,
        };
        let url = m.endpoint();
        wait_until("moto answering", Duration::from_secs(30), async || {
            reqwest::get(&url).await.ok().map(|_| ())
        })
        .await;
        m
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let r = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create bucket {bucket}: {r:?}");
    }

    /// The sink keys pointing at this server.
    pub fn sink_keys(&self) -> String {
        format!(
            "endpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"{ACCESS_KEY_ID}\"\nsecret_access_key = \"{SECRET_ACCESS_KEY}\"\ntimeout = \"10s\"\n",
            self.endpoint()
        )
    }

    /// A client of `bucket` for reading back.
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(self.endpoint())
                .with_region("us-east-1")
                .with_allow_http(true)
                .with_access_key_id(ACCESS_KEY_ID)
                .with_secret_access_key(SECRET_ACCESS_KEY)
                .build()
                .unwrap(),
        )
    }

    /// `bucket`'s multipart interface (to leave an upload open as a killed run would).
    pub fn multipart(&self, bucket: &str) -> Arc<dyn object_store::multipart::MultipartStore> {
        Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(self.endpoint())
                .with_region("us-east-1")
                .with_allow_http(true)
                .with_access_key_id(ACCESS_KEY_ID)
                .with_secret_access_key(SECRET_ACCESS_KEY)
                .build()
                .unwrap(),
        )
    }

    /// The multipart uploads open in `bucket` (S3 ListMultipartUploads), by key.
    pub async fn open_uploads(&self, bucket: &str) -> Vec<String> {
        let r = reqwest::Client::new()
            .get(format!("{}/{bucket}?uploads", self.endpoint()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "list uploads: {r:?}");
        let xml = r.text().await.unwrap();
        xml.split("<Upload>")
            .skip(1)
            .map(|u| {
                let key = u.split("<Key>").nth(1).unwrap_or_default();
                key.split("</Key>").next().unwrap_or_default().to_string()
            })
            .collect()
    }
}
