//! Shared test support: fixed event sets (`fixtures`) and a local HTTP receiver (`receiver`).

pub mod fixtures;
pub mod receiver;
