//! stub
use crate::config::ConfigError;
use crate::format::Format;
use serde::Deserialize;
use std::time::Duration;
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaConfig {
    pub url: String,
    #[serde(skip)]
    pub batch_timeout: Duration,
}
impl KafkaConfig {
    pub fn validate(&self, _i: usize, _n: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
pub struct KafkaSink;
impl KafkaSink {
    pub fn new(_c: &KafkaConfig, _n: &str, _f: Format) -> anyhow::Result<Box<dyn super::Sink>> {
        anyhow::bail!("todo")
    }
}
