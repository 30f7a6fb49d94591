//! `send_message`, `edit_message`, `delete_message`.

use questlog_academy::fixtures::{admin, at, lab_defined, lab_id, module_defined, player};
use questlog_domain::Actor;

use super::{academy, given, history, on_message, Logged};
use crate::values::{Channel, MessageContent, MessageId};
use crate::{Command, Event};

fn registered(actor: Actor, name: &str) -> Vec<Logged> {
    academy(questlog_academy::fixtures::registered(actor, name))
}

const NOW: &str = "2024-03-01T09:00:00Z";

fn id(n: u128) -> MessageId {
    MessageId(uuid::Uuid::from_u128(0x3e55_0000 + n))
}

fn text(raw: &str) -> MessageContent {
    MessageContent::parse(raw).unwrap()
}

fn send(n: u128, channel: Channel, content: &str) -> Command {
    Command::SendMessage {
        message_id: id(n),
        channel,
        content: text(content),
    }
}

fn sent(n: u128, channel: Channel, sender: Actor, content: &str) -> Logged {
    on_message(
        id(n),
        Event::MessageSent {
            message_id: id(n),
            channel,
            sender: sender.identity,
            content: questlog_domain::Personal::new(sender.identity, text(content)),
        },
    )
}

#[test]
fn a_registered_player_sends_to_global_and_to_a_known_labs_channel() {
    let ada = player(1);
    given(registered(ada, "ada"))
        .when(ada, at(NOW), send(1, Channel::Global, "hello"))
        .then(vec![sent(1, Channel::Global, ada, "hello")]);
    let lab = Channel::Lab(lab_id("ls"));
    given(history([
        academy(vec![module_defined(1, &[]), lab_defined("ls", 1, 10)]),
        registered(ada, "ada"),
    ]))
    .when(ada, at(NOW), send(2, lab.clone(), "stuck on ls -a"))
    .then(vec![sent(2, lab, ada, "stuck on ls -a")]);
}

#[test]
fn a_message_to_an_unknown_lab_or_player_is_not_found() {
    let ada = player(1);
    given(registered(ada, "ada"))
        .when(ada, at(NOW), send(1, Channel::Lab(lab_id("nope")), "hi"))
        .then_rejected("unknown_lab");
    given(registered(ada, "ada"))
        .when(
            ada,
            at(NOW),
            send(1, Channel::direct(ada.identity, player(9).identity), "hi"),
        )
        .then_rejected("player_not_found");
}

#[test]
fn a_direct_message_lands_in_the_pairs_channel() {
    let (ada, bob) = (player(1), player(2));
    let dm = Channel::direct(bob.identity, ada.identity);
    given(history([registered(ada, "ada"), registered(bob, "bob")]))
        .when(ada, at(NOW), send(1, dm.clone(), "psst"))
        .then(vec![sent(1, dm, ada, "psst")]);
}

#[test]
fn sending_before_registering_is_not_registered() {
    given(vec![])
        .when(player(1), at(NOW), send(1, Channel::Global, "hi"))
        .then_rejected("not_registered");
}

#[test]
fn only_the_sender_edits_and_not_after_deletion() {
    let (ada, bob) = (player(1), player(2));
    let base = || {
        history([
            registered(ada, "ada"),
            vec![sent(1, Channel::Global, ada, "helo")],
        ])
    };
    let edit = |content: &str| Command::EditMessage {
        message_id: id(1),
        content: text(content),
    };
    given(base())
        .when(ada, at(NOW), edit("hello"))
        .then(vec![on_message(
            id(1),
            Event::MessageEdited {
                message_id: id(1),
                content: questlog_domain::Personal::new(ada.identity, text("hello")),
            },
        )]);
    given(base()).when(ada, at(NOW), edit("helo")).then(vec![]);
    given(base())
        .when(bob, at(NOW), edit("hacked"))
        .then_rejected("forbidden");
    given(base())
        .when(admin(), at(NOW), edit("moderated"))
        .then_rejected("forbidden");
    given(history([
        base(),
        vec![on_message(
            id(1),
            Event::MessageDeleted {
                message_id: id(1),
                by: ada.identity,
            },
        )],
    ]))
    .when(ada, at(NOW), edit("hello"))
    .then_rejected("message_deleted");
    given(vec![])
        .when(ada, at(NOW), edit("hello"))
        .then_rejected("message_not_found");
}

#[test]
fn the_sender_or_an_admin_deletes_once() {
    let (ada, bob) = (player(1), player(2));
    let base = || {
        history([
            registered(ada, "ada"),
            vec![sent(1, Channel::Global, ada, "spam")],
        ])
    };
    let delete = Command::DeleteMessage { message_id: id(1) };
    let deleted = |by: Actor| {
        on_message(
            id(1),
            Event::MessageDeleted {
                message_id: id(1),
                by: by.identity,
            },
        )
    };
    given(base())
        .when(ada, at(NOW), delete.clone())
        .then(vec![deleted(ada)]);
    given(base())
        .when(admin(), at(NOW), delete.clone())
        .then(vec![deleted(admin())]);
    given(base())
        .when(bob, at(NOW), delete.clone())
        .then_rejected("forbidden");
    given(history([base(), vec![deleted(ada)]]))
        .when(ada, at(NOW), delete)
        .then(vec![]);
}
