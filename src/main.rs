//! The thin binary: parse the command line, run the library, map errors to exit codes
//! (0 ok, 1 runtime failure, 2 bad config or usage).

use std::process::ExitCode;

use clap::Parser;
use clickhouse_audit_exporter::cli::{Cli, execute};
use clickhouse_audit_exporter::values::ConfigError;

fn main() -> ExitCode {
    clickhouse_audit_exporter::footprint::tune_malloc();
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
