//! The catalog of modules and labs, defined by admins. XP always comes from here, never from a client.

pub mod apply;
pub mod cli;
pub mod projection;
pub mod read;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::event::Event;
use crate::values::{LabId, ModuleNo};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Module {
    pub title: String,
    pub requires: Vec<ModuleNo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lab {
    pub module: ModuleNo,
    pub title: String,
    pub xp: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogState {
    pub modules: BTreeMap<ModuleNo, Module>,
    pub labs: BTreeMap<LabId, Lab>,
}

impl CatalogState {
    pub fn evolve(&mut self, event: &Event) {
        match event {
            Event::ModuleDefined {
                module,
                title,
                requires,
            } => {
                self.modules.insert(
                    *module,
                    Module {
                        title: title.clone(),
                        requires: requires.clone(),
                    },
                );
            }
            Event::LabDefined {
                lab_id,
                module,
                title,
                xp,
            } => {
                self.labs.insert(
                    lab_id.clone(),
                    Lab {
                        module: *module,
                        title: title.clone(),
                        xp: *xp,
                    },
                );
            }
            _ => {}
        }
    }

    /// The labs of one module.
    pub fn labs_of(&self, module: ModuleNo) -> impl Iterator<Item = (&LabId, &Lab)> {
        self.labs
            .iter()
            .filter(move |(_, lab)| lab.module == module)
    }

    /// A module is unlocked when every module it requires is complete; module 1 and modules with no
    /// requirements are unlocked from the start. An undefined module is locked, but for module 1.
    pub fn is_unlocked(&self, module: ModuleNo, completed: &BTreeSet<ModuleNo>) -> bool {
        if module == 1 {
            return true;
        }
        self.modules
            .get(&module)
            .is_some_and(|m| m.requires.iter().all(|r| completed.contains(r)))
    }

    /// Every defined module that is unlocked for a player who completed `completed`.
    pub fn unlocked_modules(&self, completed: &BTreeSet<ModuleNo>) -> Vec<ModuleNo> {
        self.modules
            .keys()
            .copied()
            .filter(|m| self.is_unlocked(*m, completed))
            .collect()
    }

    /// Whether making `module` require `requires` would close a cycle.
    pub fn would_cycle(&self, module: ModuleNo, requires: &[ModuleNo]) -> bool {
        let mut stack: Vec<ModuleNo> = requires.to_vec();
        let mut seen = BTreeSet::new();
        while let Some(m) = stack.pop() {
            if m == module {
                return true;
            }
            if seen.insert(m) {
                if let Some(def) = self.modules.get(&m) {
                    stack.extend(def.requires.iter().copied());
                }
            }
        }
        false
    }
}
