//! Every integration test in one binary: the real services on port 0, real Postgres, real NATS.

mod admin_cli;
mod archive;
mod chat;
mod commands;
mod faults;
mod identity;
mod labs;
mod presence;
mod read_side;
mod store;
mod subscribe;
mod time_travel;
mod verify;
