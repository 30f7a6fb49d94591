//! The leaderboard: its order, its pages and a player's neighbours.

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use questlog_tests::query::TestApi;

/// Ids that sort in creation order, so ties on XP and position are predictable.
fn ids(n: usize) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    ids.sort();
    ids
}

fn ranks(entries: &Value) -> Vec<i64> {
    entries
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["rank"].as_i64().expect("rank"))
        .collect()
}

fn players(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["player_id"].as_str().expect("player_id").to_owned())
        .collect()
}

/// 25 players: XP 0..=1200 in steps, with ties on XP (broken by position) and on XP and position
/// (broken by id). Returns them in leaderboard order.
async fn seed_25(api: &TestApi) -> Vec<Uuid> {
    let ids = ids(25);
    let mut rows = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let i = i64::try_from(i).expect("small");
        let xp = (i % 5) * 300; // five XP levels, five players each
        let xp_position = 100 - (i % 3); // ties on position too
        rows.push((*id, xp, xp_position));
        api.insert_player(*id, &format!("p{i}"), xp, xp_position)
            .await;
    }
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
    rows.into_iter().map(|(id, _, _)| id).collect()
}

#[tokio::test]
async fn the_leaderboard_ranks_by_xp_then_by_who_reached_it_first() {
    let api = TestApi::spawn().await;
    let [a, b, c, d] = ids(4)[..] else {
        unreachable!()
    };
    api.insert_player(a, "alice", 100, 5).await;
    api.insert_player(b, "bob", 300, 9).await;
    api.insert_player(c, "carol", 100, 3).await;
    api.insert_player(d, "dave", 100, 3).await;
    api.set_checkpoint("players", 9).await;

    let answer = api.get("/v1/leaderboard", Some(&api.any_token())).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.position(), 9);
    assert_eq!(answer.body["position"], 9);
    assert_eq!(answer.body["next"], Value::Null);
    let entries = &answer.body["entries"];
    assert_eq!(
        players(entries),
        [b, c, d, a].map(|id| id.to_string()).to_vec()
    );
    assert_eq!(ranks(entries), vec![1, 2, 3, 4]);
    assert_eq!(
        entries[0],
        serde_json::json!({"rank": 1, "player_id": b, "username": "bob", "erased": false, "xp": 300, "level": 3})
    );
}

#[tokio::test]
async fn pages_follow_each_other_with_continuous_ranks() {
    let api = TestApi::spawn().await;
    let expected = seed_25(&api).await;
    let token = api.any_token();

    let mut seen = Vec::new();
    let mut all_ranks = Vec::new();
    let mut path = "/v1/leaderboard?limit=10".to_owned();
    let mut pages = 0;
    loop {
        let answer = api.get(&path, Some(&token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        pages += 1;
        seen.extend(players(&answer.body["entries"]));
        all_ranks.extend(ranks(&answer.body["entries"]));
        match answer.body["next"].as_str() {
            Some(cursor) => path = format!("/v1/leaderboard?limit=10&after={cursor}"),
            None => break,
        }
        assert!(pages < 5, "the pages never end");
    }

    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        expected.iter().map(Uuid::to_string).collect::<Vec<_>>()
    );
    assert_eq!(all_ranks, (1..=25).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_full_last_page_says_there_is_nothing_after_it() {
    let api = TestApi::spawn().await;
    seed_25(&api).await;
    let token = api.any_token();

    let first = api.get("/v1/leaderboard?limit=20", Some(&token)).await;
    let cursor = first.body["next"].as_str().expect("a next page");
    let last = api
        .get(
            &format!("/v1/leaderboard?limit=5&after={cursor}"),
            Some(&token),
        )
        .await;

    assert_eq!(ranks(&last.body["entries"]), vec![21, 22, 23, 24, 25]);
    assert_eq!(last.body["next"], Value::Null);
}

#[tokio::test]
async fn neighbours_come_with_their_ranks() {
    let api = TestApi::spawn().await;
    let order = seed_25(&api).await;
    api.set_checkpoint("players", 100).await;
    let token = api.any_token();

    // The 12th player with 3 each side: ranks 9 to 15.
    let answer = api
        .get(
            &format!("/v1/leaderboard/players/{}?radius=3", order[11]),
            Some(&token),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.position(), 100);
    assert_eq!(answer.body["position"], 100);
    assert_eq!(ranks(&answer.body["entries"]), (9..=15).collect::<Vec<_>>());
    assert_eq!(
        players(&answer.body["entries"]),
        order[8..15].iter().map(Uuid::to_string).collect::<Vec<_>>()
    );

    // At the top and at the bottom, the window is cut short.
    let top = api
        .get(
            &format!("/v1/leaderboard/players/{}?radius=2", order[0]),
            Some(&token),
        )
        .await;
    assert_eq!(ranks(&top.body["entries"]), vec![1, 2, 3]);
    let bottom = api
        .get(
            &format!("/v1/leaderboard/players/{}", order[24]),
            Some(&token),
        )
        .await;
    assert_eq!(
        ranks(&bottom.body["entries"]),
        (20..=25).collect::<Vec<_>>(),
        "5 each side by default"
    );

    // `me` is the caller; radius 0 is the entry alone.
    let me = api
        .get(
            "/v1/leaderboard/players/me?radius=0",
            Some(&api.player_token(order[4])),
        )
        .await;
    assert_eq!(ranks(&me.body["entries"]), vec![5]);
    assert_eq!(players(&me.body["entries"]), vec![order[4].to_string()]);
}

#[tokio::test]
async fn neighbours_of_an_unknown_player_are_not_found() {
    let api = TestApi::spawn().await;
    let answer = api
        .get(
            &format!("/v1/leaderboard/players/{}", Uuid::new_v4()),
            Some(&api.any_token()),
        )
        .await;
    answer.assert_problem(StatusCode::NOT_FOUND, "player_not_found");
}
