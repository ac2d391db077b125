//! The one integration test crate: a module per behaviour, helpers in `support/`.

mod cli;
mod config;
mod pipeline;
mod support;
