-- The storage module's read model: every version of every object, one row per event of an
-- object's stream. A version is valid over [position, valid_to): the current version of an
-- object has no valid_to, and a deletion's version has no value. Live reads take the current
-- versions that have a value; as-of reads the versions valid at a position.
-- Each collection's indexed fields get their own partial expression indexes, created by the
-- projection when the collection is defined (see modules/storage/src/projection.rs).
CREATE TABLE rm_storage_versions (
    collection text        NOT NULL,
    owner      text        NOT NULL,
    key        text        NOT NULL,
    version    bigint      NOT NULL,
    op         text        NOT NULL CHECK (op IN ('write', 'delete', 'restore')),
    value      jsonb,
    by_id      uuid        NOT NULL,
    written_at timestamptz NOT NULL,
    position   bigint      NOT NULL,
    valid_to   bigint,
    PRIMARY KEY (collection, owner, key, version)
);

-- An object's current version (live reads of one object, and the projection's loads).
CREATE UNIQUE INDEX rm_storage_versions_current
    ON rm_storage_versions (collection, owner, key) WHERE valid_to IS NULL;
-- The public listing across owners, by key.
CREATE INDEX rm_storage_versions_public
    ON rm_storage_versions (collection, key, owner) WHERE valid_to IS NULL AND value IS NOT NULL;
