//! The thin binary: parse the command line, run the library, map errors to exit codes
//! (0 ok, 1 runtime failure, 2 bad config or usage).

use std::process::ExitCode;

use clap::Parser;
use clickhouse_audit_exporter::cli::{Cli, execute};
use clickhouse_audit_exporter::values::ConfigError;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err
                .chain()
                .any(|e| e.downcast_ref::<ConfigError>().is_some())
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// glibc gives every thread that allocates its own arena and keeps freed memory there: with
/// the decoder, SQLite and sink work on different blocking threads a 1 M-event backfill peaked
/// at 189 MiB RSS instead of 83 MiB (BENCHMARKS.md). Two arenas keep memory bounded at no
/// measurable speed cost.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
