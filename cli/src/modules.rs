//! The modules this binary runs. A module is one crate and one line here; its configuration
//! comes from the binary's.

use questlog_academy::Academy;
use questlog_chat::Chat;
use questlog_domain::App;
use questlog_presence::Presence;
use questlog_storage::Storage;

use crate::app::Hooks;
use crate::config::ServeArgs;

/// The app with every module questlog ships registered, each with its default configuration
/// (for what needs the modules' commands, events, migrations or archive sections, not their jobs'
/// settings).
pub fn app() -> App {
    with(&Presence::default())
}

/// The app for a serving process: each module configured from `serve` (and the test hooks).
pub fn configured(serve: &ServeArgs, hooks: &Hooks) -> App {
    with(&serve.presence.module(hooks.job_interval))
}

fn with(presence: &Presence) -> App {
    let mut app = App::new();
    app.add_module(&Academy);
    // After the academy: its archive sections (working copies) come before presence times.
    app.add_module(presence);
    app.add_module(&Chat);
    app.add_module(&Storage);
    app
}
