//! The fault matrix (issue 8): each row drives the real binary against the emulator and local
//! receivers, injects one fault, and asserts that every activity the API holds is delivered at
//! least once, that duplicates stay bounded, that the daemon is ready again afterwards, and that
//! the fault left a specific metric or error behind. README's "Guarantees" lists every row with
//! its test. `CH_AUDIT_FAULTS_LONG=1` stretches the timed rows (random errors for a minute,
//! receivers down for minutes); the default lengths keep CI within its budget.

mod api;
mod process;
mod sinks;
mod window;

use std::time::Duration;

/// The long variants, for a machine with time to spare.
pub fn long() -> bool {
    std::env::var_os("CH_AUDIT_FAULTS_LONG").is_some_and(|v| v == "1")
}

/// `short` normally, `long` with `CH_AUDIT_FAULTS_LONG=1`.
pub fn span(short: Duration, long_: Duration) -> Duration {
    if long() { long_ } else { short }
}
