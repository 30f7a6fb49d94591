//! The TypeScript client (`clients/typescript`) and its Node tests against the running
//! application: `npm ci` (when its `node_modules` is missing; PyPI-like, the npm registry must be
//! reachable), `npm test` (build with tsc, then `node --test`) with the app's address and an
//! admin's token. Node 20 and npm must be installed; the test fails saying so when they are not.

use std::path::PathBuf;
use std::process::Command;

use questlog_tests::TestApp;

/// The client's folder.
pub fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript")
}

/// Runs `npm <args>` in the client's folder with `env`, installing its dependencies first.
///
/// # Panics
/// When npm is missing, cannot install, or the command fails (with its output).
pub async fn npm(args: &[&str], env: Vec<(&'static str, String)>) -> String {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        // The client's folder is shared (its `node_modules`, its build): one npm at a time in this
        // process (nextest's test group does it across processes).
        static FOLDER: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _folder = FOLDER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = client_dir();
        if !dir.join("node_modules/.package-lock.json").exists() {
            run(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    // playwright-core never downloads a browser; this keeps it so.
                    .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
                    .current_dir(&dir),
                "npm ci (Node 20 and npm installed, the npm registry reachable)",
            );
        }
        run(
            Command::new("npm").args(&args).envs(env).current_dir(&dir),
            &format!("npm {}", args.join(" ")),
        )
    })
    .await
    .expect("npm ran")
}

fn run(command: &mut Command, what: &str) -> String {
    match command.output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => panic!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("{what}: cannot run it: {e}"),
    }
}

#[tokio::test]
async fn the_typescript_clients_tests_pass_against_the_running_application() {
    let app = TestApp::spawn().await;
    // Its types are the running application's document, as generated: `npm run generate`
    // against a questlog of this build brings them up to date.
    let generated = tempfile::tempdir().expect("a temporary directory");
    let fresh = generated.path().join("api.ts");
    let fresh_path = fresh.to_string_lossy().into_owned();
    npm(
        &[
            "exec",
            "--",
            "openapi-typescript",
            &app.url("/v1/openapi.json"),
            "-o",
            &fresh_path,
        ],
        vec![],
    )
    .await;
    let committed = std::fs::read_to_string(client_dir().join("src/api.ts")).expect("src/api.ts");
    assert!(
        std::fs::read_to_string(&fresh).expect("generated") == committed,
        "clients/typescript/src/api.ts is not the document this build serves: \
         run `npm run generate` in clients/typescript against it"
    );
    let out = npm(
        &["test"],
        vec![
            ("QUESTLOG_URL", app.address.clone()),
            ("QUESTLOG_ADMIN_TOKEN", app.admin_token()),
        ],
    )
    .await;
    assert!(out.contains("# fail 0"), "{out}");
}
