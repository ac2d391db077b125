//! The one integration-test crate (ripgrep style): a module per behaviour, shared helpers in
//! `support/`.

mod emulator;
mod support;
