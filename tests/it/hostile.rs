//! Hostile input over every route and every command, as anonymous callers, players and admins:
//! text the database cannot store, numbers beyond range, deep and duplicate-keyed JSON, wrong
//! types, unknown fields, oversize and broken bodies, bad headers, tokens, ids and query
//! parameters. Thousands of requests from a seeded generator (`QUESTLOG_HOSTILE_SEED` picks
//! another seed; every failure names the seed). No answer may be a server error, a dropped
//! connection or, for an error, anything but problem+json with a `code` (a `min_position` that is
//! not reached within its short `wait_ms` is the contract's `504 not_caught_up`). The first
//! requests go one at a time, and after each refused command the log and everything kept beside
//! it must be as they were; the rest go eight at a time, so that hostile commands share batches
//! with valid ones.

use std::fmt::Write as _;
use std::time::Duration;

use futures::StreamExt;
use questlog_academy::Role;
use questlog_tests::{Player, TestApp};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// Requests sent one at a time, each refused command checked against the log.
const SEQUENTIAL: usize = 2_500;
/// Requests sent eight at a time, so that hostile commands share batches with valid ones.
const CONCURRENT: usize = 1_500;
const IN_FLIGHT: usize = 8;
/// An answer slower than this counts as a hang.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
const DEFAULT_SEED: u64 = 0x0051_7e57_ba55_0001;

fn seed() -> u64 {
    std::env::var("QUESTLOG_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// Every command with its required and optional fields.
const COMMANDS: &[(&str, &[&str], &[&str])] = &[
    ("register_player", &["username"], &[]),
    ("set_timezone", &["timezone"], &[]),
    ("complete_lab", &["lab_id"], &[]),
    ("update_streak", &[], &[]),
    ("define_module", &["module", "title"], &["requires"]),
    ("define_lab", &["lab_id", "module", "title", "xp"], &[]),
    ("grant_achievement", &["player_id", "achievement"], &[]),
    ("revoke_xp", &["player_id", "xp", "reason"], &[]),
    ("start_lab", &["lab_id"], &[]),
    (
        "save_lab_state",
        &["lab_id", "vfs_snapshot", "current_step"],
        &[],
    ),
    ("delete_lab_state", &["lab_id"], &["player_id"]),
    ("heartbeat", &["current_lab"], &[]),
    ("send_message", &["channel", "content"], &[]),
    ("edit_message", &["message_id", "content"], &[]),
    ("delete_message", &["message_id"], &[]),
    (
        "define_leaderboard",
        &["leaderboard", "title"],
        &["order", "operator", "reset", "authoritative"],
    ),
    (
        "submit_score",
        &["leaderboard", "score"],
        &["subscore", "metadata", "player_id"],
    ),
    (
        "define_achievement",
        &["achievement", "title"],
        &["description", "hidden", "goal", "rule", "authoritative"],
    ),
    (
        "set_achievement_progress",
        &["achievement", "progress"],
        &["player_id"],
    ),
    ("unlock_achievement", &["achievement"], &["player_id"]),
    (
        "revoke_achievement",
        &["player_id", "achievement", "reason"],
        &[],
    ),
    ("erase_me", &["confirm"], &[]),
    ("erase_player", &["player_id"], &[]),
    (
        "define_collection",
        &["collection"],
        &[
            "read",
            "write",
            "max_bytes",
            "max_objects",
            "indexed",
            "personal",
            "schema",
        ],
    ),
    (
        "put_object",
        &["collection", "key", "value"],
        &["owner", "expected_version"],
    ),
    (
        "delete_object",
        &["collection", "key"],
        &["owner", "expected_version"],
    ),
    ("delete_objects", &["collection", "keys"], &["owner"]),
    (
        "restore_object",
        &["collection", "key", "version"],
        &["owner"],
    ),
];

/// Strings a careless parser chokes on.
const TEXTS: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "a\u{0}b",
    "\u{0}\u{0}\u{0}",
    "\t\n\r",
    "\u{1}\u{1f}\u{7f}",
    "\u{feff}",
    "\u{202e}txet",
    "\u{fffd}",
    "\u{ffff}",
    "\u{10ffff}",
    "🚀",
    "é",
    "' OR 1=1 --",
    "\"; DROP TABLE events; --",
    "\\u0000",
    "%00",
    "%",
    "../../etc/passwd",
    "null",
    "true",
    "0",
    "-1",
    "NaN",
    "Infinity",
    "lab-1",
    "global",
    "me",
    "catalog",
    "player-",
    "username-",
    "lab-",
    "message-",
    "dm:",
    "dm:me",
    "lab:",
    "channel:",
    "player:",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "1.2.3.4",
    "9223372036854775807.9223372036854775807.9223372036854775807.00000000000000000000000000000000",
    "-9223372036854775808.0.1.00000000000000000000000000000000",
    "0.0.9223372036854775807.ffffffffffffffffffffffffffffffff",
];

/// Numbers as JSON text, some beyond every range (and some beyond JSON's reach here).
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "1000",
    "1001",
    "100000",
    "100001",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
    "1.5",
    "-0.0",
    "1e2",
    "1E400",
    "-1e400",
    "1e308",
    "-1e308",
    "5e-324",
    "1e-400",
    "1.0",
];

/// Broken JSON fragments.
const BROKEN: &[&str] = &[
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u0000\"",
    "\"\\x41\"",
    "01",
    "+1",
    ".5",
    "1.",
    "tru",
    "'single'",
    "\"unterminated",
    "[1,]",
    "{\"a\" 1}",
    "NaN",
    "Infinity",
    "\u{0}",
];

/// Query values for the shared read parameters.
const POSITIONS: &[&str] = &[
    "0",
    "1",
    "3",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "1e3",
    "",
    "abc",
    "0x10",
    " 1",
];
const TIMES: &[&str] = &[
    "2000-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-13-45T99:99:99Z",
    "2026-11-29T18:00:00 01:00",
    "2026-11-29T18:00:00+99:00",
    "2026-11-29",
    "yesterday",
    "now",
];

/// What the generator knows about the world it attacks.
struct World {
    app: TestApp,
    admin: String,
    ada: Player,
    bob: Player,
    /// An identity that never registered.
    stranger: Player,
    /// A message of ada's in `global`.
    message: Uuid,
    /// ada's and bob's direct channel, canonical.
    dm: String,
    /// Authorization header values that must all be refused.
    bad_auth: Vec<Vec<u8>>,
}

/// One request and what its answer is allowed to be.
#[derive(Clone)]
struct Hostile {
    method: Method,
    /// Path and query, percent-encoded.
    target: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Vec<u8>>,
    /// A command: when refused, it must leave nothing behind.
    command: bool,
    /// It carries `min_position`: a 504 `not_caught_up` is its contract's answer.
    waits: bool,
}

impl Hostile {
    fn describe(&self) -> String {
        let mut out = format!("{} {}", self.method, cut(&self.target, 400));
        for (name, value) in &self.headers {
            let _ = write!(
                out,
                "\n  {name}: {}",
                cut(&String::from_utf8_lossy(value.as_bytes()), 120)
            );
        }
        if let Some(body) = &self.body {
            let _ = write!(
                out,
                "\n  body ({} bytes): {}",
                body.len(),
                cut(&String::from_utf8_lossy(body), 400)
            );
        }
        out
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

/// Percent-encodes every byte but the unreserved ones, so the target reaches the server as is.
fn pct(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn random_char(rng: &mut StdRng) -> char {
    loop {
        let code = match rng.gen_range(0..4) {
            0 => rng.gen_range(0..0x20),
            1 => rng.gen_range(0x20..0x7f),
            2 => rng.gen_range(0x80..0xffff),
            _ => rng.gen_range(0x1_0000..0x11_0000),
        };
        if let Some(c) = char::from_u32(code) {
            return c;
        }
    }
}

fn hostile_text(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0..=5 => (*TEXTS.choose(rng).expect("texts")).to_owned(),
        6 => {
            let mut s = "x".repeat(rng.gen_range(100..5_000));
            if rng.gen_bool(0.5) {
                s.insert(rng.gen_range(0..s.len()), '\u{0}');
            }
            s
        }
        7 => (0..rng.gen_range(1..40))
            .map(|_| random_char(rng))
            .collect(),
        8 => format!(
            "{}\u{0}{}",
            TEXTS.choose(rng).expect("texts"),
            TEXTS.choose(rng).expect("texts")
        ),
        _ => "é".repeat(rng.gen_range(150..2_100)),
    }
}

fn hostile_bytes(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..3) {
        0 => hostile_text(rng).into_bytes(),
        1 => (0..rng.gen_range(0..60)).map(|_| rng.gen()).collect(),
        _ => vec![0xff, 0xfe, b'a', 0xc3],
    }
}

/// Nesting as deep as a client likes.
fn deep(rng: &mut StdRng) -> String {
    let depth = *[127_usize, 128, 129, 200, 5_000, 20_000]
        .choose(rng)
        .expect("depths");
    if rng.gen_bool(0.5) {
        "[".repeat(depth) + "]".repeat(depth).as_str()
    } else {
        "{\"a\":".repeat(depth) + "1" + "}".repeat(depth).as_str()
    }
}

fn hostile_json(rng: &mut StdRng, depth: usize) -> String {
    match rng.gen_range(0..13) {
        0..=3 => json_string(&hostile_text(rng)),
        4 | 5 => (*NUMBERS.choose(rng).expect("numbers")).to_owned(),
        6 => (*["null", "true", "false"].choose(rng).expect("literals")).to_owned(),
        7 if depth < 3 => {
            let items: Vec<String> = (0..rng.gen_range(0..4))
                .map(|_| hostile_json(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(","))
        }
        8 if depth < 3 => hostile_object(rng, depth + 1),
        9 => deep(rng),
        10 => (*BROKEN.choose(rng).expect("broken")).to_owned(),
        11 => json_string(&"y".repeat(rng.gen_range(30_000..40_000))),
        _ => "{}".to_owned(),
    }
}

/// An object of hostile keys and values, sometimes naming a key twice.
fn hostile_object(rng: &mut StdRng, depth: usize) -> String {
    let mut members = Vec::new();
    for _ in 0..rng.gen_range(0..4) {
        let key = json_string(&hostile_text(rng));
        members.push(format!("{key}:{}", hostile_json(rng, depth)));
        if rng.gen_bool(0.2) {
            members.push(format!("{key}:{}", hostile_json(rng, depth)));
        }
    }
    format!("{{{}}}", members.join(","))
}

fn pick<'a>(rng: &mut StdRng, options: &[&'a str]) -> &'a str {
    options.choose(rng).expect("options")
}

impl World {
    fn player_id(&self, rng: &mut StdRng) -> String {
        match rng.gen_range(0..5) {
            0 => self.ada.id.to_string(),
            1 => self.bob.id.to_string(),
            2 => self.stranger.id.to_string(),
            3 => Uuid::nil().to_string(),
            _ => Uuid::new_v4().to_string(),
        }
    }

    /// A valid value for a command's field, as JSON text.
    fn valid(&self, rng: &mut StdRng, field: &str) -> String {
        match field {
            "username" => json_string(&format!("u{}", rng.gen::<u32>())),
            "timezone" => json_string(pick(
                rng,
                &["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"],
            )),
            "lab_id" => json_string(pick(rng, &["lab-1", "lab-2", "lab-3", "nope"])),
            "current_lab" => pick(rng, &["\"lab-1\"", "\"lab-2\"", "null"]).to_owned(),
            "module" => rng.gen_range(1..6).to_string(),
            "title" => json_string(pick(rng, &["A title", "Écrire", "🚀 rockets"])),
            "requires" => pick(rng, &["[]", "[1]", "[1, 2]", "[3]"]).to_owned(),
            "xp" => pick(rng, &["1", "50", "100000"]).to_owned(),
            "player_id" => json_string(&self.player_id(rng)),
            "achievement" => json_string(pick(rng, &["bug_hunter", "first_lab"])),
            "reason" => json_string("scripted completions"),
            "confirm" => json_string(pick(rng, &["ada", "bob", "nope", ""])),
            "vfs_snapshot" => {
                json!({"/home/a.txt": "hello", "/home/dir": {"b": [1, 2.5, "x", null]}}).to_string()
            }
            "current_step" => rng.gen_range(0..=1000).to_string(),
            "channel" => json_string(&match rng.gen_range(0..5) {
                0 => "global".to_owned(),
                1 => "lab:lab-1".to_owned(),
                2 => format!("dm:{}", self.bob.id),
                3 => self.dm.clone(),
                _ => "lab:nope".to_owned(),
            }),
            "content" => json_string(pick(rng, &["hello", "ünïcode 🚀", "a\tb\nc"])),
            "message_id" => json_string(&if rng.gen_bool(0.7) {
                self.message.to_string()
            } else {
                Uuid::new_v4().to_string()
            }),
            "leaderboard" => json_string(pick(rng, &["high_scores", "weekly", "nope"])),
            "score" | "subscore" => {
                pick(rng, &["0", "-7", "1000", "9223372036854775807"]).to_owned()
            }
            "order" => json_string(pick(rng, &["desc", "asc"])),
            "operator" => json_string(pick(rng, &["best", "set", "incr", "decr"])),
            "reset" => pick(rng, &["null", "\"0 0 * * 1\"", "\"*/15 * * * *\""]).to_owned(),
            "authoritative" => pick(rng, &["true", "false"]).to_owned(),
            "metadata" => json!({"car": "red", "laps": [1, 2.5]}).to_string(),
            "progress" => pick(rng, &["0", "5", "100"]).to_owned(),
            "goal" => pick(rng, &["1", "10"]).to_owned(),
            "hidden" => pick(rng, &["true", "false"]).to_owned(),
            "description" => json_string(pick(rng, &["", "Find the door", "🚪"])),
            "rule" => pick(
                rng,
                &[
                    "null",
                    r#"{"count": "lab_completed"}"#,
                    r#"{"count": "lab_completed", "where": {"lab_id": "lab-1"}}"#,
                    r#"{"score": "high_scores", "at_least": 100}"#,
                ],
            )
            .to_owned(),
            "collection" => json_string(pick(rng, &["saves", "world", "nope", "Saves"])),
            "read" => json_string(pick(rng, &["owner", "public"])),
            "write" => json_string(pick(rng, &["owner", "server"])),
            "max_bytes" => pick(rng, &["64", "65536", "1048576", "1048577", "0"]).to_owned(),
            "max_objects" => pick(rng, &["1", "100", "10000", "10001"]).to_owned(),
            "indexed" => pick(rng, &["[]", "[\"class\"]", "[\"class\", \"level\"]"]).to_owned(),
            "personal" => pick(rng, &["true", "false"]).to_owned(),
            "schema" => pick(
                rng,
                &[
                    "{\"type\": \"object\"}",
                    "{\"type\": \"object\", \"properties\": {\"level\": {\"type\": \"integer\"}}}",
                    "null",
                ],
            )
            .to_owned(),
            "key" => json_string(pick(rng, &["slot1", "slot2", "a.b:c-d_e", "x"])),
            "keys" => pick(rng, &["[\"slot1\"]", "[\"slot1\", \"slot2\", \"nope\"]"]).to_owned(),
            "value" => json!({"level": rng.gen_range(0..50), "class": "mage", "deep": {"a": [1, "x", null]}}).to_string(),
            "owner" => json_string(&match rng.gen_range(0..4) {
                0 => "me".to_owned(),
                1 => "game".to_owned(),
                2 => self.ada.id.to_string(),
                _ => self.bob.id.to_string(),
            }),
            "expected_version" => pick(rng, &["0", "1", "2", "7"]).to_owned(),
            "version" => pick(rng, &["1", "2", "3", "9"]).to_owned(),
            other => panic!("no valid value for {other}"),
        }
    }

    /// A valid value with a NUL character somewhere in it: text the database cannot store.
    fn poisoned(&self, rng: &mut StdRng, field: &str) -> String {
        let mut value: Value = serde_json::from_str(&self.valid(rng, field)).expect("valid JSON");
        let mut strings = Vec::new();
        let mut stack = vec![&mut value];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) => strings.push(s),
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(map) => stack.extend(map.values_mut()),
                _ => {}
            }
        }
        if let Some(s) = strings.choose_mut(rng) {
            let at = s.char_indices().map(|(i, _)| i).collect::<Vec<_>>();
            s.insert(at.choose(rng).copied().unwrap_or(0), '\u{0}');
        } else if let Value::Object(map) = &mut value {
            map.insert("/home/a\u{0}".to_owned(), json!("key with a NUL"));
        }
        value.to_string()
    }

    fn auth(&self, rng: &mut StdRng) -> Option<Vec<u8>> {
        let bearer = |token: &str| format!("Bearer {token}").into_bytes();
        match rng.gen_range(0..20) {
            0 | 1 => None,
            2 | 3 => Some(self.bad_auth.choose(rng).expect("bad auth").clone()),
            4 | 5 => Some(bearer(&self.stranger.token)),
            6..=10 => Some(bearer(&self.ada.token)),
            11..=13 => Some(bearer(&self.bob.token)),
            _ => Some(bearer(&self.admin)),
        }
    }

    fn with_auth(&self, rng: &mut StdRng, headers: &mut Vec<(HeaderName, HeaderValue)>) {
        if let Some(value) = self.auth(rng) {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.push((AUTHORIZATION, value));
            }
        }
    }

    fn command(&self, rng: &mut StdRng) -> Hostile {
        let (name, required, optional) = *COMMANDS.choose(rng).expect("commands");
        let path_name = if rng.gen_bool(0.95) {
            name.to_owned()
        } else {
            pct(&hostile_bytes(rng))
        };
        let body = match rng.gen_range(0..25) {
            0 => Vec::new(),
            1 => hostile_bytes(rng),
            2 => hostile_json(rng, 0).into_bytes(),
            // Over the body limit (1 MiB and 64 KiB).
            3 => format!(
                "{{\"content\": {}}}",
                json_string(&"z".repeat(rng.gen_range(1_114_112..1_130_000)))
            )
            .into_bytes(),
            4 => {
                let whole = self.object_body(rng, required, optional);
                let cut = rng.gen_range(0..whole.len().max(1));
                whole.as_bytes()[..cut].to_vec()
            }
            _ => self.object_body(rng, required, optional).into_bytes(),
        };
        let mut headers = Vec::new();
        self.with_auth(rng, &mut headers);
        if rng.gen_bool(0.15) {
            let key = if rng.gen_bool(0.7) {
                format!("key-{}", rng.gen_range(0..30)).into_bytes()
            } else {
                hostile_bytes(rng)
            };
            if let Ok(value) = HeaderValue::from_bytes(&key) {
                headers.push((HeaderName::from_static("idempotency-key"), value));
            }
        }
        if rng.gen_bool(0.1) {
            let id = if rng.gen_bool(0.5) {
                Uuid::new_v4().to_string().into_bytes()
            } else {
                hostile_bytes(rng)
            };
            if let Ok(value) = HeaderValue::from_bytes(&id) {
                headers.push((HeaderName::from_static("x-correlation-id"), value));
            }
        }
        if rng.gen_bool(0.1) {
            let kind = pick(
                rng,
                &[
                    "text/plain",
                    "application/xml",
                    "",
                    "application/json; charset=latin1",
                ],
            );
            headers.push((CONTENT_TYPE, HeaderValue::from_static(kind)));
        }
        Hostile {
            method: Method::POST,
            target: format!("/v1/commands/{path_name}"),
            headers,
            body: Some(body),
            command: true,
            waits: false,
        }
    }

    /// A JSON object for a command: all valid, one field hostile, or any field hostile; fields
    /// sometimes missing, named twice, or joined by a field the command does not have.
    fn object_body(&self, rng: &mut StdRng, required: &[&str], optional: &[&str]) -> String {
        let mut members = Vec::new();
        let optional = optional.iter().filter(|_| rng.gen_bool(0.5));
        let fields: Vec<&str> = required.iter().chain(optional).copied().collect();
        // Which fields may be hostile: one (the others valid, so the body gets far), any, none.
        let target = match rng.gen_range(0..10) {
            0..=4 => fields.choose(rng).copied(),
            5..=7 => None,
            _ => Some(""),
        };
        for &field in &fields {
            if rng.gen_bool(0.04) {
                continue;
            }
            let hostile = target.map_or(rng.gen_bool(0.4), |t| t == field);
            let value = |rng: &mut StdRng| {
                if !hostile {
                    self.valid(rng, field)
                } else if rng.gen_bool(0.3) {
                    self.poisoned(rng, field)
                } else if field == "vfs_snapshot" && rng.gen_bool(0.6) {
                    hostile_object(rng, 0)
                } else {
                    hostile_json(rng, 0)
                }
            };
            members.push(format!("{}:{}", json_string(field), value(rng)));
            if rng.gen_bool(0.05) {
                members.push(format!("{}:{}", json_string(field), value(rng)));
            }
        }
        if rng.gen_bool(0.05) {
            members.push(format!(
                "{}:{}",
                json_string(&hostile_text(rng)),
                hostile_json(rng, 1)
            ));
        }
        if rng.gen_bool(0.3) {
            members.shuffle(rng);
        }
        format!("{{{}}}", members.join(","))
    }

    fn player_ref(&self, rng: &mut StdRng) -> String {
        match rng.gen_range(0..6) {
            0 | 1 => "me".to_owned(),
            2 | 3 => self.player_id(rng),
            _ => pct(&hostile_bytes(rng)),
        }
    }

    fn lab_ref(&self, rng: &mut StdRng) -> String {
        if rng.gen_bool(0.6) {
            pick(rng, &["lab-1", "lab-2", "nope"]).to_owned()
        } else {
            pct(&hostile_bytes(rng))
        }
    }

    fn channel_ref(&self, rng: &mut StdRng) -> String {
        match rng.gen_range(0..7) {
            0 => "global".to_owned(),
            1 => "lab:lab-1".to_owned(),
            2 => format!("dm:{}", self.bob.id),
            3 => self.dm.clone(),
            4 => format!("dm:{}:{}", Uuid::new_v4(), Uuid::new_v4()),
            _ => pct(&hostile_bytes(rng)),
        }
    }

    fn stream_ref(&self, rng: &mut StdRng) -> String {
        match rng.gen_range(0..8) {
            0 => "catalog".to_owned(),
            1 => format!("player-{}", self.ada.id),
            2 => pick(rng, &["username-ada", "username-ADA", "username-"]).to_owned(),
            3 => format!("lab-{}-lab-1", self.ada.id),
            4 => format!("message-{}", self.message),
            5 => format!("lab-{}-", self.ada.id),
            _ => pct(&hostile_bytes(rng)),
        }
    }

    fn topic(&self, rng: &mut StdRng) -> String {
        match rng.gen_range(0..11) {
            0 => "leaderboard".to_owned(),
            1 => "presence".to_owned(),
            2 => "player:me".to_owned(),
            3 => format!("player:{}", self.player_id(rng)),
            4 => "channel:global".to_owned(),
            5 => format!("channel:{}", self.dm),
            6 => "lab:me:lab-1".to_owned(),
            7 => format!("lab:{}:lab-1", self.bob.id),
            8 => format!(
                "storage:{}:{}",
                pick(rng, &["saves", "world", "nope"]),
                pick(rng, &["me", "game", "x"])
            ),
            _ => pct(&hostile_bytes(rng)),
        }
    }

    fn read(&self, rng: &mut StdRng) -> Hostile {
        let mut method = Method::GET;
        let mut query: Vec<(String, String)> = Vec::new();
        let mut headers = Vec::new();
        let mut body = None;
        let value = |rng: &mut StdRng, valid: &[&str]| {
            if rng.gen_bool(0.5) {
                pick(rng, valid).to_owned()
            } else {
                pct(&hostile_bytes(rng))
            }
        };
        let path = match rng.gen_range(0..16) {
            0 => format!("/v1/players/{}", self.player_ref(rng)),
            1 => {
                if rng.gen_bool(0.5) {
                    query.push(("limit".into(), value(rng, &["1", "10", "100", "0", "101"])));
                }
                if rng.gen_bool(0.5) {
                    query.push(("after".into(), pct(hostile_text(rng).as_bytes())));
                }
                "/v1/leaderboard".to_owned()
            }
            2 => {
                if rng.gen_bool(0.5) {
                    query.push(("radius".into(), value(rng, &["0", "5", "50", "51", "-1"])));
                }
                format!("/v1/leaderboard/players/{}", self.player_ref(rng))
            }
            3 => "/v1/presence".to_owned(),
            4 => format!(
                "/v1/players/{}/labs/{}",
                self.player_ref(rng),
                self.lab_ref(rng)
            ),
            5 => {
                if rng.gen_bool(0.5) {
                    query.push(("limit".into(), value(rng, &["1", "50", "200", "201", "0"])));
                }
                if rng.gen_bool(0.4) {
                    let before = if rng.gen_bool(0.5) {
                        self.message.to_string()
                    } else {
                        pct(&hostile_bytes(rng))
                    };
                    query.push(("before".into(), before));
                }
                format!("/v1/channels/{}/messages", self.channel_ref(rng))
            }
            6 => "/v1/labs".to_owned(),
            7 => "/v1/admin/projections".to_owned(),
            8 => {
                if rng.gen_bool(0.5) {
                    query.push((
                        "to_version".into(),
                        value(rng, &["0", "1", "2", "18446744073709551615", "-1"]),
                    ));
                }
                format!("/v1/admin/streams/{}", self.stream_ref(rng))
            }
            9 | 10 => {
                for _ in 0..rng.gen_range(0..=18) {
                    query.push(("topic".into(), self.topic(rng)));
                }
                if rng.gen_bool(0.3) {
                    query.push((
                        "leaderboard_limit".into(),
                        value(rng, &["1", "10", "100", "0", "101"]),
                    ));
                }
                if rng.gen_bool(0.2) {
                    query.push((
                        "last_event_id".into(),
                        value(rng, &["0", "5", "-5", "9223372036854775807"]),
                    ));
                }
                if rng.gen_bool(0.2) {
                    let raw = if rng.gen_bool(0.5) {
                        pick(rng, &["0", "3", "-1", "9223372036854775807", "x"])
                            .as_bytes()
                            .to_vec()
                    } else {
                        hostile_bytes(rng)
                    };
                    if let Ok(value) = HeaderValue::from_bytes(&raw) {
                        headers.push((HeaderName::from_static("last-event-id"), value));
                    }
                }
                if rng.gen_bool(0.15) {
                    let token = match rng.gen_range(0..3) {
                        0 => self.ada.token.clone(),
                        1 => self.admin.clone(),
                        _ => pct(&hostile_bytes(rng)),
                    };
                    query.push(("access_token".into(), token));
                }
                if rng.gen_bool(0.1) {
                    query.push(("ticket".into(), pct(&hostile_bytes(rng))));
                }
                headers.push((
                    HeaderName::from_static("accept"),
                    HeaderValue::from_static("text/event-stream"),
                ));
                "/v1/subscribe".to_owned()
            }
            11 => pick(rng, &["/metrics", "/healthz", "/readyz"]).to_owned(),
            15 => {
                for (name, valid) in [
                    ("limit", &["1", "20", "100", "0", "101"][..]),
                    ("class", &["mage", "mage,rogue", ""][..]),
                    ("level[gte]", &["3", "x", "-1e400"][..]),
                    ("level[lte]", &["30"][..]),
                    ("class[contains]", &["ag", "%", "_\\"][..]),
                    ("sort", &["level", "class", "bio"][..]),
                    ("order", &["asc", "desc", "up"][..]),
                    ("after", &["5b22222c2261225d", "zz"][..]),
                    ("bio[near]", &["1"][..]),
                    ("as_of", &["1", "3"][..]),
                ] {
                    if rng.gen_bool(0.3) {
                        query.push((name.into(), value(rng, valid)));
                    }
                }
                let collection = pick(rng, &["saves", "world", "nope", "Bad"]);
                let owner = pick(rng, &["me", "game", "x"]).to_owned();
                match rng.gen_range(0..5) {
                    0 => format!("/v1/storage/{collection}"),
                    1 => format!("/v1/storage/{collection}/{owner}"),
                    2 => format!("/v1/storage/{collection}/{owner}/slot1"),
                    3 => format!("/v1/storage/{collection}/{owner}/slot1/versions"),
                    _ => format!(
                        "/v1/storage/{collection}/{}/{}",
                        self.ada.id,
                        pct(&hostile_bytes(rng))
                    ),
                }
            }
            12 => match rng.gen_range(0..6) {
                0 => format!("/v1/{}", pct(&hostile_bytes(rng))),
                1 => "/v1/commands".to_owned(),
                2 => "/v1/commands/update_streak/more".to_owned(),
                3 => "//".to_owned(),
                4 => "/v1/players/".to_owned(),
                _ => format!("/{}", pct(&hostile_bytes(rng))),
            },
            13 => {
                method = Method::POST;
                let route = pick(
                    rng,
                    &[
                        "/v1/identity",
                        "/v1/identity/refresh",
                        "/v1/subscribe/ticket",
                        "/v1/accounts/register",
                        "/v1/accounts/login",
                        "/v1/accounts/logout",
                        "/v1/accounts/logout_all",
                        "/v1/accounts/password",
                    ],
                );
                if rng.gen_bool(0.5) {
                    // The accounts' own fields with hostile values, so that their checks (not
                    // only the shape's) are reached.
                    let fields: &[&str] = match route {
                        "/v1/accounts/register" => &["email", "password", "username"],
                        "/v1/accounts/login" => &["email", "password"],
                        "/v1/accounts/password" => &["current", "new"],
                        "/v1/identity/refresh" => &["refresh_token"],
                        _ => &[],
                    };
                    let mut members = Vec::new();
                    for field in fields {
                        if rng.gen_bool(0.9) {
                            members.push(format!(
                                "{}:{}",
                                json_string(field),
                                hostile_json(rng, 1)
                            ));
                        }
                    }
                    body = Some(format!("{{{}}}", members.join(",")).into_bytes());
                } else if rng.gen_bool(0.5) {
                    body = Some(hostile_json(rng, 0).into_bytes());
                }
                route.to_owned()
            }
            _ => {
                method = [Method::PUT, Method::DELETE, Method::PATCH, Method::POST]
                    .choose(rng)
                    .expect("methods")
                    .clone();
                pick(
                    rng,
                    &[
                        "/v1/labs",
                        "/v1/leaderboard",
                        "/v1/players/me",
                        "/v1/subscribe",
                        "/v1/identity",
                        "/v1/commands/update_streak",
                    ],
                )
                .to_owned()
            }
        };
        // The parameters every read shares. A `min_position` always comes with a short wait.
        let mut waits = false;
        if rng.gen_bool(0.25) {
            waits = true;
            query.push(("min_position".into(), pick(rng, POSITIONS).to_owned()));
            query.push((
                "wait_ms".into(),
                pick(rng, &["0", "1", "20", "30001", "-1", "x"]).to_owned(),
            ));
        } else if rng.gen_bool(0.1) {
            query.push(("wait_ms".into(), pick(rng, POSITIONS).to_owned()));
        }
        if rng.gen_bool(0.25) {
            let as_of = if rng.gen_bool(0.5) {
                pick(rng, POSITIONS)
            } else {
                pick(rng, TIMES)
            };
            query.push(("as_of".into(), pct(as_of.as_bytes())));
        }
        if rng.gen_bool(0.05) {
            query.push((pct(&hostile_bytes(rng)), pct(&hostile_bytes(rng))));
        }
        self.with_auth(rng, &mut headers);
        let mut target = path;
        for (i, (k, v)) in query.iter().enumerate() {
            target.push(if i == 0 { '?' } else { '&' });
            let _ = write!(target, "{k}={v}");
        }
        Hostile {
            method,
            target,
            headers,
            body,
            command: false,
            waits,
        }
    }

    fn request(&self, rng: &mut StdRng) -> Hostile {
        if rng.gen_bool(0.55) {
            self.command(rng)
        } else {
            self.read(rng)
        }
    }
}

/// What the log and everything written beside it hold: a refused command must not change it.
async fn fingerprint(pool: &sqlx::PgPool) -> (i64, i64, i64, String, String) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM events),
                (SELECT coalesce(max(position), 0) FROM events),
                (SELECT count(*) FROM idempotency_keys),
                (SELECT md5(coalesce(string_agg(w::text, ',' ORDER BY player_id, lab_id), ''))
                   FROM lab_workspaces w),
                (SELECT md5(coalesce(string_agg(p::text, ',' ORDER BY player_id), ''))
                   FROM presence_seen p)",
    )
    .fetch_one(pool)
    .await
    .expect("read the log's fingerprint")
}

/// The answer to one request, or why it is not acceptable.
async fn send(
    client: &reqwest::Client,
    base: &str,
    request: &Hostile,
) -> Result<StatusCode, String> {
    let mut builder = client.request(request.method.clone(), format!("{base}{}", request.target));
    for (name, value) in &request.headers {
        builder = builder.header(name.clone(), value.clone());
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let response = tokio::time::timeout(ANSWER_WITHIN, builder.send())
        .await
        .map_err(|_| format!("no answer within {ANSWER_WITHIN:?}"))?
        .map_err(|e| format!("no answer: {e:#}"))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if status.is_success() {
        // A subscription streams on; the answer's head is enough.
        return Ok(status);
    }
    let body = tokio::time::timeout(ANSWER_WITHIN, response.bytes())
        .await
        .map_err(|_| format!("{status}: the body did not arrive within {ANSWER_WITHIN:?}"))?
        .map_err(|e| format!("{status}: the body broke off: {e:#}"))?;
    let problem: Option<Value> = serde_json::from_slice(&body).ok();
    let code = problem
        .as_ref()
        .and_then(|p| p["code"].as_str())
        .unwrap_or("");
    let shown = || format!("{status} {}", cut(&String::from_utf8_lossy(&body), 300));
    if content_type != "application/problem+json"
        || code.is_empty()
        || problem.as_ref().and_then(|p| p["status"].as_u64()) != Some(u64::from(status.as_u16()))
    {
        return Err(format!(
            "not problem+json with a code ({content_type:?}): {}",
            shown()
        ));
    }
    let contract =
        status == StatusCode::GATEWAY_TIMEOUT && code == "not_caught_up" && request.waits;
    if status.is_server_error() && !contract {
        return Err(format!("a server error: {}", shown()));
    }
    Ok(status)
}

async fn world() -> World {
    let mut serve = TestApp::serve_args();
    // Chat limits would refuse most chat commands before they reach the edge's checks.
    serve.modules.chat.chat_burst = std::num::NonZeroU32::new(1_000_000).expect("positive");
    serve.modules.chat.chat_per_minute = std::num::NonZeroU32::new(1_000_000).expect("positive");
    let db = questlog_tests::TestDb::create().await;
    let store = questlog_tests::store_args(&db);
    let app = TestApp::spawn_serving(db, store, questlog::app::Hooks::default(), serve).await;
    let admin = app.catalog(2, 100).await;
    app.ok(
        &admin,
        "define_module",
        json!({ "module": 2, "title": "Next", "requires": [1] }),
    )
    .await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    let stranger = app.identity().await;
    app.ok(&ada.token, "start_lab", json!({ "lab_id": "lab-1" }))
        .await;
    for (collection, read, write) in [("saves", "owner", "owner"), ("world", "public", "server")] {
        app.ok(
            &admin,
            "define_collection",
            json!({ "collection": collection, "read": read, "write": write, "indexed": ["class", "level"], "max_objects": 5 }),
        )
        .await;
    }
    app.ok(
        &ada.token,
        "put_object",
        json!({ "collection": "saves", "key": "slot1", "value": {"class": "mage", "level": 3} }),
    )
    .await;
    let sent = app
        .ok(
            &ada.token,
            "send_message",
            json!({ "channel": "global", "content": "hello" }),
        )
        .await;
    let message: Uuid = sent["events"][0]["data"]["message_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("message id");
    let dm = app
        .ok(
            &bob.token,
            "send_message",
            json!({ "channel": format!("dm:{}", ada.id), "content": "hi ada" }),
        )
        .await["events"][0]["data"]["channel"]
        .as_str()
        .expect("channel")
        .to_owned();
    let forged = questlog_web::TokenKeys::new(
        b"another secret, thirty-two bytes or more",
        chrono::Duration::days(1),
    )
    .issue(ada.id, Role::Admin);
    let expired = app
        .keys
        .issue_for(ada.id, Role::Admin, chrono::Duration::days(-1));
    let bad_auth = vec![
        Vec::new(),
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        format!("bearer {}", ada.token).into_bytes(),
        b"Basic dXNlcjpwYXNz".to_vec(),
        b"Bearer garbage".to_vec(),
        b"Bearer a.b.c".to_vec(),
        format!("Bearer {forged}").into_bytes(),
        format!("Bearer {expired}").into_bytes(),
        b"Bearer \xff\xfe".to_vec(),
        format!("Bearer {}x", ada.token).into_bytes(),
        format!("Bearer {}", "a".repeat(10_000)).into_bytes(),
    ];
    World {
        app,
        admin,
        ada,
        bob,
        stranger,
        message,
        dm,
        bad_auth,
    }
}

#[tokio::test]
async fn thousands_of_hostile_requests_get_no_server_error_and_refused_commands_leave_nothing_behind(
) {
    let names: Vec<&str> = COMMANDS.iter().map(|(name, _, _)| *name).collect();
    let domain = questlog::modules::app().domain();
    assert_eq!(names, domain.command_names(), "every command is attacked");
    let seed = seed();
    eprintln!("hostile input: seed {seed} (QUESTLOG_HOSTILE_SEED={seed} to run it again)");
    let w = world().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    // Subscriptions answer 503 until the process follows the projectors' announcements.
    questlog_tests::wait_until_async("live subscriptions are ready", || async {
        let response = client
            .get(w.app.url("/v1/subscribe?topic=presence"))
            .bearer_auth(&w.ada.token)
            .send()
            .await;
        response.is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;

    let mut rng = StdRng::seed_from_u64(seed);
    let base = w.app.address.clone();
    let pool = w.app.db.pool(2);
    let mut failures = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();

    // One at a time: each refused command is checked against the log.
    let mut before = fingerprint(&pool).await;
    for _ in 0..SEQUENTIAL {
        let request = w.request(&mut rng);
        match send(&client, &base, &request).await {
            Ok(status) => {
                *statuses.entry(status.as_u16()).or_default() += 1;
                if request.command {
                    let after = fingerprint(&pool).await;
                    if status != StatusCode::OK && after != before {
                        failures.push(format!(
                            "{status} but it left something behind ({before:?} -> {after:?}):\n{}",
                            request.describe()
                        ));
                    }
                    before = after;
                }
            }
            Err(why) => failures.push(format!("{why}\n{}", request.describe())),
        }
    }

    // Eight at a time: hostile commands share batches with valid ones.
    let requests: Vec<Hostile> = (0..CONCURRENT).map(|_| w.request(&mut rng)).collect();
    let answers: Vec<(Hostile, Result<StatusCode, String>)> =
        futures::stream::iter(requests.into_iter().map(|request| {
            let client = client.clone();
            let base = base.clone();
            async move {
                let answer = send(&client, &base, &request).await;
                (request, answer)
            }
        }))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for (request, answer) in answers {
        match answer {
            Ok(status) => *statuses.entry(status.as_u16()).or_default() += 1,
            Err(why) => failures.push(format!("{why}\n{}", request.describe())),
        }
    }
    pool.close().await;
    eprintln!("hostile input: statuses {statuses:?}");

    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {} hostile requests were answered wrongly:\n\n{}",
        failures.len(),
        SEQUENTIAL + CONCURRENT,
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    // The generator reached past the edge too: some commands were accepted.
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 100,
        "seed {seed}: too few requests got through to be a test: {statuses:?}"
    );
}
