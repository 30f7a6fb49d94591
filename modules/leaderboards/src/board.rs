//! What a board's stream folds to: its definition, its current season and where its reset
//! schedule ticks from. Which seasons are due at a time is a pure function of it
//! ([`BoardView::due`]), shared by submissions (a score never lands in a season whose time has
//! passed) and by the seasons job.

use chrono::{DateTime, Utc};
use questlog_domain::{Event as Erased, StreamId, View};

use crate::event::Event;
use crate::values::{BoardId, Operator, Order, Reset};

/// The most seasons one decision starts; a schedule further behind catches up over several.
pub const MAX_SEASONS_PER_DECISION: usize = 10_000;

/// A board's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub title: String,
    pub order: Order,
    pub operator: Operator,
    pub reset: Option<Reset>,
    pub authoritative: bool,
}

/// A board as its stream folds.
#[derive(Debug, Clone, Default)]
pub struct BoardView {
    pub definition: Option<Definition>,
    /// The current season (0 before the first definition).
    pub season: u32,
    /// The reset schedule's next tick is the first after this: the current season's start, or
    /// when the schedule was last changed, whichever is later.
    pub tick_base: Option<DateTime<Utc>>,
}

impl View for BoardView {
    fn initial(_: &StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &Erased) {
        match event.get::<Event>() {
            Some(Event::LeaderboardDefined {
                title,
                order,
                operator,
                reset,
                authoritative,
                at,
                ..
            }) => {
                let rescheduled = self.definition.as_ref().is_none_or(|d| d.reset != *reset);
                if rescheduled {
                    self.tick_base = Some(*at);
                }
                self.definition = Some(Definition {
                    title: title.clone(),
                    order: *order,
                    operator: *operator,
                    reset: reset.clone(),
                    authoritative: *authoritative,
                });
            }
            Some(Event::LeaderboardSeasonStarted {
                season, started_at, ..
            }) => {
                self.season = *season;
                self.tick_base = Some(*started_at);
            }
            _ => {}
        }
    }
}

impl BoardView {
    /// The seasons whose ticks have passed by `now`, in order, each with its tick's time.
    pub fn due(&self, board: &BoardId, now: DateTime<Utc>) -> Vec<Event> {
        let (
            Some(Definition {
                reset: Some(reset), ..
            }),
            Some(mut base),
        ) = (&self.definition, self.tick_base)
        else {
            return Vec::new();
        };
        let mut due = Vec::new();
        let mut season = self.season;
        while due.len() < MAX_SEASONS_PER_DECISION {
            let Some(tick) = reset.next_after(base).filter(|t| *t <= now) else {
                break;
            };
            season += 1;
            due.push(Event::LeaderboardSeasonStarted {
                leaderboard: board.clone(),
                season,
                started_at: tick,
            });
            base = tick;
        }
        due
    }
}
