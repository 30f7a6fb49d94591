//! The query API's tests against real Postgres and NATS: one database and one NATS prefix per
//! test, read models written directly with SQL, the router spoken to over HTTP.

mod admin;
mod harness;
mod leaderboard;
mod params;
mod players;
mod read_your_writes;
