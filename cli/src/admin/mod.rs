//! The admin commands of the `questlog` binary, as library functions that write their output to
//! any `Write`, so that tests call them as the binary does.

pub mod archive;
pub mod inspect;
pub mod rebuild;
pub mod repair;

pub use questlog_command_api::admin::output;
