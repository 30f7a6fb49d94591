//! Bulk writes for rebuilds: rows encoded in `COPY`'s text format as a fold in memory decides them,
//! and sent in one `COPY … FROM STDIN` per table and flush ([`CopyRows`]).

use std::fmt::{Display, Write as _};

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// One column's value as `COPY`'s text format writes it.
pub trait CopyValue {
    /// Appends the value, escaped for `COPY`'s text format (`\N` for SQL NULL).
    fn copy_to(&self, out: &mut String);
}

/// Appends `text` with `COPY`'s escapes (backslash, tab, newline, carriage return).
fn escaped(text: &str, out: &mut String) {
    if !text.contains(['\\', '\t', '\n', '\r']) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

impl CopyValue for String {
    fn copy_to(&self, out: &mut String) {
        escaped(self, out);
    }
}

impl<T: CopyValue> CopyValue for Option<T> {
    fn copy_to(&self, out: &mut String) {
        match self {
            Some(v) => v.copy_to(out),
            None => out.push_str("\\N"),
        }
    }
}

macro_rules! display_value {
    ($($t:ty),*) => {$(
        impl CopyValue for $t {
            fn copy_to(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
display_value!(i32, i64, bool, Uuid);

impl CopyValue for DateTime<Utc> {
    fn copy_to(&self, out: &mut String) {
        // ISO 8601 with the zone: read back as the same instant (Postgres keeps microseconds, as
        // every time the log holds has).
        out.push_str(&self.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
}

impl CopyValue for NaiveDate {
    fn copy_to(&self, out: &mut String) {
        let _ = write!(out, "{}", self.format("%Y-%m-%d"));
    }
}

impl CopyValue for Value {
    fn copy_to(&self, out: &mut String) {
        escaped(&self.to_string(), out);
    }
}

/// An array column (`text[]`, `integer[]`): an array literal, every element quoted.
impl<T: Display> CopyValue for Vec<T> {
    fn copy_to(&self, out: &mut String) {
        let mut literal = String::from("{");
        for (i, element) in self.iter().enumerate() {
            if i > 0 {
                literal.push(',');
            }
            literal.push('"');
            for c in element.to_string().chars() {
                if c == '"' || c == '\\' {
                    literal.push('\\');
                }
                literal.push(c);
            }
            literal.push('"');
        }
        literal.push('}');
        escaped(&literal, out);
    }
}

/// Bytes of encoded rows sent per message.
const PIECE: usize = 1 << 20;

/// Rows of one table, encoded for `COPY` as they are added and sent by [`CopyRows::send`].
pub struct CopyRows {
    statement: String,
    buffer: String,
    rows: u64,
}

/// One row being added to [`CopyRows`]: its values, in the columns' order.
pub struct CopyLine<'a> {
    buffer: &'a mut String,
    first: bool,
}

impl CopyLine<'_> {
    /// Adds the row's next value.
    pub fn value(&mut self, value: &dyn CopyValue) -> &mut Self {
        if !self.first {
            self.buffer.push('\t');
        }
        self.first = false;
        value.copy_to(self.buffer);
        self
    }
}

impl CopyRows {
    /// Rows for `columns` of `table` (named unqualified: the connection's search path picks the
    /// table, as for a projection's own SQL).
    pub fn new(table: &str, columns: &[&str]) -> Self {
        Self {
            statement: format!("COPY {table} ({}) FROM STDIN", columns.join(", ")),
            buffer: String::new(),
            rows: 0,
        }
    }

    /// Adds a row, its values given by `values` in the columns' order.
    pub fn row(&mut self, values: impl FnOnce(&mut CopyLine<'_>)) {
        values(&mut CopyLine {
            buffer: &mut self.buffer,
            first: true,
        });
        self.buffer.push('\n');
        self.rows += 1;
    }

    /// Rows added and not sent yet.
    pub fn len(&self) -> u64 {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Sends the rows added since the last send in one `COPY`. No rows, no statement.
    ///
    /// # Errors
    /// When the database refuses a row or fails.
    pub async fn send(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.send_all(conn, std::iter::empty::<()>(), |_, ()| {})
            .await
    }

    /// Sends the rows added since the last send and one row per item of `items` (its values
    /// given by `values`) in one `COPY`, encoded and sent a piece at a time: memory holds a
    /// piece, not the rows. No rows, no statement.
    ///
    /// # Errors
    /// When the database refuses a row or fails.
    pub async fn send_all<T>(
        &mut self,
        conn: &mut PgConnection,
        items: impl IntoIterator<Item = T>,
        mut values: impl FnMut(&mut CopyLine<'_>, T),
    ) -> anyhow::Result<()> {
        let mut items = items.into_iter().peekable();
        if self.rows == 0 && items.peek().is_none() {
            return Ok(());
        }
        let mut copy = conn
            .copy_in_raw(&self.statement)
            .await
            .with_context(|| self.statement.clone())?;
        loop {
            let more = match items.next() {
                Some(item) => {
                    self.row(|line| values(line, item));
                    true
                }
                None => false,
            };
            // A message of the protocol per piece; rows may straddle them.
            if self.buffer.len() >= PIECE || (!more && !self.buffer.is_empty()) {
                copy.send(self.buffer.as_bytes()).await?;
                self.buffer.clear();
            }
            if !more {
                break;
            }
        }
        copy.finish()
            .await
            .with_context(|| self.statement.clone())?;
        self.rows = 0;
        Ok(())
    }
}
