//! What ties everything questlog derives from the log — a JetStream stream, a read model's
//! checkpoint — to *this* database's log: an event is this log's when the log holds its id at its
//! position. Event ids are random, so another deployment's log, or the part of this log that a
//! restored backup no longer has, never matches.

use sqlx::PgConnection;
use uuid::Uuid;

/// The first of `events` (position, id) that this log does not hold, if any.
///
/// Each event is one probe of the log's primary key, a subquery per event that no plan can turn
/// into a scan of the whole log (a hash anti-join, which a plan made while the log was small
/// would keep as it grows).
///
/// # Errors
/// When the query fails.
pub async fn first_foreign(
    conn: &mut PgConnection,
    events: &[(i64, Uuid)],
) -> Result<Option<(i64, Uuid)>, sqlx::Error> {
    if events.is_empty() {
        return Ok(None);
    }
    let (positions, ids): (Vec<i64>, Vec<Uuid>) = events.iter().copied().unzip();
    sqlx::query_as(
        "SELECT b.p, b.id FROM unnest($1::bigint[], $2::uuid[]) WITH ORDINALITY AS b(p, id, ord) \
         WHERE (SELECT e.event_id FROM events e WHERE e.position = b.p) IS DISTINCT FROM b.id \
         ORDER BY b.ord LIMIT 1",
    )
    .bind(positions)
    .bind(ids)
    .fetch_optional(conn)
    .await
}

/// A projector's batch step, in one round trip: locks `projection`'s checkpoint row (`FOR UPDATE`)
/// and returns its position, with the first of `events` (position, id) that this log does not
/// hold, if any.
///
/// # Errors
/// When the query fails or the checkpoint row does not exist.
pub async fn lock_checkpoint(
    conn: &mut PgConnection,
    projection: &str,
    events: &[(i64, Uuid)],
) -> Result<(i64, Option<(i64, Uuid)>), sqlx::Error> {
    let (positions, ids): (Vec<i64>, Vec<Uuid>) = events.iter().copied().unzip();
    let (checkpoint, position, id): (i64, Option<i64>, Option<Uuid>) = sqlx::query_as(
        "SELECT c.position, f.p, f.id FROM projection_checkpoints c \
         LEFT JOIN LATERAL ( \
             SELECT b.p, b.id FROM unnest($2::bigint[], $3::uuid[]) WITH ORDINALITY AS b(p, id, ord) \
              WHERE (SELECT e.event_id FROM events e WHERE e.position = b.p) IS DISTINCT FROM b.id \
              ORDER BY b.ord LIMIT 1) f ON true \
         WHERE c.projection = $1 FOR UPDATE OF c",
    )
    .bind(projection)
    .bind(positions)
    .bind(ids)
    .fetch_one(conn)
    .await?;
    Ok((checkpoint, position.zip(id)))
}

/// A read model whose checkpoint is not a point of this log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignCheckpoint {
    pub projection: String,
    pub position: i64,
    /// The log's head, for the message.
    pub head: i64,
}

/// The read models whose checkpoint names an event this log does not hold at that position (or,
/// for a checkpoint written before event ids were kept, a position beyond the log's head or at
/// which the log has no event).
///
/// # Errors
/// When the query fails.
pub async fn foreign_checkpoints(
    conn: &mut PgConnection,
) -> Result<Vec<ForeignCheckpoint>, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT c.projection, c.position, (SELECT coalesce(max(position), 0) FROM events) \
           FROM projection_checkpoints c \
          WHERE c.position > 0 AND NOT EXISTS ( \
                SELECT 1 FROM events e \
                 WHERE e.position = c.position AND (c.event_id IS NULL OR e.event_id = c.event_id)) \
          ORDER BY c.projection",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(projection, position, head)| ForeignCheckpoint {
            projection,
            position,
            head,
        })
        .collect())
}

/// This database's identity as a log: the cluster's system identifier and the database's oid.
/// A restored backup, a copy in another database or cluster and a new database each have another;
/// a streaming replica has the same (it is the same log). Change announcements carry it, so that a
/// listener on a NATS server shared with another deployment ignores that deployment's.
///
/// # Errors
/// When the query fails.
pub async fn identity(conn: &mut PgConnection) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT (SELECT system_identifier FROM pg_control_system())::text || ':' || d.oid::text \
           FROM pg_database d WHERE d.datname = current_database()",
    )
    .fetch_one(conn)
    .await
}
