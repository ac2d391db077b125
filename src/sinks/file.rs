//! `file` sink: NDJSON appended to `path` (parent directories created, mode 0640), `fsync` per
//! batch unless `fsync = false`, size-based rotation (`path.1` … `path.<max_files>`), and reopen
//! on SIGHUP or when the file was moved or deleted under us (logrotate without a signal).
//! A batch is all-or-nothing: after a failed write the file is cut back to its previous length,
//! so a retry never leaves half a line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;

use super::stdout::encode_ndjson;
use super::{Sink, SinkError};
use crate::event::Event;
use crate::format::Format;
use crate::values::{ConfigError, KeyPath};

/// `type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The NDJSON file to append to.
    pub path: PathBuf,
    /// Rotate before a batch would grow the file past this size (`"100MiB"`); unset = never.
    #[serde(default, deserialize_with = "de_opt_size")]
    pub max_bytes: Option<u64>,
    /// Rotated files kept (`path.1` is the newest).
    #[serde(default = "default_max_files")]
    pub max_files: u32,
    /// `fsync` after every batch (durability); `false` trades it for speed.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
}

fn default_max_files() -> u32 {
    5
}
fn default_fsync() -> bool {
    true
}

fn de_opt_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    crate::values::de_size(d).map(Some)
}

impl super::SinkSpec for FileConfig {
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(at.err("path", "\"\"", "must be a file path"));
        }
        if self.max_bytes == Some(0) {
            return Err(at.err(
                "max_bytes",
                0,
                "must be positive (or unset to never rotate)",
            ));
        }
        if self.max_bytes.is_some() && self.max_files == 0 {
            return Err(at.err("max_files", 0, "keep at least one rotated file"));
        }
        Ok(())
    }

    fn build(&self, ctx: super::BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(FileSink::open(self, ctx.format)?))
    }
}

struct Writer {
    cfg: FileConfig,
    file: Option<File>,
    /// (device, inode) of the open file, to notice it was moved or deleted.
    identity: (u64, u64),
    size: u64,
    reopen: bool,
}

pub struct FileSink {
    format: Format,
    buf: Vec<u8>,
    writer: Arc<Mutex<Writer>>,
}

impl FileSink {
    /// Opens (creating) the file; fails early if the path cannot be written.
    pub fn open(cfg: &FileConfig, format: Format) -> anyhow::Result<FileSink> {
        let mut writer = Writer {
            cfg: cfg.clone(),
            file: None,
            identity: (0, 0),
            size: 0,
            reopen: false,
        };
        if let Err(e) = writer.ensure_open() {
            // Not fatal: the path may become writable later (the outbox keeps the events).
            tracing::warn!(path = %cfg.path.display(), error = %e, "file sink cannot open its file yet; will retry");
        }
        Ok(FileSink {
            format,
            buf: Vec::with_capacity(256 * 1024),
            writer: Arc::new(Mutex::new(writer)),
        })
    }
}

impl Writer {
    fn open_file(path: &Path) -> std::io::Result<File> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
    }

    fn ensure_open(&mut self) -> std::io::Result<()> {
        if self.file.is_some() && !self.reopen && self.still_ours() {
            return Ok(());
        }
        if self.file.is_some() && !self.reopen {
            tracing::info!(path = %self.cfg.path.display(), "the output file was moved or deleted under the sink (logrotate without a signal?): opening a new one");
        }
        self.file = None;
        self.reopen = false;
        let file = Self::open_file(&self.cfg.path)?;
        let meta = file.metadata()?;
        self.identity = (meta.dev(), meta.ino());
        self.size = meta.len();
        self.file = Some(file);
        Ok(())
    }

    /// True when `path` still names the file we hold open.
    fn still_ours(&self) -> bool {
        match std::fs::metadata(&self.cfg.path) {
            Ok(m) => (m.dev(), m.ino()) == self.identity,
            Err(_) => false,
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let path = &self.cfg.path;
        let name = |n: u32| {
            let mut s = path.as_os_str().to_owned();
            s.push(format!(".{n}"));
            PathBuf::from(s)
        };
        let max = self.cfg.max_files;
        let _ = std::fs::remove_file(name(max));
        for n in (1..max).rev() {
            let from = name(n);
            if from.exists() {
                std::fs::rename(&from, name(n + 1))?;
            }
        }
        std::fs::rename(path, name(1))?;
        self.ensure_open()
    }

    fn write_batch(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.ensure_open()?;
        if let Some(max) = self.cfg.max_bytes
            && self.size > 0
            && self.size + bytes.len() as u64 > max
        {
            self.rotate()?;
        }
        let fsync = self.cfg.fsync;
        let before = self.size;
        let file = self.file.as_mut().expect("ensure_open set the file");
        let res = file
            .write_all(bytes)
            .and_then(|()| if fsync { file.sync_data() } else { Ok(()) });
        match res {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut a partial batch off so a retry starts on a line boundary.
                let _ = file.set_len(before);
                self.reopen = true;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        encode_ndjson(self.format, batch, &mut self.buf);
        let bytes = std::mem::take(&mut self.buf);
        let writer = self.writer.clone();
        let (bytes, res) = tokio::task::spawn_blocking(move || {
            let res = writer
                .lock()
                .map_err(|_| std::io::Error::other("file sink lock poisoned"))
                .and_then(|mut w| {
                    w.write_batch(&bytes).map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("writing {}: {e}", w.cfg.path.display()),
                        )
                    })
                });
            (bytes, res)
        })
        .await
        .map_err(|e| SinkError::transient(format!("file writer task failed: {e}")))?;
        self.buf = bytes;
        res.map_err(|e| SinkError::transient(e.to_string()))
    }

    fn reopen(&mut self) {
        if let Ok(mut w) = self.writer.lock() {
            w.reopen = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use std::os::unix::fs::PermissionsExt;

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event {
                seq: i as i64 + 1,
                event_id: format!("activity:o:{i}"),
                kind: EventKind::Activity,
                org_id: "o".into(),
                occurred_at: "2025-01-01T00:00:00Z".into(),
                observed_at: "2025-01-01T00:00:01Z".into(),
                payload: format!("{{\"id\":\"{i}\",\"note\":\"line\\nbreak\"}}"),
            })
            .collect()
    }

    fn cfg(path: PathBuf) -> FileConfig {
        FileConfig {
            path,
            max_bytes: None,
            max_files: 3,
            fsync: true,
        }
    }

    fn lines(path: &Path) -> usize {
        std::fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn appends_ndjson_creating_directories_with_mode_0640() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/audit.ndjson");
        let mut sink = FileSink::open(&cfg(path.clone()), Format::Json).unwrap();
        sink.deliver(&events(3)).await.unwrap();
        sink.deliver(&events(2)).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().count(),
            5,
            "one line per event, embedded newlines escaped"
        );
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[tokio::test]
    async fn rotates_by_size_keeping_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.ndjson");
        let mut c = cfg(path.clone());
        c.max_bytes = Some(400);
        let mut sink = FileSink::open(&c, Format::Json).unwrap();
        for _ in 0..6 {
            sink.deliver(&events(2)).await.unwrap();
        }
        let rotated = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
        assert!(rotated(1).exists() && rotated(3).exists() && !rotated(4).exists());
        assert!(std::fs::metadata(&path).unwrap().len() <= 400);
        assert_eq!(
            lines(&path) + (1..=3).map(|n| lines(&rotated(n))).sum::<usize>(),
            8,
            "max_files = 3 kept, oldest dropped"
        );
    }

    #[tokio::test]
    async fn reopens_when_the_file_is_moved_away_or_on_sighup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.ndjson");
        let mut sink = FileSink::open(&cfg(path.clone()), Format::Json).unwrap();
        sink.deliver(&events(1)).await.unwrap();
        // logrotate without a signal: the file is renamed; the next batch starts a new file.
        std::fs::rename(&path, dir.path().join("old")).unwrap();
        sink.deliver(&events(2)).await.unwrap();
        assert_eq!((lines(&dir.path().join("old")), lines(&path)), (1, 2));
        // deleted under us
        std::fs::remove_file(&path).unwrap();
        sink.deliver(&events(1)).await.unwrap();
        assert_eq!(lines(&path), 1);
        sink.reopen();
        sink.deliver(&events(1)).await.unwrap();
        assert_eq!(lines(&path), 2);
    }

    #[tokio::test]
    async fn an_unwritable_path_is_a_transient_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let path = dir.path().join("file/audit.ndjson");
        let mut sink = FileSink::open(&cfg(path.clone()), Format::Json).unwrap();
        let err = sink.deliver(&events(1)).await.unwrap_err();
        assert!(matches!(err, SinkError::Transient { .. }), "{err}");
        assert!(err.to_string().contains("file/audit.ndjson"), "{err}");
    }
}
