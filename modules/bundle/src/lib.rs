//! The modules the `questlog` binary ships and their settings: the one place that names them, so
//! the kernel and the binary name none. A module is one crate and one line here (and a field of
//! [`ModuleArgs`] when it has settings).

use std::time::Duration;

use questlog_academy::Academy;
use questlog_accounts::Accounts;
use questlog_achievements::Achievements;
use questlog_chat::Chat;
use questlog_domain::App;
use questlog_lab_sessions::LabSessions;
use questlog_leaderboards::Leaderboards;
use questlog_presence::Presence;
use questlog_storage::Storage;

/// The settings of the modules that have some, read with `serve`'s (flags and environment).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModuleArgs {
    /// The presence module's settings.
    #[command(flatten)]
    pub presence: questlog_presence::PresenceArgs,

    /// The chat module's settings.
    #[command(flatten)]
    pub chat: questlog_chat::ChatArgs,

    /// The accounts module's settings.
    #[command(flatten)]
    pub accounts: questlog_accounts::AccountsArgs,
}

impl ModuleArgs {
    /// The per-sender limit on the commands modules mark rate-limited, configured from the
    /// module whose settings carry it (the chat's).
    pub fn sender_limiter(&self) -> questlog_command_api::SenderLimiter {
        questlog_command_api::SenderLimiter::new(self.chat.chat_per_minute, self.chat.chat_burst)
    }
}

/// The app with every module questlog ships registered, each with its default configuration
/// (for what needs the modules' commands, events, migrations or archive sections, not their jobs'
/// settings).
pub fn app() -> App {
    with(&Presence::default(), &Accounts::default(), None)
}

/// The app for a serving process: each module configured from `settings`, its jobs run every
/// `job_interval` when one is given (tests), else at their own pace.
///
/// # Errors
/// When a module's settings are out of range.
pub fn configured(settings: &ModuleArgs, job_interval: Option<Duration>) -> anyhow::Result<App> {
    Ok(with(
        &settings.presence.module(job_interval),
        &settings.accounts.module(job_interval)?,
        job_interval,
    ))
}

fn with(presence: &Presence, accounts: &Accounts, job_interval: Option<Duration>) -> App {
    let mut app = App::new();
    app.add_module(&Academy);
    // Before presence: an archive's working copies come before its presence times.
    app.add_module(&LabSessions);
    app.add_module(presence);
    app.add_module(&Chat);
    app.add_module(&Leaderboards {
        season_interval: job_interval,
    });
    // After the academy: it takes `grant_achievement` over, handing the academy's names back.
    app.add_module(&Achievements);
    app.add_module(accounts);
    app.add_module(&Storage);
    app
}
