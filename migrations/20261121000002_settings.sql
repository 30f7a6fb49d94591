-- Server-side settings shared by every process on this database, such as the generated
-- development token secret (used only when no secret is configured).
CREATE TABLE settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
