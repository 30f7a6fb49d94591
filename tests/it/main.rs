//! Every integration test in one binary: the real services on port 0, real Postgres, real NATS.

mod commands;
mod identity;
mod read_side;
mod store;
mod subscribe;
