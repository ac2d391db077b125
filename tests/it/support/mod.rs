//! Shared test helpers.

pub mod http;
