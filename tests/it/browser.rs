//! A web page served from another origin than questlog's uses the TypeScript client in a real
//! headless Chromium (Debian's `chromium`, driven over the DevTools protocol by playwright-core,
//! which downloads no browser; `clients/typescript/browser/`): it gets an identity, registers,
//! completes a lab, and shows the XP pushed over Server-Sent Events. `scripts/test.sh` installs
//! Chromium when it can; without it the test says so and passes without running.

use std::path::{Path, PathBuf};

use questlog_tests::TestApp;

use crate::typescript::npm;

/// Chromium's executable: `CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| Path::new(candidate).is_file())
    })
}

#[tokio::test]
async fn a_page_from_another_origin_gets_an_identity_sends_a_command_and_receives_the_push() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED: no Chromium (set CHROMIUM, or install Debian's `chromium`: scripts/test.sh \
             does as root)"
        );
        return;
    };
    // The default CORS policy lets any origin in; the page is on another port.
    let app = TestApp::spawn().await;
    let out = npm(
        &["run", "browser"],
        vec![
            ("QUESTLOG_URL", app.address.clone()),
            ("QUESTLOG_ADMIN_TOKEN", app.admin_token()),
            ("CHROMIUM", chromium.to_string_lossy().into_owned()),
        ],
    )
    .await;
    assert!(out.contains("got 75 XP pushed"), "{out}");
}
