//! Applying a catalog file (`questlog catalog apply <file.toml>`): defines the modules and labs of
//! a file through the writer, as an admin's `define_module` and `define_lab` commands over HTTP
//! would. The binary reads the file and prints the [`Report`].
//!
//! The file has `[[module]]` and `[[lab]]` tables; any other key is an error:
//!
//! ```toml
//! [[module]]
//! number = 1                # a whole number from 1
//! title = "Shell basics"
//!
//! [[module]]
//! number = 2
//! title = "Pipes"
//! requires = [1]            # optional: the modules to complete first
//!
//! [[lab]]
//! id = "ls"                 # 1-64 of A-Z a-z 0-9 _ . -
//! module = 1                # in this file or already defined
//! title = "Listing files"
//! xp = 150                  # 1 to 100000
//! ```
//!
//! Modules are sent before the modules that require them, then labs in file order. The domain
//! appends nothing for a definition identical to the current one, so applying a file again
//! changes nothing; a changed title, requirement or XP is a new definition.
//!
//! The whole file is checked before anything is sent: its shape, every value (by the same parser
//! as the HTTP edge), duplicates, cycles among its modules, and every command decided by the
//! domain against the current catalog in order. So a file with one bad entry appends nothing,
//! unless another admin changes the catalog between that check and the commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use questlog_command_api::writer::{self, CommandError, Request, WriterConfig};
use questlog_domain::Domain;
use questlog_store::{EventStore, PgEventStore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog::CatalogState;
use crate::values::{ModuleNo, PlayerId};
use crate::{Actor, Command, Edge, Role, StreamId};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    module: Vec<ModuleEntry>,
    #[serde(default)]
    lab: Vec<LabEntry>,
}

// Numbers stay as the file wrote them: `Command::parse` refuses the invalid ones with the same
// codes and messages as the HTTP edge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleEntry {
    number: i64,
    title: String,
    #[serde(default)]
    requires: Vec<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabEntry {
    id: String,
    module: i64,
    title: String,
    xp: i64,
}

/// What applying one entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was not in the catalog: defined.
    Defined,
    /// It was, differently: defined anew.
    Updated,
    /// It was, identically: nothing appended.
    Unchanged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Defined => "defined",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        }
    }
}

/// One line of the report.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// `module` or `lab`.
    pub kind: &'static str,
    /// The module's number or the lab's id.
    pub id: Value,
    pub title: String,
    pub result: Outcome,
    /// The appended event's position (none when unchanged).
    pub position: Option<i64>,
}

impl Applied {
    /// The entry as a listing names it: `module 1`, `lab ls`.
    pub fn entry(&self) -> String {
        format!("{} {}", self.kind, display_id(&self.id))
    }
}

/// What applying a file did: the entries applied, in order, and the refusal that stopped it, if
/// any (then only when the catalog changed between the check and the commit).
#[derive(Debug)]
pub struct Report {
    pub applied: Vec<Applied>,
    pub failure: Option<anyhow::Error>,
}

impl Report {
    /// The refusal, worded with what was applied before it, or `Ok` when every entry was.
    ///
    /// # Errors
    /// The refusal that stopped the apply.
    pub fn outcome(self) -> anyhow::Result<()> {
        match self.failure {
            // The check passed, so another writer changed the catalog meanwhile.
            Some(e) if self.applied.is_empty() => Err(e),
            Some(e) => Err(e.context(format!(
                "the catalog changed during the apply; the {} entries listed above were applied",
                self.applied.len()
            ))),
            None => Ok(()),
        }
    }
}

/// One entry of the file, parsed into the command it becomes.
struct Step {
    /// How the entry is named in messages, as the file writes it.
    label: String,
    kind: &'static str,
    id: Value,
    title: String,
    command: Command,
}

/// Applies a catalog given as TOML text through a writer deciding with `domain` (the running
/// modules' registry), entry by entry.
///
/// # Errors
/// When the text is not a catalog file, an entry is invalid or refused by the domain (naming the
/// entry; nothing is appended then), or the database cannot be reached. A refusal after entries
/// were applied is in the [`Report`].
pub async fn apply_toml(pool: &PgPool, domain: Arc<Domain>, text: &str) -> anyhow::Result<Report> {
    let file: CatalogFile = toml::from_str(text).context("not a valid catalog file")?;
    let actor = Actor {
        identity: PlayerId(Uuid::new_v4()),
        role: Role::Admin,
    };
    let steps = plan(file, actor.identity)?;

    let store = PgEventStore::new(pool.clone());
    let mut catalog = current_catalog(&store, &domain).await?;
    let outcomes = dry_run(&mut catalog, &steps, actor)?;

    let shutdown = CancellationToken::new();
    let (handle, task) = writer::spawn(
        domain,
        Arc::new(store),
        WriterConfig::default(),
        shutdown.clone(),
    );
    // One correlation id for the whole file, so its events can be found together.
    let correlation_id = Some(Uuid::now_v7());
    let mut applied = Vec::with_capacity(steps.len());
    let mut failure = None;
    for (step, planned) in steps.into_iter().zip(outcomes) {
        let request = Request {
            actor,
            command: Box::new(step.command),
            correlation_id,
            idempotency: None,
        };
        match handle.submit(request).await {
            Ok(outcome) => {
                let result = match (outcome.events.is_empty(), planned) {
                    (true, _) => Outcome::Unchanged,
                    (false, Outcome::Defined) => Outcome::Defined,
                    (false, _) => Outcome::Updated,
                };
                applied.push(Applied {
                    kind: step.kind,
                    id: step.id,
                    title: step.title,
                    result,
                    position: outcome.events.last().map(|e| e.position),
                });
            }
            Err(e) => {
                failure = Some(refused(&step.label, e));
                break;
            }
        }
    }
    shutdown.cancel();
    task.await.context("stopping the writer")?;
    Ok(Report { applied, failure })
}

fn display_id(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn refused(label: &str, error: CommandError) -> anyhow::Error {
    match error {
        CommandError::Rejected(rejection) => anyhow!("{label}: {rejection}"),
        other => anyhow::Error::new(other).context(format!("{label}: not applied")),
    }
}

/// The file's entries as commands, in the order to send them: modules before the modules in the
/// file that require them, then labs as written.
fn plan(file: CatalogFile, admin: PlayerId) -> anyhow::Result<Vec<Step>> {
    // `new_id` is only drawn by commands that create something, and the name key only by those
    // that claim a name: a catalog command reads neither.
    let edge = Edge {
        caller: admin,
        new_id: Uuid::nil(),
        names: questlog_domain::NameKey::new([0; 32]),
    };
    let mut modules: BTreeMap<ModuleNo, Step> = BTreeMap::new();
    for entry in file.module {
        let label = format!("[[module]] number = {}", entry.number);
        let body =
            json!({ "module": entry.number, "title": entry.title, "requires": entry.requires });
        let command = Command::parse("define_module", body.to_string().as_bytes(), &edge)
            .map_err(|r| anyhow!("{label}: {r}"))?;
        let Command::DefineModule { module, .. } = &command else {
            unreachable!("define_module parses into DefineModule");
        };
        let module = *module;
        let step = Step {
            label,
            kind: "module",
            id: json!(module),
            title: entry.title,
            command,
        };
        if modules.insert(module, step).is_some() {
            bail!("[[module]] number = {module}: defined twice in the file");
        }
    }
    let mut steps = in_dependency_order(modules)?;

    let mut labs = BTreeSet::new();
    for entry in file.lab {
        let label = format!("[[lab]] id = {:?}", entry.id);
        let body = json!({ "lab_id": entry.id, "module": entry.module, "title": entry.title, "xp": entry.xp });
        let command = Command::parse("define_lab", body.to_string().as_bytes(), &edge)
            .map_err(|r| anyhow!("{label}: {r}"))?;
        let Command::DefineLab { lab_id, .. } = &command else {
            unreachable!("define_lab parses into DefineLab");
        };
        if !labs.insert(lab_id.clone()) {
            bail!("{label}: defined twice in the file");
        }
        steps.push(Step {
            label,
            kind: "lab",
            id: json!(lab_id.as_str()),
            title: entry.title,
            command,
        });
    }
    Ok(steps)
}

fn requirements(step: &Step) -> &[ModuleNo] {
    match &step.command {
        Command::DefineModule { requires, .. } => requires,
        _ => &[],
    }
}

/// Orders modules so that each comes after the file's modules it requires (lowest number first
/// among those ready); a requirement outside the file must already be defined, which the domain
/// checks. A cycle among the file's modules is refused here, naming it, because the domain would
/// only see a requirement on a module not defined yet.
fn in_dependency_order(mut pending: BTreeMap<ModuleNo, Step>) -> anyhow::Result<Vec<Step>> {
    let mut ordered = Vec::with_capacity(pending.len());
    loop {
        let ready = pending
            .iter()
            .find(|(_, step)| requirements(step).iter().all(|r| !pending.contains_key(r)))
            .map(|(module, _)| *module);
        match ready {
            Some(module) => ordered.extend(pending.remove(&module)),
            None => break,
        }
    }
    let Some((&start, _)) = pending.first_key_value() else {
        return Ok(ordered);
    };
    // Every module left requires another one left, so walking those requirements from any of them
    // must come back to a module already on the path.
    let mut path = vec![start];
    loop {
        let current = path[path.len() - 1];
        let next = requirements(&pending[&current])
            .iter()
            .copied()
            .find(|r| pending.contains_key(r))
            .expect("a module left requires another module left");
        if let Some(at) = path.iter().position(|m| *m == next) {
            let cycle: Vec<String> = path[at..]
                .iter()
                .chain([&next])
                .map(ToString::to_string)
                .collect();
            bail!(
                "{}: module_cycle: the file's modules require each other in a cycle: {}",
                pending[&path[at]].label,
                cycle.join(" -> ")
            );
        }
        path.push(next);
    }
}

/// The catalog as the log holds it now, folded by the academy's own registration.
async fn current_catalog(
    store: &PgEventStore,
    domain: &questlog_domain::Domain,
) -> anyhow::Result<questlog_domain::StreamState> {
    let recorded = store
        .read_streams(&[StreamId::Catalog.to_string()])
        .await
        .context("reading the catalog from the event log")?;
    let events: Vec<questlog_domain::Event> = recorded
        .into_iter()
        .map(|e| domain.decode(&e.event_type, e.schema_version, &e.data))
        .collect::<Result<_, _>>()
        .context("decoding the catalog's events")?;
    Ok(domain.fold(&StreamId::Catalog.id(), &events))
}

/// The catalog alone: every command of a catalog file reads only the catalog stream.
struct CatalogOnly<'a>(&'a questlog_domain::StreamState);

impl questlog_domain::States for CatalogOnly<'_> {
    fn state(&self, _: &questlog_domain::StreamId) -> &questlog_domain::StreamState {
        self.0
    }

    fn event(&self, _: &questlog_domain::StreamId, _: u64) -> Option<&questlog_domain::Event> {
        None
    }
}

/// Decides every step in order against `catalog`, as the writer will, and says what each would
/// do; the first refusal is an error naming its entry.
fn dry_run(
    catalog: &mut questlog_domain::StreamState,
    steps: &[Step],
    actor: Actor,
) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(steps.len());
    for step in steps {
        let known = catalog
            .view::<CatalogState>()
            .is_some_and(|state| defines_known(state, &step.command));
        let context = questlog_domain::Context {
            actor,
            now: chrono::Utc::now(),
            states: &CatalogOnly(&*catalog),
        };
        let events = questlog_domain::decide(&step.command, &context)
            .map_err(|r| anyhow!("{}: {r} (nothing was applied)", step.label))?;
        outcomes.push(match (events.is_empty(), known) {
            (true, _) => Outcome::Unchanged,
            (false, true) => Outcome::Updated,
            (false, false) => Outcome::Defined,
        });
        for (_, event) in &events {
            catalog.evolve(event);
        }
    }
    Ok(outcomes)
}

/// Whether the catalog already has the module or lab the command defines.
fn defines_known(catalog: &CatalogState, command: &Command) -> bool {
    match command {
        Command::DefineModule { module, .. } => catalog.modules.contains_key(module),
        Command::DefineLab { lab_id, .. } => catalog.labs.contains_key(lab_id),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(text: &str) -> anyhow::Result<Vec<String>> {
        let file: CatalogFile = toml::from_str(text)?;
        Ok(plan(file, PlayerId(Uuid::nil()))?
            .into_iter()
            .map(|s| format!("{} {}", s.kind, display_id(&s.id)))
            .collect())
    }

    #[test]
    fn modules_come_before_the_modules_that_require_them_and_labs_come_last() {
        let order = planned(
            r#"
            [[lab]]
            id = "pipe"
            module = 3
            title = "Pipes"
            xp = 10
            [[module]]
            number = 3
            title = "Three"
            requires = [2]
            [[module]]
            number = 2
            title = "Two"
            requires = [1]
            [[module]]
            number = 1
            title = "One"
            "#,
        )
        .expect("planned");
        assert_eq!(order, ["module 1", "module 2", "module 3", "lab pipe"]);
    }

    #[test]
    fn a_cycle_among_the_files_modules_is_refused_naming_it() {
        let err = planned(
            r#"
            [[module]]
            number = 1
            title = "One"
            [[module]]
            number = 2
            title = "Two"
            requires = [3]
            [[module]]
            number = 3
            title = "Three"
            requires = [2]
            "#,
        )
        .expect_err("a cycle");
        let message = err.to_string();
        assert!(message.contains("module_cycle"), "{message}");
        assert!(message.contains("2 -> 3 -> 2"), "{message}");
    }

    #[test]
    fn a_module_requiring_itself_is_a_cycle() {
        let err = planned("[[module]]\nnumber = 4\ntitle = \"Four\"\nrequires = [4]\n")
            .expect_err("a cycle");
        assert!(err.to_string().contains("4 -> 4"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = planned("[[lab]]\nid = \"ls\"\nmodule = 1\ntitle = \"ls\"\nxp = 1\ncolour = 2\n")
            .expect_err("unknown key");
        assert!(format!("{err:#}").contains("colour"), "{err:#}");
    }

    #[test]
    fn an_invalid_value_is_refused_naming_its_entry() {
        let err = planned("[[lab]]\nid = \"ls\"\nmodule = 1\ntitle = \"ls\"\nxp = 0\n")
            .expect_err("invalid xp");
        assert!(
            err.to_string()
                .starts_with("[[lab]] id = \"ls\": invalid_xp"),
            "{err}"
        );
    }

    #[test]
    fn the_same_lab_twice_is_refused() {
        let lab = "[[lab]]\nid = \"ls\"\nmodule = 1\ntitle = \"ls\"\nxp = 1\n";
        let err = planned(&format!("{lab}{lab}")).expect_err("twice");
        assert!(err.to_string().contains("defined twice"), "{err}");
    }
}
