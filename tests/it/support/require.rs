//! The one rule for tests that need something from outside the repository (a SIEM server, a
//! server module, a Python package, root, libfaketime): when it is missing the test skips with
//! one line naming itself and what is missing, unless `CH_AUDIT_REQUIRE_SERVERS=1` (CI, see
//! `.ci/run`), where it fails with that line instead. Each support module answers "is it
//! here?"; this module answers "then what?".

use std::path::{Path, PathBuf};

/// Set to `1` to turn every skip into a failure.
pub const REQUIRE_VAR: &str = "CH_AUDIT_REQUIRE_SERVERS";

/// Whether the environment asks for every external dependency to be present.
pub fn required() -> bool {
    std::env::var(REQUIRE_VAR).as_deref() == Ok("1")
}

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("this test")
        .to_string()
}

/// `true` when `found`; otherwise prints `skipping <test>: <missing>` and returns `false`, or
/// panics with that line when skips are not allowed. `missing` says what is absent and how to
/// get it, e.g. "rsyslogd not installed (apt-get install rsyslog)".
pub fn present(found: bool, missing: &str) -> bool {
    if found {
        return true;
    }
    let test = test_name();
    assert!(
        !required(),
        "{test}: {missing}, and {REQUIRE_VAR}=1 forbids skipping"
    );
    eprintln!("skipping {test}: {missing} (set {REQUIRE_VAR}=1 to fail instead)");
    false
}

/// [`present`] for a program or file: "`what` not installed (`install`)".
pub fn installed(found: bool, what: &str, install: &str) -> bool {
    present(found, &format!("{what} not installed ({install})"))
}

/// The first of `candidates` that exists.
pub fn first_existing<P: AsRef<Path>>(candidates: impl IntoIterator<Item = P>) -> Option<PathBuf> {
    candidates
        .into_iter()
        .map(|p| p.as_ref().to_path_buf())
        .find(|p| p.exists())
}
