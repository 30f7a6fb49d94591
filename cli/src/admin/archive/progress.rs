//! The progress bar of an export or import: on stderr, and only for a person watching a terminal.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `len` events, hidden unless `wanted` and stderr is a terminal (so scripts, logs
/// and tests stay quiet).
pub fn bar(wanted: bool, len: u64, message: &'static str) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events ({eta})",
    )
    .expect("a valid template");
    ProgressBar::new(len)
        .with_style(style)
        .with_message(message)
}
