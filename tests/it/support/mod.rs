//! Helpers shared by the integration tests: an HTTP client for the emulator (`api`) and the
//! vendor OpenAPI spec as a JSON-Schema validator (`spec`).

#![allow(dead_code, reason = "each test module uses a different subset")]

pub mod api;
pub mod spec;
