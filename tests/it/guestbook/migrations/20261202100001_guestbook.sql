-- The guestbook's read model: one row per signature.
CREATE TABLE rm_guestbook (
    player_id uuid PRIMARY KEY,
    text      text   NOT NULL,
    position  bigint NOT NULL
);
