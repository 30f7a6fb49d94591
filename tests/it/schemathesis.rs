//! A bounded schemathesis run (property-based requests generated from `GET /v1/openapi.json`)
//! against the running application: with an admin's token and a player's, every operation but the
//! event stream (which never ends) gets valid and invalid parameters and bodies, and no answer may
//! be a fault; every error must be problem+json with a stable code (`tests/schemathesis/hooks.py`).
//!
//! schemathesis comes from PyPI, installed on first use into a virtualenv in the target directory
//! (`python3 -m venv`, `pip install schemathesis==<SCHEMATHESIS>`); when that cannot be done the
//! test fails and says why.

use std::path::{Path, PathBuf};
use std::process::Command;

use questlog_tests::TestApp;

/// The schemathesis release the run uses (a newer one may generate other cases).
const SCHEMATHESIS: &str = "4.32.5";

/// The generated cases per operation and token.
const EXAMPLES: &str = "6";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

/// The `st` command of a virtualenv holding schemathesis, made on first use.
///
/// # Panics
/// When Python or PyPI cannot provide it.
fn schemathesis() -> PathBuf {
    let venv = target_dir().join(format!("schemathesis-{SCHEMATHESIS}"));
    let st = venv.join("bin/st");
    // Written last: a run interrupted half-way leaves no virtualenv taken for a whole one.
    let installed = venv.join("installed");
    if installed.exists() {
        return st;
    }
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "making a virtualenv with python3 -m venv (Debian: apt-get install python3-venv)",
    );
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("schemathesis=={SCHEMATHESIS}")),
        "installing schemathesis from PyPI",
    );
    std::fs::write(&installed, SCHEMATHESIS).expect("the virtualenv is writable");
    st
}

fn run(command: &mut Command, what: &str) {
    match command.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "schemathesis cannot be installed: {what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("schemathesis cannot be installed: {what}: {e}"),
    }
}

/// Runs schemathesis with `token` against `app`; its report when it found anything.
async fn fuzz(st: PathBuf, app: &TestApp, token: String) -> Result<(), String> {
    let schema = app.url("/v1/openapi.json");
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis");
    let seed =
        std::env::var("QUESTLOG_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261207".to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .args(["run", &schema, "--header"])
            .arg(format!("Authorization: Bearer {token}"))
            .args([
                "--checks",
                "problem_with_a_stable_code",
                "--phases",
                "examples,fuzzing",
                "--max-examples",
                EXAMPLES,
                "--seed",
                &seed,
                "--workers",
                "2",
                "--request-timeout",
                "20",
                "--exclude-path",
                "/v1/subscribe",
                "--no-color",
            ])
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", hooks)
            .output()
            .expect("schemathesis runs")
    })
    .await
    .expect("schemathesis ran");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[tokio::test]
async fn schemathesis_finds_no_fault_and_only_problem_json_errors_with_stable_codes() {
    let st = tokio::task::spawn_blocking(schemathesis)
        .await
        .expect("installed");
    let app = TestApp::spawn().await;
    let player = app.player("fuzzed").await;
    let (admin, player) = tokio::join!(
        fuzz(st.clone(), &app, app.admin_token()),
        fuzz(st, &app, player.token),
    );
    if let Err(report) = admin {
        panic!("with an admin's token:\n{report}");
    }
    if let Err(report) = player {
        panic!("with a player's token:\n{report}");
    }
}
