//! The integration test crate: one module per behaviour, shared helpers in `support/`.

mod support;

mod formats;
mod webhook;
