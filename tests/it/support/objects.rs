//! Reading an object store back the way a data-lake reader would, for the object_store sink
//! tests and the bench: list a prefix, get each object, gunzip it, split it into lines (the
//! sink's in-flight marker left out).

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

/// One object as read back.
pub struct Object {
    /// Stored (compressed) size.
    pub size: u64,
    pub lines: Vec<String>,
}

/// Every object under `prefix` (all when `None`) with its stored size and bytes, by name, the
/// sink's in-flight marker left out.
pub async fn bodies(
    store: &Arc<dyn ObjectStore>,
    prefix: Option<&str>,
) -> BTreeMap<String, (u64, bytes::Bytes)> {
    let prefix = prefix.map(object_store::path::Path::from);
    let mut out = BTreeMap::new();
    let mut list = store.list(prefix.as_ref());
    while let Some(meta) = list.next().await {
        let meta = meta.unwrap();
        let name = meta.location.to_string();
        if name.contains("/_ch_audit_exporter/") {
            continue;
        }
        let body = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        out.insert(name, (meta.size, body));
    }
    out
}

/// Every gzip NDJSON object under `prefix`, by name.
pub async fn read_all(store: &Arc<dyn ObjectStore>, prefix: &str) -> BTreeMap<String, Object> {
    let mut out = BTreeMap::new();
    for (name, (size, body)) in bodies(store, Some(prefix)).await {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{name} is gzip: {e}"));
        let lines = text.lines().map(str::to_string).collect();
        out.insert(name, Object { size, lines });
    }
    out
}
