//! OCSF records as Parquet for Security Lake: the Arrow schema of each OCSF class our `ocsf`
//! formatter emits (src/format/ocsf/: nested structs and lists as OCSF defines them, `time` a
//! `long` of epoch milliseconds as OCSF's `timestamp_t`), the columns of a chunk of records
//! built from their JSON, and one object written as a zstd Parquet file.
//!
//! Only attributes OCSF itself leaves open are JSON text: `unmapped` (the verbatim activity),
//! `raw_data`, and `entity.data` / `entity_result.data` (OCSF `json_t`).

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;

/// Rows built into one Arrow batch at a time (memory per object stays small).
pub const CHUNK_ROWS: usize = 1024;

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}
fn long(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
fn obj(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}
fn list(name: &str, item: DataType) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", item, true))),
        true,
    )
}

/// OCSF `user`, as `push_user` writes it.
fn user(name: &str) -> Field {
    obj(
        name,
        vec![text("uid"), text("name"), int("type_id"), text("type")],
    )
}

/// OCSF `managed_entity` (`data` is `json_t`).
fn entity(name: &str) -> Field {
    obj(
        name,
        vec![text("type"), text("uid"), text("name"), text("data")],
    )
}

fn resources() -> Field {
    list(
        "resources",
        DataType::Struct(Fields::from(vec![text("uid"), text("type")])),
    )
}

/// The schema of OCSF class `class_uid` as our formatter writes it: the base event
/// attributes, then the class's own, then `unmapped` / `raw_data`.
pub fn schema(class_uid: i64) -> SchemaRef {
    let mut f = vec![
        int("class_uid"),
        text("class_name"),
        int("category_uid"),
        text("category_name"),
        int("activity_id"),
        text("activity_name"),
        long("type_uid"),
        text("type_name"),
        int("severity_id"),
        text("severity"),
        int("status_id"),
        text("status"),
        long("time"),
        text("message"),
        obj(
            "metadata",
            vec![
                text("version"),
                obj("product", vec![text("name"), text("vendor_name")]),
                text("uid"),
                text("event_code"),
                text("original_time"),
                long("logged_time"),
                text("log_name"),
                list("profiles", DataType::Utf8),
            ],
        ),
        obj(
            "cloud",
            vec![text("provider"), obj("account", vec![text("uid")])],
        ),
    ];
    let actor = || obj("actor", vec![user("user")]);
    let endpoint = || obj("src_endpoint", vec![text("ip")]);
    let http = || obj("http_request", vec![text("user_agent")]);
    match class_uid {
        // API Activity.
        6003 => f.extend([
            actor(),
            endpoint(),
            http(),
            obj(
                "api",
                vec![text("operation"), obj("service", vec![text("name")])],
            ),
            resources(),
        ]),
        // Account Change, Authentication.
        3001 | 3002 => f.extend([actor(), endpoint(), http(), user("user")]),
        // User Access Management.
        3005 => f.extend([
            actor(),
            endpoint(),
            http(),
            user("user"),
            list("privileges", DataType::Utf8),
        ]),
        // Entity Management (activities and inventory changes).
        3004 => f.extend([
            actor(),
            endpoint(),
            http(),
            entity("entity"),
            entity("entity_result"),
        ]),
        // Detection Finding.
        2004 => f.extend([
            obj(
                "finding_info",
                vec![text("uid"), text("title"), list("types", DataType::Utf8)],
            ),
            resources(),
        ]),
        _ => {}
    }
    f.extend([text("unmapped"), text("raw_data")]);
    Arc::new(Schema::new(f))
}

/// A column of `values` (one per row, `None` when the row lacks the attribute) as `ty`. A
/// value of another JSON type than the column's is null, except text columns, which keep any
/// non-string value as its JSON text (`unmapped`, `data`).
fn column(ty: &DataType, values: &[Option<&Value>]) -> Result<ArrayRef, ArrowError> {
    Ok(match ty {
        DataType::Utf8 => Arc::new(StringArray::from_iter(values.iter().map(|v| {
            v.filter(|v| !v.is_null()).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        }))),
        DataType::Int32 => Arc::new(Int32Array::from_iter(values.iter().map(|v| {
            v.and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
        }))),
        DataType::Int64 => Arc::new(Int64Array::from_iter(
            values.iter().map(|v| v.and_then(Value::as_i64)),
        )),
        DataType::Struct(fields) => {
            let objects: Vec<Option<&serde_json::Map<String, Value>>> = values
                .iter()
                .map(|v| v.and_then(Value::as_object))
                .collect();
            let children = fields
                .iter()
                .map(|f| {
                    let sub: Vec<Option<&Value>> = objects
                        .iter()
                        .map(|o| o.and_then(|o| o.get(f.name())))
                        .collect();
                    column(f.data_type(), &sub)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let nulls = NullBuffer::from(objects.iter().map(Option::is_some).collect::<Vec<_>>());
            Arc::new(StructArray::try_new(fields.clone(), children, Some(nulls))?)
        }
        DataType::List(item) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut flat: Vec<Option<&Value>> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                let items = v.and_then(Value::as_array);
                valid.push(items.is_some());
                flat.extend(items.into_iter().flatten().map(Some));
                let end = i32::try_from(flat.len())
                    .map_err(|_| ArrowError::ComputeError("list too long".to_string()))?;
                offsets.push(end);
            }
            let child = column(item.data_type(), &flat)?;
            Arc::new(ListArray::try_new(
                item.clone(),
                OffsetBuffer::new(offsets.into()),
                child,
                Some(NullBuffer::from(valid)),
            )?)
        }
        other => {
            return Err(ArrowError::NotYetImplemented(format!(
                "column type {other}"
            )));
        }
    })
}

/// The rows of `records` (OCSF JSON objects) as an Arrow batch of `schema`; attributes the
/// schema does not name are left out (they cannot occur: the schema unit tests walk every
/// class our formatter emits).
pub fn batch(schema: &SchemaRef, records: &[Value]) -> Result<RecordBatch, ArrowError> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let values: Vec<Option<&Value>> = records.iter().map(|r| r.get(f.name())).collect();
            column(f.data_type(), &values)
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// Writer settings as Security Lake's custom-source guidance asks: zstd inside the file,
/// data pages of at most 1 MiB (uncompressed), row groups of at most `row_group_rows` rows.
pub fn properties(row_group_rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_data_page_size_limit(1024 * 1024)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_max_row_group_bytes(Some(128 * 1024 * 1024))
        .set_created_by(format!(
            "clickhouse-audit-exporter {}",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
}

/// One Parquet file being written in memory, fed chunk by chunk.
pub struct ParquetFile {
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
}

impl ParquetFile {
    pub fn new(class_uid: i64, row_group_rows: usize) -> Result<ParquetFile, ArrowError> {
        let schema = schema(class_uid);
        let writer =
            ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties(row_group_rows)))
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        Ok(ParquetFile { schema, writer })
    }

    pub fn write(&mut self, records: &[Value]) -> Result<(), ArrowError> {
        let b = batch(&self.schema, records)?;
        self.writer
            .write(&b)
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))
    }

    /// The whole file's bytes.
    pub fn finish(self) -> Result<Vec<u8>, ArrowError> {
        self.writer
            .into_inner()
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))
    }
}

#[cfg(test)]
#[path = "ocsf_parquet_tests.rs"]
mod tests;
