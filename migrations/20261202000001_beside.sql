-- What commands keep beside the log, generic: a batch carries its beside writes grouped by kind,
-- and each kind is written by the SQL function its module defines,
-- `questlog_beside_<kind>(items jsonb, at timestamptz) RETURNS text[]` (in the module's own
-- migrations), in the append's own statement. A function that returns conflicts (a claim that no longer holds) makes the whole
-- append fail with SQLSTATE QL409, the conflicts one per line: nothing of the batch is written.
-- Every beside function runs after the append lock is taken, so they all see every append
-- committed before theirs.

DROP FUNCTION questlog_append(text[], bigint[], uuid[], text[], text[], integer[], jsonb[], jsonb[],
    uuid[], text[], text[], uuid[], integer[], integer[], uuid[], timestamptz, uuid[], text[],
    jsonb[], integer[], uuid[], timestamptz[]);

CREATE FUNCTION questlog_append(
    expect_streams  text[],
    expect_versions bigint[],
    ev_ids          uuid[],
    ev_streams      text[],
    ev_types        text[],
    ev_schemas      integer[],
    ev_data         jsonb[],
    ev_meta         jsonb[],
    idem_identities uuid[],
    idem_keys       text[],
    idem_hashes     text[],
    idem_commands   uuid[],
    idem_firsts     integer[],
    idem_counts     integer[],
    beside_kinds    text[],
    beside_items    jsonb[],
    beside_at       timestamptz,
    OUT positions   bigint[],
    OUT versions    bigint[],
    OUT head        bigint,
    OUT conflicts   text[]
) LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    refused text[] := '{}';
    c text[];
BEGIN
    SELECT a.positions, a.versions, a.head, a.conflicts
      INTO positions, versions, head, conflicts
      FROM questlog_append(expect_streams, expect_versions, ev_ids, ev_streams, ev_types, ev_schemas,
                           ev_data, ev_meta, idem_identities, idem_keys, idem_hashes, idem_commands,
                           idem_firsts, idem_counts) a;
    IF cardinality(conflicts) > 0 THEN
        RETURN;
    END IF;
    FOR i IN 1 .. coalesce(cardinality(beside_kinds), 0) LOOP
        IF beside_kinds[i] !~ '^[a-z_]+$' THEN
            RAISE EXCEPTION 'not a beside kind: %', beside_kinds[i] USING ERRCODE = 'invalid_parameter_value';
        END IF;
        EXECUTE format('SELECT questlog_beside_%s($1, $2)', beside_kinds[i])
           INTO c USING beside_items[i], beside_at;
        refused := refused || coalesce(c, '{}');
    END LOOP;
    IF cardinality(refused) > 0 THEN
        RAISE EXCEPTION '%', array_to_string(refused, E'\n') USING ERRCODE = 'QL409';
    END IF;
END
$$;
