//! Every integration test in one binary: the real services on port 0, real Postgres, real NATS.

mod accounts;
mod admin_cli;
mod archive;
mod chat;
mod clusters;
mod commands;
mod cors;
mod faults;
mod guestbook;
mod hostile;
mod identity;
mod isolation;
mod labs;
mod leaderboards;
mod lineage;
mod metrics;
mod modules;
mod presence;
mod query;
mod read_side;
mod store;
mod subscribe;
mod tickets;
mod time_travel;
mod verify;
