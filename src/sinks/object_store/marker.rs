//! The in-flight marker of the object_store sink (`<prefix>/_ch_audit_exporter/<sink>.inflight`):
//! the seq ranges of the batch being delivered, so a redelivery after a crash cuts the same
//! objects, and the multipart uploads under way (`upload::UploadLog`), so the next run aborts
//! the ones a killed run left instead of leaving their parts in the bucket.

use ::object_store::ObjectStoreExt;
use ::object_store::path::Path as StorePath;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ObjectStoreSink, upload};
use crate::sinks::SinkError;

/// What the marker object holds: the seq ranges of the batch being delivered, in order, and
/// the multipart uploads under way (aborted by the next run if this one dies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Inflight {
    pub(super) ranges: Vec<(i64, i64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) uploads: Vec<RecordedUpload>,
}

/// A multipart upload recorded before its first part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RecordedUpload {
    pub(super) path: String,
    pub(super) id: String,
}

impl ObjectStoreSink {
    pub(super) async fn read_marker(&self) -> Result<Inflight, SinkError> {
        match self.store.get(&self.marker).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(|e| self.failed(&e))?;
                Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    tracing::warn!(sink = %self.name, error = %e, "unreadable in-flight marker; ignoring it");
                    Inflight::default()
                }))
            }
            Err(::object_store::Error::NotFound { .. }) => Ok(Inflight::default()),
            Err(e) => Err(self.failed(&e)),
        }
    }

    pub(super) async fn write_marker(&mut self, inflight: Inflight) -> Result<(), SinkError> {
        if self.inflight.as_ref() == Some(&inflight) {
            return Ok(());
        }
        self.put_marker(&inflight)
            .await
            .map_err(|e| self.failed(&e))?;
        self.inflight = Some(inflight);
        Ok(())
    }

    async fn put_marker(&self, inflight: &Inflight) -> Result<(), ::object_store::Error> {
        let body = serde_json::to_vec(inflight).unwrap_or_default();
        self.store
            .put(&self.marker, bytes::Bytes::from(body).into())
            .await
            .map(|_| ())
    }

    /// The marker with the ranges in flight and the uploads under way now.
    async fn put_uploads(&self) -> Result<(), ::object_store::Error> {
        let uploads = self
            .uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let ranges = self
            .inflight
            .as_ref()
            .map(|i| i.ranges.clone())
            .unwrap_or_default();
        self.put_marker(&Inflight { ranges, uploads }).await
    }

    /// Aborts the multipart uploads a previous run recorded and did not end (it died
    /// mid-upload), so no parts stay in the bucket; an upload the store no longer knows
    /// (completed, or already aborted) is fine.
    pub(super) async fn abort_recorded(
        &self,
        recorded: &[RecordedUpload],
    ) -> Result<(), SinkError> {
        let Some(mp) = &self.multipart else {
            return Ok(());
        };
        for u in recorded {
            let path = StorePath::from(u.path.as_str());
            match mp.abort_multipart(&path, &u.id).await {
                Ok(()) => {
                    tracing::warn!(sink = %self.name, object = %u.path, "aborted a multipart upload an interrupted run left; the object is written again");
                    self.metrics
                        .sink_object_failures
                        .with_label_values(&[&self.name, "interrupted_upload"])
                        .inc();
                }
                Err(e) if gone(&e) => {}
                Err(e) => return Err(self.failed(&e)),
            }
        }
        Ok(())
    }

    pub(super) fn upload_target(&self) -> upload::Target<'_> {
        upload::Target {
            store: &self.store,
            recorded: self
                .multipart
                .as_ref()
                .map(|m| (m, self as &dyn upload::UploadLog)),
        }
    }
}

#[async_trait]
impl upload::UploadLog for ObjectStoreSink {
    async fn started(&self, path: &StorePath, id: &str) -> Result<(), ::object_store::Error> {
        self.uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(RecordedUpload {
                path: path.to_string(),
                id: id.to_string(),
            });
        self.put_uploads().await
    }

    async fn ended(&self, path: &StorePath, id: &str) -> Result<(), ::object_store::Error> {
        self.uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|u| !(u.id == id && u.path == path.as_ref()));
        self.put_uploads().await
    }
}

/// Whether aborting an upload failed only because the store no longer has it.
fn gone(e: &::object_store::Error) -> bool {
    let text = e.to_string();
    matches!(e, ::object_store::Error::NotFound { .. })
        || text.contains("NoSuchUpload")
        || text.contains("404")
}
