//! The accounts' decisions, given events, when a command, then events or a refusal.

use chrono::Utc;
use questlog_domain::testing::given;
use questlog_domain::values::PlayerId;
use questlog_domain::{Actor, App, Command, Domain, Role};
use uuid::Uuid;

use crate::command::{stream, ChangePassword, RegisterAccount};
use crate::event::AccountEvent;
use crate::values::Email;
use crate::Accounts;

fn domain() -> Domain {
    let mut app = App::new();
    app.add_module(&Accounts::default());
    (*app.domain()).clone()
}

fn ada() -> PlayerId {
    PlayerId(Uuid::from_u128(0xada))
}

fn actor() -> Actor {
    Actor {
        identity: ada(),
        role: Role::Player,
    }
}

fn register(upgraded: bool) -> RegisterAccount {
    RegisterAccount {
        player: ada(),
        email: Email::parse("ada@example.org").expect("valid"),
        username: None,
        password_hash: "$argon2id$…".to_owned(),
        upgraded,
    }
}

#[test]
fn an_identity_registers_once() {
    let domain = domain();
    let registered = AccountEvent::AccountRegistered {
        player_id: ada(),
        upgraded: true,
    };
    given(&domain, vec![])
        .when(actor(), Utc::now(), &register(true))
        .then(vec![(stream(ada()), registered.clone().into())]);
    given(&domain, vec![(stream(ada()), registered.into())])
        .when(actor(), Utc::now(), &register(false))
        .then_rejected("already_registered");
}

#[test]
fn a_password_changes_only_on_an_account() {
    let domain = domain();
    let change = ChangePassword {
        player: ada(),
        password_hash: "$argon2id$…".to_owned(),
    };
    given(&domain, vec![])
        .when(actor(), Utc::now(), &change)
        .then_rejected("no_account");
    let registered = AccountEvent::AccountRegistered {
        player_id: ada(),
        upgraded: false,
    };
    given(&domain, vec![(stream(ada()), registered.into())])
        .when(actor(), Utc::now(), &change)
        .then(vec![(
            stream(ada()),
            AccountEvent::PasswordChanged { player_id: ada() }.into(),
        )]);
}

#[test]
fn a_claim_lost_on_the_email_or_the_username_is_this_registrations_own_refusal() {
    let command = register(false);
    let me = ada().to_string();
    assert_eq!(
        command
            .conflict(&format!("account_email: {me}"))
            .expect("own")
            .code,
        "email_taken"
    );
    assert_eq!(
        command
            .conflict(&format!("account_username: {me}"))
            .expect("own")
            .code,
        "username_taken"
    );
    let other = Uuid::from_u128(1).to_string();
    assert!(command
        .conflict(&format!("account_email: {other}"))
        .is_none());
}

#[test]
fn the_secret_parts_of_a_registration_never_show_in_its_debug_output() {
    let password = crate::values::Password::parse("correct horse battery".to_owned()).expect("ok");
    assert!(!format!("{password:?}").contains("horse"));
}
