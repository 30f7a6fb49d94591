//! The results: one row per figure, with its baseline and the ratio against its target.

use serde::Serialize;

/// One measured figure beside its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub figure: String,
    pub value: f64,
    pub baseline_name: String,
    pub baseline: f64,
    pub unit: String,
    /// value ÷ baseline.
    pub ratio: f64,
    /// The goal for the ratio, e.g. "≥ 1.0".
    pub target: String,
    pub met: Option<bool>,
}

impl Row {
    pub fn new(figure: &str, value: f64, baseline_name: &str, baseline: f64, unit: &str) -> Self {
        let ratio = if baseline == 0.0 {
            f64::NAN
        } else {
            value / baseline
        };
        Self {
            figure: figure.to_owned(),
            value,
            baseline_name: baseline_name.to_owned(),
            baseline,
            unit: unit.to_owned(),
            ratio,
            target: String::new(),
            met: None,
        }
    }

    /// The ratio should be at least `goal`.
    #[must_use]
    pub fn at_least(mut self, goal: f64) -> Self {
        self.target = format!(">= {goal}");
        self.met = Some(self.ratio >= goal);
        self
    }

    /// The value itself (not the ratio) should be at most `goal`, in the row's unit.
    #[must_use]
    pub fn goal_value_at_most(mut self, goal: f64) -> Self {
        self.target = format!("value <= {goal} {}", self.unit);
        self.met = Some(self.value <= goal);
        self
    }

    /// The ratio should be at most `goal`.
    #[must_use]
    pub fn at_most(mut self, goal: f64) -> Self {
        self.target = format!("<= {goal}");
        self.met = Some(self.ratio <= goal);
        self
    }
}

/// Prints the rows as a table.
pub fn table(rows: &[Row]) {
    println!(
        "| figure | value | baseline | baseline value | ratio | target | met |\n|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "",
        };
        println!(
            "| {} | {:.1} {} | {} | {:.1} {} | {:.2} | {} | {} |",
            r.figure, r.value, r.unit, r.baseline_name, r.baseline, r.unit, r.ratio, r.target, met
        );
    }
}
