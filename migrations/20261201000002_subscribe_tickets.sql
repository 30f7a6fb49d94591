-- Single-use, short-lived tickets for `GET /v1/subscribe?ticket=…`, so that a long-lived token
-- never sits in a URL (where proxies and logs keep it). Only the ticket's SHA-256 is kept: the
-- table cannot be used to subscribe. A subscription deletes its ticket as it opens (single use,
-- whichever query API process it reaches).
CREATE TABLE subscribe_tickets (
    ticket_sha256     bytea       PRIMARY KEY,
    identity          uuid        NOT NULL,
    role              text        NOT NULL,
    topics            text[]      NOT NULL,
    leaderboard_limit integer     NOT NULL,
    expires_at        timestamptz NOT NULL
);

CREATE INDEX subscribe_tickets_expiry ON subscribe_tickets (expires_at);
