//! The lab sessions' tests: given the academy's and the sessions' events, when a command, then
//! events or a rejection, decided by the kernel's harness over a domain of the academy and lab
//! sessions; the parsing of their commands, the serde of their events and stream ids, and the
//! `lab:` topic beside the academy's.

mod decide;
mod parse;
mod serde_round_trip;
mod topics;
