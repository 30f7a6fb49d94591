//! How admin commands print: a table for people, or JSON with `--json` for scripts.

use std::io::Write;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// Prints `rows` as JSON (an array) when `json`, else as a table with `header`.
///
/// # Errors
/// When writing fails.
pub fn listing<T: Serialize>(
    out: &mut dyn Write,
    json: bool,
    header: &[&str],
    rows: &[T],
    cells: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, rows)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(cells(row));
    }
    writeln!(out, "{table}")?;
    Ok(())
}

/// Prints one value as JSON when `json`, else as `key: value` lines.
///
/// # Errors
/// When writing fails.
pub fn record(
    out: &mut dyn Write,
    json: bool,
    fields: &[(&str, serde_json::Value)],
) -> anyhow::Result<()> {
    if json {
        let map: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        serde_json::to_writer_pretty(&mut *out, &map)?;
        writeln!(out)?;
        return Ok(());
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in fields {
        let shown = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        writeln!(out, "{key:<width$}  {shown}")?;
    }
    Ok(())
}
