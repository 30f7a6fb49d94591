//! `define_module` and `define_lab`: the admin-defined catalog.

use super::{admin, at, lab_defined, lab_id, module_defined, on_catalog};
use crate::testing::given;
use crate::values::ModuleNo;
use crate::{Command, Event, RejectionKind};

const NOW: &str = "2024-03-01T09:00:00Z";

fn define_module(module: ModuleNo, requires: &[ModuleNo]) -> Command {
    Command::DefineModule {
        module,
        title: format!("Module {module}"),
        requires: requires.to_vec(),
    }
}

fn define_lab(id: &str, module: ModuleNo, xp: u32) -> Command {
    Command::DefineLab {
        lab_id: lab_id(id),
        module,
        title: format!("Lab {id}"),
        xp,
    }
}

#[test]
fn defining_a_new_module_records_it() {
    given(vec![module_defined(1, &[])])
        .when(admin(), at(NOW), define_module(2, &[1]))
        .then(vec![module_defined(2, &[1])]);
}

#[test]
fn a_module_requiring_an_undefined_module_is_unknown_module() {
    let r = given(vec![module_defined(1, &[])])
        .when(admin(), at(NOW), define_module(3, &[1, 2]))
        .then_rejected("unknown_module");
    assert_eq!(r.kind, RejectionKind::NotFound);
}

#[test]
fn a_module_requiring_itself_is_a_module_cycle() {
    given(vec![module_defined(1, &[])])
        .when(admin(), at(NOW), define_module(2, &[1, 2]))
        .then_rejected("module_cycle");
    given(vec![module_defined(1, &[]), module_defined(2, &[1])])
        .when(admin(), at(NOW), define_module(2, &[2]))
        .then_rejected("module_cycle");
}

#[test]
fn a_redefinition_closing_a_loop_of_requirements_is_a_module_cycle() {
    let r = given(vec![
        module_defined(1, &[]),
        module_defined(2, &[1]),
        module_defined(3, &[2]),
    ])
    .when(admin(), at(NOW), define_module(1, &[3]))
    .then_rejected("module_cycle");
    assert_eq!(r.kind, RejectionKind::Invalid);
}

#[test]
fn requirements_that_share_a_prerequisite_are_not_a_cycle() {
    given(vec![
        module_defined(1, &[]),
        module_defined(2, &[1]),
        module_defined(3, &[1]),
    ])
    .when(admin(), at(NOW), define_module(4, &[2, 3]))
    .then(vec![module_defined(4, &[2, 3])]);
}

#[test]
fn an_identical_module_redefinition_appends_nothing() {
    given(vec![module_defined(1, &[]), module_defined(2, &[1])])
        .when(admin(), at(NOW), define_module(2, &[1]))
        .then(vec![]);
}

#[test]
fn a_module_redefined_with_another_title_or_requirements_is_recorded() {
    let catalog = vec![
        module_defined(1, &[]),
        module_defined(2, &[]),
        module_defined(3, &[1]),
    ];
    let retitled = Command::DefineModule {
        module: 3,
        title: "Module three".into(),
        requires: vec![1],
    };
    given(catalog.clone())
        .when(admin(), at(NOW), retitled)
        .then(vec![on_catalog(Event::ModuleDefined {
            module: 3,
            title: "Module three".into(),
            requires: vec![1],
        })]);
    given(catalog)
        .when(admin(), at(NOW), define_module(3, &[1, 2]))
        .then(vec![module_defined(3, &[1, 2])]);
}

#[test]
fn defining_a_lab_records_it() {
    given(vec![module_defined(1, &[])])
        .when(admin(), at(NOW), define_lab("intro", 1, 50))
        .then(vec![lab_defined("intro", 1, 50)]);
}

#[test]
fn a_lab_in_an_undefined_module_is_unknown_module() {
    let r = given(vec![module_defined(1, &[])])
        .when(admin(), at(NOW), define_lab("intro", 2, 50))
        .then_rejected("unknown_module");
    assert_eq!(r.kind, RejectionKind::NotFound);
}

#[test]
fn an_identical_lab_redefinition_appends_nothing() {
    given(vec![module_defined(1, &[]), lab_defined("intro", 1, 50)])
        .when(admin(), at(NOW), define_lab("intro", 1, 50))
        .then(vec![]);
}

#[test]
fn a_lab_redefined_with_other_xp_is_recorded() {
    given(vec![module_defined(1, &[]), lab_defined("intro", 1, 50)])
        .when(admin(), at(NOW), define_lab("intro", 1, 75))
        .then(vec![lab_defined("intro", 1, 75)]);
}
