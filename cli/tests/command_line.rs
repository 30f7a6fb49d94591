//! The `questlog` binary's command line: the modules' admin commands are commands of the binary,
//! run as an operator runs them.

use std::process::{Command, Output};

use sqlx::{Connection, Executor, PgConnection};

/// A database made for one test, dropped when it ends.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn new() -> Self {
        let admin = std::env::var("QUESTLOG_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("questlog_cli_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin).await.expect("Postgres is up");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("creating the test database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Self { admin, name, url }
    }

    async fn events(&self) -> i64 {
        let mut conn = PgConnection::connect(&self.url).await.expect("connects");
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&mut conn)
            .await
            .expect("counts the log")
    }

    async fn drop(self) {
        let mut conn = PgConnection::connect(&self.admin).await.expect("connects");
        conn.execute(format!("DROP DATABASE {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("dropping the test database");
    }
}

fn questlog(database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_questlog"))
        .args(args)
        .env("QUESTLOG_DATABASE_URL", database)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

const CATALOG: &str = r#"
[[module]]
number = 1
title = "Shell basics"

[[lab]]
id = "ls"
module = 1
title = "Listing files"
xp = 150
"#;

#[tokio::test]
async fn a_module_s_admin_command_runs_from_the_binary_s_command_line() {
    let help = questlog("postgres://unused/none", &["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.lines().any(|l| l.trim_start().starts_with("catalog")),
        "the binary lists the academy's command beside its own: {help}"
    );

    let db = Database::new().await;
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), CATALOG).expect("writes the catalog");
    let path = file.path().to_str().expect("a UTF-8 path");

    let applied = questlog(&db.url, &["catalog", "apply", path, "--json"]);
    assert!(applied.status.success(), "{applied:?}");
    let rows: serde_json::Value = serde_json::from_slice(&applied.stdout).expect("JSON");
    let results: Vec<&str> = rows
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["result"].as_str().expect("a result"))
        .collect();
    assert_eq!(results, ["defined", "defined"], "{rows}");
    assert_eq!(db.events().await, 2);

    // Again: nothing new is appended.
    let again = questlog(&db.url, &["catalog", "apply", path, "--json"]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(db.events().await, 2);

    // Without its subcommand, the command says how it is used and touches nothing.
    let bare = questlog(&db.url, &["catalog"]);
    assert_eq!(bare.status.code(), Some(2), "{bare:?}");
    assert!(String::from_utf8_lossy(&bare.stderr).contains("apply"));
    db.drop().await;
}
