//! Standard output for the commands, with write errors handled instead of panicking as
//! `println!` does.
//!
//! A closed pipe (`steward get | head -1`) ends the process quietly with status 141, the
//! status a shell reports for `git` or `kubectl` killed by SIGPIPE (128 + 13), so scripts
//! that use `set -o pipefail` see the same result as with those tools. The crate forbids
//! `unsafe`, so SIGPIPE keeps Rust's default (ignored) and the write returns
//! [`io::ErrorKind::BrokenPipe`] instead. Any other write error, such as a full disk, is a
//! failure (exit status 1).

use std::fmt::Display;
use std::io::{self, Write};

use super::CliError;

/// Exit status after a write to a closed pipe: 128 + SIGPIPE (13).
pub const BROKEN_PIPE_STATUS: i32 = 141;

/// Writes `text` and a newline to standard output and flushes it.
pub fn println(text: impl Display) -> Result<(), CliError> {
    write_stdout(format_args!("{text}\n"))
}

/// Writes `text` to standard output as is and flushes it.
pub fn print(text: impl Display) -> Result<(), CliError> {
    write_stdout(format_args!("{text}"))
}

fn write_stdout(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    let result = stdout.write_fmt(args).and_then(|()| stdout.flush());
    result.map_err(handle_write_error)
}

/// Ends the process on a closed pipe, or turns any other write error into a failure.
fn handle_write_error(error: io::Error) -> CliError {
    if error.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE_STATUS);
    }
    CliError::failure(anyhow::anyhow!(
        "failed to write to standard output: {error}"
    ))
}
