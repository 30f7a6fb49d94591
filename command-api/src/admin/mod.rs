//! Admin commands modules add to the binary's command line (`questlog <name> …`), beside the
//! kernel's own (history, state, stats, verify, replay, export, import, repair), and how every
//! admin command prints ([`output`]).
//!
//! A module registers a [`clap::Command`] and what runs it with
//! [`AdminCommandsExt::add_admin_command`]; the binary adds every registered command to its own
//! and, when one is chosen, brings the database's schema up to date and runs it with an
//! [`AdminContext`]. A module's command writes through the writer like any client (see
//! [`crate::writer::spawn`]), so its decisions are the domain's.

pub mod output;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use questlog_domain::{App, Domain};
use sqlx::PgPool;

/// What a module's admin command gets from the binary.
#[derive(Clone)]
pub struct AdminContext {
    /// A pool on the deployment's database, its schema up to date.
    pub pool: PgPool,
    /// The running modules' domain.
    pub domain: Arc<Domain>,
    /// What the command line held under the command's name.
    pub matches: clap::ArgMatches,
}

type AdminFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
type AdminFn = Box<dyn Fn(AdminContext) -> AdminFuture + Send + Sync>;

struct AdminCommand {
    command: clap::Command,
    run: AdminFn,
}

/// The admin commands the running modules registered (an [`App`] part).
#[derive(Default)]
pub struct AdminCommands {
    commands: Vec<AdminCommand>,
}

impl AdminCommands {
    /// The registered commands' definitions, for the binary's parser.
    pub fn commands(&self) -> impl Iterator<Item = clap::Command> + '_ {
        self.commands.iter().map(|c| c.command.clone())
    }

    /// Whether a module registered a command named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.commands.iter().any(|c| c.command.get_name() == name)
    }

    /// Runs the command named `name` when a module registered it; `None` otherwise.
    pub fn run(&self, name: &str, context: AdminContext) -> Option<AdminFuture> {
        self.commands
            .iter()
            .find(|c| c.command.get_name() == name)
            .map(|c| (c.run)(context))
    }
}

/// Registering admin commands on an [`App`].
pub trait AdminCommandsExt {
    /// Adds `command` to the binary's command line, run by `run` with what the command line held
    /// under it; its output goes to the standard output, its error makes the binary exit 1.
    ///
    /// # Panics
    /// When a command of that name is registered already.
    fn add_admin_command<F, Fut>(&mut self, command: clap::Command, run: F) -> &mut Self
    where
        F: Fn(AdminContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static;
}

impl AdminCommandsExt for App {
    fn add_admin_command<F, Fut>(&mut self, command: clap::Command, run: F) -> &mut Self
    where
        F: Fn(AdminContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let commands = self.part_mut::<AdminCommands>();
        assert!(
            commands
                .commands
                .iter()
                .all(|c| c.command.get_name() != command.get_name()),
            "admin command {} is registered twice",
            command.get_name()
        );
        commands.commands.push(AdminCommand {
            command,
            run: Box::new(move |context| Box::pin(run(context))),
        });
        self
    }
}
