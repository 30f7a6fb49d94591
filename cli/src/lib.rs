//! The `questlog` binary as a library: configuration, the application, and the admin commands,
//! so that tests drive exactly what the binary runs.

pub mod admin;
pub mod app;
pub mod config;
pub mod lineage;
pub mod metrics;
pub mod modules;
pub mod openapi;
pub mod secret;

pub use app::Application;
