//! Integration tests: one crate, a module per behaviour; `support` holds the shared fakes.

mod client;
mod support;
