//! stub
use crate::config::ConfigError;
use crate::format::Format;
use serde::Deserialize;
use std::time::Duration;
#[derive(Debug, Clone, Deserialize)]
pub struct ClickhouseConfig {
    pub url: String,
    #[serde(skip)]
    pub batch_timeout: Duration,
}
impl ClickhouseConfig {
    pub fn validate(&self, _i: usize, _n: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
pub struct ClickhouseSink;
#[async_trait::async_trait]
impl super::Sink for ClickhouseSink {
    async fn deliver(&mut self, _b: &[crate::event::Event]) -> Result<(), super::SinkError> {
        Ok(())
    }
}
impl ClickhouseSink {
    pub fn new(_c: &ClickhouseConfig, _n: &str, _f: Format) -> anyhow::Result<Self> {
        anyhow::bail!("todo")
    }
}
