//! `callcenter`: see `callcenter --help`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: under load, glibc's malloc and free (with their arena locks) took about a tenth
/// of the server's CPU; see docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // `.env` is read when present; real environment variables win.
    let _ = dotenvy::dotenv();
    let cli = callcenter::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(callcenter::cli::run(cli))
}
