//! How a projection persists a batch: it reads the rows the batch touches in one statement
//! ([`Rows::load`]), folds them in memory, and writes what the fold decided in one statement
//! ([`Rows::upsert`], or [`Rows::insert`] for rows only ever added), the same SQL shape for every
//! read model; and, for a read model that keeps its history as versions, the closing of the open
//! versions a batch supersedes ([`close_open_versions`]).

use std::collections::BTreeMap;

use anyhow::Context as _;
use sqlx::postgres::PgRow;
use sqlx::query_builder::Separated;
use sqlx::{Encode, PgConnection, Postgres, QueryBuilder, Type};
use uuid::Uuid;

use crate::copy::{CopyLine, CopyRows};

/// A column's value: bound as a statement's parameter by the live projector, encoded for `COPY`
/// by a rebuild.
pub trait Column: for<'q> Encode<'q, Postgres> + Type<Postgres> + Send + 'static {}

impl<T> Column for T where T: for<'q> Encode<'q, Postgres> + Type<Postgres> + Send + 'static {}

/// Where a row's values go, in its columns' order: a statement's parameters ([`Rows::upsert`],
/// [`Rows::insert`]) or a `COPY` ([`CopyRows::row`]). A projection lists a row's values once, for
/// both.
pub trait RowSink {
    fn put<T: Column>(&mut self, value: T) -> &mut Self;

    /// A text value (`None`: NULL), copied only where a statement's parameter must own it: a
    /// rebuild's `COPY` encodes it where it lies.
    fn put_text(&mut self, value: Option<&str>) -> &mut Self;
}

impl RowSink for Separated<'_, '_, Postgres, &'static str> {
    fn put<T: Column>(&mut self, value: T) -> &mut Self {
        self.push_bind(value)
    }

    fn put_text(&mut self, value: Option<&str>) -> &mut Self {
        self.push_bind(value.map(str::to_owned))
    }
}

impl RowSink for CopyLine<'_> {
    fn put<T: Column>(&mut self, value: T) -> &mut Self {
        self.value(&value)
    }

    fn put_text(&mut self, value: Option<&str>) -> &mut Self {
        self.value(&value)
    }
}

/// A read model's table as its projection reads and writes it.
#[derive(Debug, Clone, Copy)]
pub struct Rows {
    pub table: &'static str,
    /// Its columns, in the order [`Rows::upsert`]'s `bind` binds them.
    pub columns: &'static [&'static str],
    /// The unique key a row is found by (a single UUID column for [`Rows::load`]).
    pub key: &'static [&'static str],
    /// The columns a write replaces when the row is there already.
    pub update: &'static [&'static str],
}

/// One row's values, bound in [`Rows::columns`]' order.
pub type Values<'q, 'args> = Separated<'q, 'args, Postgres, &'static str>;

impl Rows {
    /// Rows of this table for a rebuild's `COPY`, in [`Rows::columns`]' order.
    pub fn copy(&self) -> CopyRows {
        CopyRows::new(self.table, self.columns)
    }

    /// The rows whose key is one of `ids`, each read by `read` into its key and row.
    ///
    /// # Errors
    /// When the database fails or `read` refuses a stored row.
    pub async fn load<K: Ord, R>(
        &self,
        tx: &mut PgConnection,
        ids: &[Uuid],
        mut read: impl FnMut(&PgRow) -> anyhow::Result<(K, R)>,
    ) -> anyhow::Result<BTreeMap<K, R>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = ANY($1)",
            self.columns.join(", "),
            self.table,
            self.key.join(", ")
        );
        let found = sqlx::query(&sql)
            .bind(ids)
            .fetch_all(&mut *tx)
            .await
            .with_context(|| format!("loading {}", self.table))?;
        found.iter().map(&mut read).collect()
    }

    /// Writes `rows` in one statement, each row's values bound by `bind`: added, or its
    /// [`Rows::update`] columns replaced where a row with its key is there. No rows, no
    /// statement.
    ///
    /// # Errors
    /// When the database refuses the statement.
    pub async fn upsert<'args, R>(
        &self,
        tx: &mut PgConnection,
        rows: impl IntoIterator<Item = R>,
        bind: impl FnMut(Values<'_, 'args>, R),
    ) -> anyhow::Result<()> {
        let update: Vec<String> = self
            .update
            .iter()
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let conflict = format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            self.key.join(", "),
            update.join(", ")
        );
        self.write(tx, rows, bind, &conflict).await
    }

    /// Adds `rows` in one statement, each row's values bound by `bind`. No rows, no statement.
    ///
    /// # Errors
    /// When the database refuses the statement.
    pub async fn insert<'args, R>(
        &self,
        tx: &mut PgConnection,
        rows: impl IntoIterator<Item = R>,
        bind: impl FnMut(Values<'_, 'args>, R),
    ) -> anyhow::Result<()> {
        self.write(tx, rows, bind, "").await
    }

    async fn write<'args, R>(
        &self,
        tx: &mut PgConnection,
        rows: impl IntoIterator<Item = R>,
        bind: impl FnMut(Values<'_, 'args>, R),
        then: &str,
    ) -> anyhow::Result<()> {
        let mut rows = rows.into_iter().peekable();
        if rows.peek().is_none() {
            return Ok(());
        }
        let mut query: QueryBuilder<'args, Postgres> = QueryBuilder::new(format!(
            "INSERT INTO {} ({}) ",
            self.table,
            self.columns.join(", ")
        ));
        query.push_values(rows, bind);
        query.push(then);
        query
            .build()
            .execute(&mut *tx)
            .await
            .with_context(|| format!("writing {}", self.table))?;
        Ok(())
    }
}

/// Closes the open version (`valid_to` = `i64::MAX`) of each key in `table` at the position its
/// first new version of the batch is valid from.
///
/// # Errors
/// When the database fails.
pub async fn close_open_versions(
    tx: &mut PgConnection,
    table: &str,
    key: &str,
    firsts: impl IntoIterator<Item = (Uuid, i64)>,
) -> anyhow::Result<()> {
    let (ids, froms): (Vec<Uuid>, Vec<i64>) = firsts.into_iter().unzip();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "UPDATE {table} h SET valid_to = v.valid_from \
           FROM unnest($1::uuid[], $2::bigint[]) AS v({key}, valid_from) \
          WHERE h.{key} = v.{key} AND h.valid_to = 9223372036854775807"
    ))
    .bind(&ids)
    .bind(&froms)
    .execute(&mut *tx)
    .await
    .with_context(|| format!("closing the open versions of {table}"))?;
    Ok(())
}

/// Keeps the row of `live` whose text key `key_column` is `key`, as it stands after the event at
/// `position`, as its version from there on in `versions` (the same `columns`, then
/// `valid_from` and `valid_to`), closing the version it supersedes. For read models small enough
/// to keep a version per change of a row; no row, no new version.
///
/// # Errors
/// When the database fails.
pub async fn record_version(
    tx: &mut PgConnection,
    live: &str,
    versions: &str,
    columns: &[&str],
    key_column: &str,
    key: &str,
    position: i64,
) -> anyhow::Result<()> {
    let columns = columns.join(", ");
    sqlx::query(&format!(
        "WITH closed AS (UPDATE {versions} SET valid_to = $2 \
                          WHERE {key_column} = $1 AND valid_to = {OPEN} AND valid_from < $2) \
         INSERT INTO {versions} ({columns}, valid_from) \
         SELECT {columns}, $2 FROM {live} WHERE {key_column} = $1 \
         ON CONFLICT ({key_column}, valid_from) DO NOTHING"
    ))
    .bind(key)
    .bind(position)
    .execute(&mut *tx)
    .await
    .with_context(|| format!("recording a version of {live}"))?;
    Ok(())
}

/// The end of an open version's range: valid until a later event changes it.
pub const OPEN: i64 = i64::MAX;
