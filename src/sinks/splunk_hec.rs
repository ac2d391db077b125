//! stub
use crate::config::ConfigError;
use crate::format::Format;
use crate::metrics::Metrics;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
#[derive(Debug, Clone, Deserialize)]
pub struct SplunkHecConfig {
    pub url: String,
    #[serde(skip)]
    pub batch_timeout: Duration,
}
impl SplunkHecConfig {
    pub fn validate(&self, _i: usize, _n: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
pub struct SplunkHecSink;
impl SplunkHecSink {
    pub fn new(
        _c: &SplunkHecConfig,
        _n: &str,
        _f: Format,
        _m: Arc<Metrics>,
    ) -> anyhow::Result<Box<dyn super::Sink>> {
        anyhow::bail!("todo")
    }
}
