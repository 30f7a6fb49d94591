//! Projector processes split the projections between them: each leads its share, a process that
//! joins takes half from the one that led them all, and the one left alone takes them all back,
//! with every command folded once throughout.

use questlog_tests::{position, TestApp, TestDb};
use serde_json::json;

use crate::faults::{assert_verify_is_clean, wait_caught_up, wait_for, wait_until};

/// How many projections each projector process leads now (the lanes' connections hold their
/// leadership locks and carry their process's application name), most first.
async fn led(pool: &sqlx::PgPool) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
          WHERE l.locktype = 'advisory' AND l.granted \
            AND a.datname = current_database() \
            AND a.application_name LIKE 'questlog-projector %' \
          GROUP BY a.application_name ORDER BY 1 DESC",
    )
    .fetch_all(pool)
    .await
    .expect("leaders")
}

#[tokio::test]
async fn two_projector_processes_split_the_projections_and_the_one_left_takes_them_all_back() {
    let db = TestDb::create().await;
    let pool = db.pool(1);
    let one = TestApp::spawn_on(db.share()).await;
    let (_, _, listed) = one.get(&one.admin_token(), "/v1/admin/projections").await;
    let projections =
        i64::try_from(listed["projections"].as_array().expect("listed").len()).expect("a count");
    wait_until("the first process leads every projection", || async {
        led(&pool).await == [projections]
    })
    .await;
    one.catalog(2, 100).await;

    let two = TestApp::spawn_on(db.share()).await;
    let half = (projections + 1) / 2;
    let split = wait_for("the two processes lead their shares", || async {
        let counts = led(&pool).await;
        (counts.len() == 2 && counts.iter().sum::<i64>() == projections && counts[0] <= half)
            .then_some(counts)
    })
    .await;
    assert_eq!(split, [half, projections - half]);

    // Commands sent to either are folded, whichever process leads their projections, and read
    // back from either.
    let ada = one.player("ada").await;
    let done = one
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    let profile = two
        .read_at(&ada.token, "/v1/players/me", position(&done))
        .await;
    assert_eq!(profile["xp"], 100);

    // The second process stops: the first takes back what it led.
    drop(two.stop().await);
    wait_until("the process left leads every projection", || async {
        led(&pool).await == [projections]
    })
    .await;
    let done = one
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-2" }))
        .await;
    let profile = one
        .read_at(&ada.token, "/v1/players/me", position(&done))
        .await;
    assert_eq!(profile["xp"], 200);
    wait_caught_up(&one, position(&done)).await;
    assert_verify_is_clean(&db).await;
}
