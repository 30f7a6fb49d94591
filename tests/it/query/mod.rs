//! The query API's reads against real Postgres and NATS, with read models written directly with
//! SQL (see `questlog_tests::query`).

mod admin;
mod leaderboard;
mod params;
mod players;
mod read_your_writes;
