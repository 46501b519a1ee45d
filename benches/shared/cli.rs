//! The command line of the throughput and invalidation tools. Included with
//! `#[path]` into each.

use std::process::ExitCode;

/// What a tool does when its arguments do not parse: the message (none for
/// `--help`) and the usage on stderr; success for `--help`, 2 otherwise.
pub fn usage_error(message: &str, usage: &str) -> ExitCode {
    if !message.is_empty() {
        eprintln!("{message}");
    }
    eprintln!("{usage}");
    if message.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
