//! The schema of a deployment: the kernel's migrations ([`MIGRATOR`], `migrations/`) and every
//! registered module's own (a module embeds its folder with `sqlx::migrate!` and registers it on
//! the [`App`] with [`MigrationsExt::add_migrations`]), run as one sqlx [`Migrator`] ordered by
//! version, so one `_sqlx_migrations` table records them all.
//!
//! Versions are one sequence across the kernel and the modules (a timestamp, as the kernel's
//! are): two migrations with one version are refused when they are registered. A module that is
//! no longer registered leaves its applied migrations in the table; they are ignored rather than
//! refused, so dropping a module never stops a deployment from starting. A migration that is
//! registered and was applied with other text is still refused (its checksum), as for the kernel.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use questlog_domain::App;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, Migrator};

use crate::MIGRATOR;

/// The migrations the running modules registered (an [`App`] part), by module.
#[derive(Default)]
pub struct Migrations {
    modules: Vec<(&'static str, &'static Migrator)>,
}

/// Registering a module's migrations on an [`App`].
pub trait MigrationsExt {
    /// Registers `module`'s migrations (`sqlx::migrate!("./migrations")` in its crate).
    ///
    /// # Panics
    /// When one of their versions is the kernel's or another registered module's.
    fn add_migrations(&mut self, module: &'static str, migrator: &'static Migrator) -> &mut Self;
}

impl MigrationsExt for App {
    fn add_migrations(&mut self, module: &'static str, migrator: &'static Migrator) -> &mut Self {
        let registered = self.part_mut::<Migrations>();
        let mut owners = registered.owners();
        for migration in migrator.iter() {
            if let Some(owner) = owners.insert(migration.version, module) {
                panic!(
                    "migration {} of module {module} has the version of one of {owner}'s",
                    migration.version
                );
            }
        }
        registered.modules.push((module, migrator));
        self
    }
}

impl Migrations {
    /// Who owns each version: the kernel, then the modules registered so far.
    fn owners(&self) -> BTreeMap<i64, &'static str> {
        let mut owners: BTreeMap<i64, &'static str> =
            MIGRATOR.iter().map(|m| (m.version, "the kernel")).collect();
        for (module, migrator) in &self.modules {
            owners.extend(migrator.iter().map(|m| (m.version, *module)));
        }
        owners
    }

    /// The kernel's migrations and the modules', ordered by version.
    fn all(&self) -> Vec<Migration> {
        let mut all: Vec<Migration> = MIGRATOR.iter().cloned().collect();
        for (_, migrator) in &self.modules {
            all.extend(migrator.iter().cloned());
        }
        all.sort_by_key(|m| m.version);
        all
    }
}

/// The resolved list, handed to sqlx as a migration source.
#[derive(Debug)]
struct Resolved(Vec<Migration>);

impl<'s> MigrationSource<'s> for Resolved {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}

/// The migrator of `app`: the kernel's migrations and every registered module's, by version;
/// applied migrations no registered module has any more are ignored.
///
/// # Errors
/// Never in practice: the migrations are resolved already (sqlx's constructor is fallible).
pub async fn migrator(app: &App) -> Result<Migrator, sqlx::migrate::MigrateError> {
    let all = app
        .part::<Migrations>()
        .map_or_else(|| MIGRATOR.iter().cloned().collect(), Migrations::all);
    let mut migrator = Migrator::new(Resolved(all)).await?;
    migrator.set_ignore_missing(true);
    Ok(migrator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_modules_the_migrator_is_the_kernels() {
        let migrator = migrator(&App::new()).await.expect("a migrator");
        let versions: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        let kernel: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        assert_eq!(versions, kernel);
    }

    #[test]
    #[should_panic(expected = "has the version of one of the kernel's")]
    fn a_module_may_not_take_a_kernel_version() {
        static CLASH: Migrator = sqlx::migrate!("../migrations");
        App::new().add_migrations("clash", &CLASH);
    }
}
