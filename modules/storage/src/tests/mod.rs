//! The storage's decisions, given its events and when a command, then events or a refusal, by
//! the kernel's harness over a domain of the storage alone; and its read model's fold.

mod decide;
mod fold;
