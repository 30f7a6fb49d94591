//! A player's record in one season of a board, as a pure fold of its submissions.
//!
//! The fold keeps, besides the record the board shows, what every other order and operator
//! would show ([`Summary`]: the highest and lowest submission, the last one and the running sum,
//! each with the position at which it was reached). So redefining a board's order or operator
//! recomputes every record from its score events exactly as folding them again would, without
//! reading them again: the live projection, replays and the as-of reads run this one fold.
//!
//! Ties rank by who reached the record first: `reached` is the position of the submission that
//! set the record's value (a submission that leaves the value as it was leaves it too).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::values::{Operator, Order};

/// One submission, as the log holds it, with its position and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub score: i64,
    pub subscore: i64,
    pub metadata: Option<Map<String, Value>>,
    pub position: i64,
    pub at: DateTime<Utc>,
}

/// A record as a board shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub score: i64,
    pub subscore: i64,
    pub metadata: Option<Map<String, Value>>,
    /// The position of the submission that set the value: ties go to the lower.
    pub reached: i64,
    /// When the record last changed.
    pub at: DateTime<Utc>,
}

impl Record {
    fn of(s: &Submission) -> Self {
        Self {
            score: s.score,
            subscore: s.subscore,
            metadata: s.metadata.clone(),
            reached: s.position,
            at: s.at,
        }
    }

    fn value(&self) -> (i64, i64) {
        (self.score, self.subscore)
    }

    /// The record's sort keys on a board of `order`: descending keys, whichever the order (a
    /// bitwise not reverses an int64's order without overflow).
    pub fn sort_keys(&self, order: Order) -> (i64, i64) {
        match order {
            Order::Desc => (self.score, self.subscore),
            Order::Asc => (!self.score, !self.subscore),
        }
    }
}

/// The running sum of a season's submissions (wide: a sum of int64s may leave int64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sum {
    #[serde(with = "wide")]
    pub score: i128,
    #[serde(with = "wide")]
    pub subscore: i128,
    pub metadata: Option<Map<String, Value>>,
    pub reached: i64,
    pub at: DateTime<Utc>,
}

/// Everything a season's submissions of one player fold to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub high: Record,
    pub low: Record,
    pub last: Record,
    pub sum: Sum,
}

impl Summary {
    /// The summary of a first submission.
    pub fn first(s: &Submission) -> Self {
        Self {
            high: Record::of(s),
            low: Record::of(s),
            last: Record::of(s),
            sum: Sum {
                score: i128::from(s.score),
                subscore: i128::from(s.subscore),
                metadata: s.metadata.clone(),
                reached: s.position,
                at: s.at,
            },
        }
    }

    /// Folds one more submission in (`None`: the first).
    pub fn fold(summary: Option<Self>, s: &Submission) -> Self {
        match summary {
            None => Self::first(s),
            Some(mut summary) => {
                summary.apply(s);
                summary
            }
        }
    }

    /// Applies a later submission.
    pub fn apply(&mut self, s: &Submission) {
        let value = (s.score, s.subscore);
        if value > self.high.value() {
            self.high = Record::of(s);
        }
        if value < self.low.value() {
            self.low = Record::of(s);
        }
        if value == self.last.value() {
            // The same value again: reached when it was first, with the newer metadata.
            self.last.metadata.clone_from(&s.metadata);
            self.last.at = s.at;
        } else {
            self.last = Record::of(s);
        }
        self.sum.score += i128::from(s.score);
        self.sum.subscore += i128::from(s.subscore);
        if value != (0, 0) {
            self.sum.reached = s.position;
        }
        self.sum.metadata.clone_from(&s.metadata);
        self.sum.at = s.at;
    }

    /// The record a board of `order` and `operator` shows. A sum beyond int64 shows as int64's
    /// bound.
    pub fn record(&self, order: Order, operator: Operator) -> Record {
        let sum = |sign: i128| Record {
            score: saturate(sign * self.sum.score),
            subscore: saturate(sign * self.sum.subscore),
            metadata: self.sum.metadata.clone(),
            reached: self.sum.reached,
            at: self.sum.at,
        };
        match (operator, order) {
            (Operator::Best, Order::Desc) => self.high.clone(),
            (Operator::Best, Order::Asc) => self.low.clone(),
            (Operator::Set, _) => self.last.clone(),
            (Operator::Incr, _) => sum(1),
            (Operator::Decr, _) => sum(-1),
        }
    }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// An `i128` as a JSON string (JSON numbers beyond int64 do not survive every reader).
mod wide {
    use serde::{Deserialize as _, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)]
    pub fn serialize<S: Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(score: i64, position: i64) -> Submission {
        Submission {
            score,
            subscore: 0,
            metadata: None,
            position,
            at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(position),
        }
    }

    fn fold(scores: &[i64]) -> Summary {
        let mut summary = None;
        for (i, s) in scores.iter().enumerate() {
            summary = Some(Summary::fold(summary, &sub(*s, i as i64 + 1)));
        }
        summary.expect("at least one")
    }

    fn shown(summary: &Summary, order: Order, operator: Operator) -> (i64, i64) {
        let r = summary.record(order, operator);
        (r.score, r.reached)
    }

    #[test]
    fn best_keeps_the_highest_on_a_descending_board_and_the_lowest_on_an_ascending_one() {
        let s = fold(&[50, 80, 30, 80]);
        assert_eq!(shown(&s, Order::Desc, Operator::Best), (80, 2));
        assert_eq!(shown(&s, Order::Asc, Operator::Best), (30, 3));
    }

    #[test]
    fn set_keeps_the_last_and_when_its_value_was_first_reached() {
        let s = fold(&[50, 80, 80]);
        assert_eq!(shown(&s, Order::Desc, Operator::Set), (80, 2));
    }

    #[test]
    fn incr_and_decr_sum_the_submissions() {
        let s = fold(&[5, 7, 0]);
        assert_eq!(shown(&s, Order::Desc, Operator::Incr), (12, 2));
        assert_eq!(shown(&s, Order::Desc, Operator::Decr), (-12, 2));
    }

    #[test]
    fn a_sum_beyond_int64_shows_as_its_bound() {
        let s = fold(&[i64::MAX, i64::MAX]);
        assert_eq!(shown(&s, Order::Desc, Operator::Incr).0, i64::MAX);
        assert_eq!(shown(&s, Order::Desc, Operator::Decr).0, i64::MIN);
        let back: Summary =
            serde_json::from_value(serde_json::to_value(&s).expect("json")).expect("reads back");
        assert_eq!(back, s);
    }

    #[test]
    fn ascending_sort_keys_reverse_the_order_without_overflow() {
        let r = |score| Record {
            score,
            subscore: 0,
            metadata: None,
            reached: 1,
            at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let keys = |s| r(s).sort_keys(Order::Asc);
        assert!(keys(i64::MIN) > keys(-1));
        assert!(keys(-1) > keys(0));
        assert!(keys(0) > keys(i64::MAX));
    }
}
