// The client against a running questlog: QUESTLOG_URL (its address) and QUESTLOG_ADMIN_TOKEN (an
// admin's token, to define the catalog) come from the suite's test that starts it
// (tests/it/typescript.rs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Questlog, QuestlogError } from "../dist/index.js";

const baseUrl = process.env.QUESTLOG_URL;
const admin = new Questlog({ baseUrl, credentials: { token: process.env.QUESTLOG_ADMIN_TOKEN } });
const unique = () => Math.random().toString(36).slice(2, 10);

/** A lab worth `xp` in module 1. */
async function lab(xp) {
  const id = `lab_${unique()}`;
  await admin.command("define_module", { module: 1, title: "Basics", requires: [] });
  await admin.command("define_lab", { lab_id: id, module: 1, title: "A lab", xp });
  return id;
}

/** Resolves with the first value `poll` finds, within 20 s; rejects with what `poll` throws. */
function within(what, poll) {
  return new Promise((resolve, reject) => {
    const stop = () => {
      clearTimeout(deadline);
      clearInterval(check);
    };
    const deadline = setTimeout(() => {
      stop();
      reject(new Error(`no ${what} within 20 s`));
    }, 20_000);
    const check = setInterval(() => {
      let found;
      try {
        found = poll();
      } catch (error) {
        stop();
        reject(error);
        return;
      }
      if (found !== undefined) {
        stop();
        resolve(found);
      }
    }, 20);
  });
}

test("a typed command, then the read as of its position sees it", async () => {
  const player = await Questlog.anonymous({ baseUrl });
  const username = `p_${unique()}`;
  const outcome = await player.command("register_player", { username }, { idempotencyKey: unique() });
  assert.equal(outcome.events.at(-1).type, "player_registered");
  const profile = await player.read("/v1/players/{id}", {
    path: { id: "me" },
    query: { min_position: outcome.position, wait_ms: 10000 },
  });
  assert.equal(profile.data.username, username);
  assert.ok(profile.position >= outcome.position);
});

test("a refused command throws its problem's stable code", async () => {
  const player = await Questlog.anonymous({ baseUrl });
  await assert.rejects(player.command("register_player", { username: "no spaces allowed" }), (error) => {
    assert.ok(error instanceof QuestlogError);
    assert.equal(error.status, 422);
    assert.equal(error.code, "invalid_username");
    return true;
  });
});

test("a session whose access token is refused renews it once with its rotating refresh token", async () => {
  const kept = [];
  const client = new Questlog({ baseUrl, onCredentials: (c) => kept.push(c) });
  const email = `${unique()}@example.com`;
  const first = await client.register({ email, password: "correct horse battery staple", username: `a_${unique()}` });
  assert.ok(first.refreshToken);
  // As an expired access token is: refused with 401 `unauthorized`.
  client.credentials = { ...client.credentials, token: "expired" };
  const online = await client.read("/v1/presence");
  assert.ok(Array.isArray(online.data.online));
  const renewed = kept.at(-1);
  assert.equal(renewed.identity, first.identity);
  assert.notEqual(renewed.refreshToken, first.refreshToken, "the refresh token rotated");
  assert.notEqual(renewed.token, "expired");
  // Two calls that find the token refused at once renew it once: a second renewal with the same
  // refresh token would be taken for a stolen copy and end the session.
  client.credentials = { ...client.credentials, token: "expired" };
  await Promise.all([client.read("/v1/presence"), client.read("/v1/presence")]);
  assert.equal(kept.length, 3);
});

test("a live subscription gets the pushed XP, and resumes after the last event it received", async () => {
  const xp = await lab(120);
  const more = await lab(30);
  const player = await Questlog.anonymous({ baseUrl });
  await player.command("register_player", { username: `s_${unique()}` });
  const topic = `player:${player.credentials.identity}`;
  // The snapshot's data is null when the subscription opens before the players projection has
  // applied the registration (documented: the registration follows as a change).
  const seen = [];
  const live = player.subscribe([topic], {
    onSnapshot: (s) => seen.push(s.data),
    onChange: (c) => seen.push(c.data),
  });
  let resumeAfter;
  try {
    await within("snapshot", () => (seen.length > 0 ? true : undefined));
    const done = await player.command("complete_lab", { lab_id: xp });
    await within("push of 120 XP", () => seen.find((p) => p?.xp === 120));
    resumeAfter = live.lastEventId;
    assert.ok(resumeAfter >= done.position);
  } finally {
    live.close();
  }
  await live.closed;

  // Meanwhile, another lab: the resumed subscription brings it, and nothing at or before where
  // it left off.
  await player.command("complete_lab", { lab_id: more });
  const after = [];
  const resumed = player.subscribe([topic], {
    after: resumeAfter,
    onSnapshot: (s) => after.push(s),
    onChange: (c) => after.push(c),
  });
  try {
    const latest = await within("the resumed push", () => after.find((e) => e.data?.xp === 150));
    assert.ok(latest.position > resumeAfter);
    assert.ok(after.every((e) => e.position > resumeAfter), "nothing already received is sent again");
  } finally {
    resumed.close();
  }
  await resumed.closed;
});
