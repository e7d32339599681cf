//! What plays when (docs/protocol.md §7): pure, no I/O and no clock reads. Given an
//! assignment and an instant, it says which playlist plays, whether the
//! screen is powered, and the next instant at which either changes, so the
//! agent can sleep until exactly then instead of polling.
//!
//! Windows are read in the assignment's IANA time zone. A window belongs to
//! the day it starts on; one that ends at or before its start runs past
//! midnight. Local times that do not exist (spring forward) resolve to the
//! instant after the gap, repeated ones (autumn) to their first occurrence:
//! jiff's "compatible" rule, the one RFC 5545 calendars use.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use crate::Assignment;
use crate::document::MAX_WINDOWS;
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::Deserialize;

/// Window edges (starts and ends of occurrences) examined when looking for
/// the next change, whatever the assignment holds. A schedule whose windows
/// touch without changing anything (an every-day, all-day entry) has edges
/// each midnight and no change ever: past this many, the answer is "no
/// change"; the agent re-plans daily regardless. Each window has at most
/// three edges in a day, so with the document's caps ([`MAX_WINDOWS`]
/// schedule entries and as many power windows) this covers more than a day.
const MAX_EDGES: usize = 8 * 3 * 2 * MAX_WINDOWS;

/// A recurring window: on some weekdays, between two local times, within
/// an optional date range.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// Bit `n` set: active on the weekday numbered `n` from Monday (0).
    days: u8,
    start: Time,
    end: Time,
    from: Option<Date>,
    until: Option<Date>,
}

fn parse_days(days: &[String]) -> Result<u8, String> {
    if days.is_empty() {
        return Ok(0x7f);
    }
    days.iter().try_fold(0u8, |mask, day| {
        let n = match day.as_str() {
            "mon" => 0,
            "tue" => 1,
            "wed" => 2,
            "thu" => 3,
            "fri" => 4,
            "sat" => 5,
            "sun" => 6,
            other => return Err(format!("unknown day {other:?} (mon, tue, … sun)")),
        };
        Ok(mask | 1 << n)
    })
}

fn parse_time(text: Option<&str>, what: &str) -> Result<Time, String> {
    match text {
        None => Ok(Time::midnight()),
        Some(t) => t
            .parse()
            .map_err(|e| format!("{what} {t:?} is not HH:MM[:SS]: {e}")),
    }
}

fn parse_date(text: Option<&str>, what: &str) -> Result<Option<Date>, String> {
    text.map(|d| {
        d.parse()
            .map_err(|e| format!("{what} {d:?} is not YYYY-MM-DD: {e}"))
    })
    .transpose()
}

impl Window {
    fn parse(
        days: &[String],
        start: Option<&str>,
        end: Option<&str>,
        from: Option<&str>,
        until: Option<&str>,
    ) -> Result<Window, String> {
        Ok(Window {
            days: parse_days(days)?,
            start: parse_time(start, "start")?,
            end: parse_time(end, "end")?,
            from: parse_date(from, "from")?,
            until: parse_date(until, "until")?,
        })
    }

    fn active_on(&self, date: Date) -> bool {
        let weekday = date.weekday().to_monday_zero_offset();
        self.days & (1 << weekday) != 0
            && self.from.is_none_or(|from| date >= from)
            && self.until.is_none_or(|until| date <= until)
    }

    /// The occurrence starting on `date`, as [start, end) instants.
    fn occurrence(&self, date: Date, tz: &TimeZone) -> Option<(Timestamp, Timestamp)> {
        if !self.active_on(date) {
            return None;
        }
        #[cfg(test)]
        tests::OCCURRENCES.with(|n| n.set(n.get() + 1));
        let end_date = if self.end <= self.start {
            date.tomorrow().ok()?
        } else {
            date
        };
        let start = tz.to_timestamp(date.to_datetime(self.start)).ok()?;
        let end = tz.to_timestamp(end_date.to_datetime(self.end)).ok()?;
        (start < end).then_some((start, end))
    }

    fn contains(&self, t: Timestamp, tz: &TimeZone) -> bool {
        let today = tz.to_datetime(t).date();
        let yesterday = today.yesterday().ok();
        [yesterday, Some(today)].into_iter().flatten().any(|date| {
            self.occurrence(date, tz)
                .is_some_and(|(s, e)| s <= t && t < e)
        })
    }

    /// The occurrences that may contain `t` or come after it, in order:
    /// those starting on the day before `t` (in `tz`) and later.
    fn occurrences_from<'a>(
        &'a self,
        t: Timestamp,
        tz: &'a TimeZone,
    ) -> impl Iterator<Item = (Timestamp, Timestamp)> + 'a {
        let first = tz.to_datetime(t).date().yesterday().ok();
        let first = first.map(|date| self.from.map_or(date, |from| from.max(date)));
        std::iter::successors(first, |date| date.tomorrow().ok())
            .take_while(|date| self.until.is_none_or(|until| *date <= until))
            .filter_map(|date| self.occurrence(date, tz))
    }
}

/// The schedule section of an assignment, as raw JSON fields.
#[derive(Debug, Deserialize)]
struct PowerWindow {
    #[serde(default)]
    days: Vec<String>,
    on: Option<String>,
    off: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DisplaySection {
    #[serde(default)]
    power: Vec<PowerWindow>,
}

struct Entry {
    window: Window,
    playlist: String,
    priority: i64,
}

/// An assignment's schedule and power windows, checked and ready to answer.
pub struct Schedule {
    tz: TimeZone,
    entries: Vec<Entry>,
    default_playlist: String,
    /// Empty: the screen is always on.
    power: Vec<Window>,
}

/// What the schedule says at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub playlist: String,
    /// The schedule entry chosen (its index), `None` for the default playlist.
    pub entry: Option<usize>,
    pub display_on: bool,
    /// When the playlist or the power state next changes; `None` if it does
    /// not within the edges examined (see [`MAX_EDGES`]).
    pub next_change: Option<Timestamp>,
}

impl Schedule {
    /// Checks and compiles an assignment's schedule; the error names what
    /// is wrong, for a `malformed` rejection.
    pub fn compile(assignment: &Assignment) -> Result<Schedule, String> {
        let tz = TimeZone::get(&assignment.timezone).map_err(|e| format!("time zone: {e}"))?;
        let entries = assignment
            .schedule
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let window = Window::parse(
                    &e.days,
                    e.start.as_deref(),
                    e.end.as_deref(),
                    e.from.as_deref(),
                    e.until.as_deref(),
                )
                .map_err(|why| format!("schedule entry {i}: {why}"))?;
                Ok(Entry {
                    window,
                    playlist: e.playlist.clone(),
                    priority: e.priority,
                })
            })
            .collect::<Result<_, String>>()?;
        let display: DisplaySection = match &assignment.display {
            Some(value) => {
                serde_json::from_value(value.clone()).map_err(|e| format!("display: {e}"))?
            }
            None => DisplaySection::default(),
        };
        let power = display
            .power
            .iter()
            .enumerate()
            .map(|(i, w)| {
                Window::parse(&w.days, w.on.as_deref(), w.off.as_deref(), None, None)
                    .map_err(|why| format!("display.power window {i}: {why}"))
            })
            .collect::<Result<_, String>>()?;
        Ok(Schedule {
            tz,
            entries,
            default_playlist: assignment.default_playlist.clone(),
            power,
        })
    }

    /// The entry that wins at `t`: the highest priority among those whose
    /// window contains `t`, the earliest listed among equals.
    fn choice(&self, t: Timestamp) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, entry) in self.entries.iter().enumerate() {
            if entry.window.contains(t, &self.tz)
                && best.is_none_or(|b| entry.priority > self.entries[b].priority)
            {
                best = Some(i);
            }
        }
        best
    }

    fn display_on(&self, t: Timestamp) -> bool {
        self.power.is_empty() || self.power.iter().any(|w| w.contains(t, &self.tz))
    }

    fn state(&self, t: Timestamp) -> (Option<usize>, bool) {
        (self.choice(t), self.display_on(t))
    }

    /// What plays at `t`, and until when.
    pub fn plan(&self, t: Timestamp) -> Plan {
        let state = self.state(t);
        let playlist = match state.0 {
            Some(i) => self.entries[i].playlist.clone(),
            None => self.default_playlist.clone(),
        };
        Plan {
            playlist,
            entry: state.0,
            display_on: state.1,
            next_change: self.next_change(t, state),
        }
    }

    /// The first instant after `t` at which the state differs from `state`,
    /// the one at `t`, found by sweeping the windows' edges in time order and
    /// keeping the set of open occurrences as it goes: each edge costs a
    /// heap operation, never a pass over every window, and at most
    /// [`MAX_EDGES`] are examined.
    fn next_change(&self, t: Timestamp, state: (Option<usize>, bool)) -> Option<Timestamp> {
        let windows = self.entries.iter().map(|e| &e.window).chain(&self.power);
        let mut sources: Vec<_> = windows.map(|w| w.occurrences_from(t, &self.tz)).collect();
        // Edges to come, earliest first: (instant, opens, window, its end).
        let mut edges = BinaryHeap::new();
        for (i, source) in sources.iter_mut().enumerate() {
            if let Some((start, end)) = source.next() {
                edges.push(Reverse((start, true, i, end)));
            }
        }
        let mut open = Sweep::new(self, sources.len());
        let mut budget = MAX_EDGES;
        while let Some(&Reverse((at, ..))) = edges.peek() {
            // Every edge at `at`, ends and starts alike, before judging it.
            while let Some(&Reverse((edge, opens, i, end))) = edges.peek()
                && edge == at
            {
                budget = budget.checked_sub(1)?;
                edges.pop();
                open.apply(i, opens);
                if opens {
                    edges.push(Reverse((end, false, i, end)));
                    if let Some((start, end)) = sources[i].next() {
                        edges.push(Reverse((start, true, i, end)));
                    }
                }
            }
            if at > t && open.state() != state {
                return Some(at);
            }
        }
        None
    }
}

/// The occurrences open at one instant of a sweep: how many of each window
/// (edges can touch), the schedule entries among them by rank, and the
/// power windows.
struct Sweep<'a> {
    schedule: &'a Schedule,
    open: Vec<u32>,
    /// Open schedule entries as (priority, earliest listed first).
    ranked: BTreeSet<(i64, Reverse<usize>)>,
    power_open: usize,
}

impl<'a> Sweep<'a> {
    fn new(schedule: &'a Schedule, windows: usize) -> Sweep<'a> {
        Sweep {
            schedule,
            open: vec![0; windows],
            ranked: BTreeSet::new(),
            power_open: 0,
        }
    }

    /// Opens (or closes) one occurrence of window `i`: schedule entries
    /// first, then power windows, as [`Schedule::next_change`] lists them.
    fn apply(&mut self, i: usize, opens: bool) {
        let was_open = self.open[i] > 0;
        if opens {
            self.open[i] += 1;
        } else {
            self.open[i] -= 1;
        }
        let is_open = self.open[i] > 0;
        if was_open == is_open {
            return;
        }
        match self.schedule.entries.get(i) {
            Some(entry) if is_open => {
                self.ranked.insert((entry.priority, Reverse(i)));
            }
            Some(entry) => {
                self.ranked.remove(&(entry.priority, Reverse(i)));
            }
            None if is_open => self.power_open += 1,
            None => self.power_open -= 1,
        }
    }

    /// The state the open occurrences make, as [`Schedule::state`] says it.
    fn state(&self) -> (Option<usize>, bool) {
        let choice = self.ranked.last().map(|(_, Reverse(i))| *i);
        let display_on = self.schedule.power.is_empty() || self.power_open > 0;
        (choice, display_on)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    thread_local! {
        /// Occurrences computed on this thread (each two time-zone
        /// conversions): the unit of work of planning.
        pub(super) static OCCURRENCES: Cell<usize> = const { Cell::new(0) };
    }

    #[test]
    fn planning_costs_a_bounded_amount_whatever_the_schedule() {
        // The worst the caps allow: an all-day entry of top priority hides
        // every other entry, each with its own times, and overlapping
        // power windows keep the screen on: over a thousand edges a day,
        // none of them a change, until the top entry's last day is over.
        let mut schedule =
            vec![json!({"playlist": "night", "priority": 100, "until": "2026-12-02"})];
        let mut power = vec![json!({"on": "00:00", "off": "00:00"})];
        for i in 1..MAX_WINDOWS {
            let time = |minutes: usize| format!("{:02}:{:02}", minutes / 60 % 24, minutes % 60);
            schedule
                .push(json!({"playlist": "morning", "start": time(i * 5), "end": time(i * 5 + 3)}));
            power.push(json!({"on": time(i * 5 + 1), "off": time(i * 5 + 4)}));
        }
        let a = assignment(PARIS, json!(schedule), json!({"power": power}));
        a.validate().unwrap();
        let s = Schedule::compile(&a).unwrap();
        OCCURRENCES.with(|n| n.set(0));
        let plan = s.plan(at("2026-11-30T12:00", PARIS));
        let work = OCCURRENCES.with(Cell::get);
        assert_eq!(plan.playlist, "night");
        assert_eq!(plan.next_change, Some(at("2026-12-03T00:00", PARIS)));
        assert!(plan.display_on);
        assert!(
            work <= 2 * MAX_EDGES,
            "{work} occurrences computed, more than {}",
            2 * MAX_EDGES
        );
    }

    fn assignment(
        timezone: &str,
        schedule: serde_json::Value,
        display: serde_json::Value,
    ) -> Assignment {
        serde_json::from_value(json!({
            "kind": "assignment", "fleet": "acme", "target": "device:a", "version": 1,
            "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z",
            "timezone": timezone, "assets": {},
            "playlists": {"main": [], "morning": [], "lunch": [], "night": [], "dec": []},
            "schedule": schedule, "default_playlist": "main", "display": display,
        }))
        .unwrap()
    }

    fn at(local: &str, tz: &str) -> Timestamp {
        TimeZone::get(tz)
            .unwrap()
            .to_timestamp(local.parse().unwrap())
            .unwrap()
    }

    const PARIS: &str = "Europe/Paris";

    #[test]
    fn weekday_windows_priorities_and_the_default() {
        let a = assignment(
            PARIS,
            json!([
                {"playlist": "morning", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "12:00"},
                {"playlist": "lunch", "start": "11:30", "end": "14:00", "priority": 5},
            ]),
            json!(null),
        );
        let s = Schedule::compile(&a).unwrap();
        // Monday 2026-11-30.
        let plan = s.plan(at("2026-11-30T09:00", PARIS));
        assert_eq!((plan.playlist.as_str(), plan.entry), ("morning", Some(0)));
        assert_eq!(plan.next_change, Some(at("2026-11-30T11:30", PARIS)));
        assert_eq!(s.plan(at("2026-11-30T11:45", PARIS)).playlist, "lunch");
        let plan = s.plan(at("2026-11-30T14:00", PARIS));
        assert_eq!((plan.playlist.as_str(), plan.entry), ("main", None));
        // Saturday: no morning programme, lunch still.
        assert_eq!(s.plan(at("2026-12-05T09:00", PARIS)).playlist, "main");
        assert_eq!(
            s.plan(at("2026-12-05T09:00", PARIS)).next_change,
            Some(at("2026-12-05T11:30", PARIS))
        );
    }

    #[test]
    fn windows_past_midnight_belong_to_the_day_they_start() {
        let a = assignment(
            PARIS,
            json!([{"playlist": "night", "days": ["fri"], "start": "22:00", "end": "02:00"}]),
            json!(null),
        );
        let s = Schedule::compile(&a).unwrap();
        assert_eq!(s.plan(at("2026-12-04T23:00", PARIS)).playlist, "night");
        assert_eq!(s.plan(at("2026-12-05T01:59", PARIS)).playlist, "night");
        assert_eq!(s.plan(at("2026-12-05T02:00", PARIS)).playlist, "main");
        // Thursday night is not Friday night.
        assert_eq!(s.plan(at("2026-12-04T01:00", PARIS)).playlist, "main");
    }

    #[test]
    fn date_ranges_bound_the_windows() {
        let a = assignment(
            PARIS,
            json!([{"playlist": "dec", "from": "2026-12-01", "until": "2026-12-31"}]),
            json!(null),
        );
        let s = Schedule::compile(&a).unwrap();
        let before = s.plan(at("2026-11-29T12:00", PARIS));
        assert_eq!(before.playlist, "main");
        assert_eq!(before.next_change, Some(at("2026-12-01T00:00", PARIS)));
        let during = s.plan(at("2026-12-15T12:00", PARIS));
        assert_eq!(during.playlist, "dec");
        assert_eq!(during.next_change, Some(at("2027-01-01T00:00", PARIS)));
        assert_eq!(s.plan(at("2027-01-01T00:00", PARIS)).next_change, None);
    }

    #[test]
    fn a_start_inside_the_spring_forward_gap_begins_after_it() {
        // 2027-03-28: Paris clocks jump from 02:00 to 03:00; 02:30 does not exist.
        let a = assignment(
            PARIS,
            json!([{"playlist": "night", "start": "02:30", "end": "05:00"}]),
            json!(null),
        );
        let s = Schedule::compile(&a).unwrap();
        let plan = s.plan(at("2027-03-28T01:00", PARIS));
        assert_eq!(plan.playlist, "main");
        let start = plan.next_change.unwrap();
        assert_eq!(
            start,
            "2027-03-28T01:30:00Z".parse().unwrap(),
            "03:30 CEST, just after the gap"
        );
        assert_eq!(s.plan(start).playlist, "night");
    }

    #[test]
    fn a_window_across_the_autumn_repeat_hour_lasts_its_real_length() {
        // 2026-10-25: Paris clocks go from 03:00 back to 02:00; 02:xx happens twice.
        let a = assignment(
            PARIS,
            json!([{"playlist": "night", "start": "01:00", "end": "04:00"}]),
            json!(null),
        );
        let s = Schedule::compile(&a).unwrap();
        let start: Timestamp = "2026-10-24T23:00:00Z".parse().unwrap(); // 01:00 CEST
        let plan = s.plan(start);
        assert_eq!(plan.playlist, "night");
        // 04:00 CET is 03:00Z: four real hours later, through both 02:30s.
        assert_eq!(
            plan.next_change,
            Some("2026-10-25T03:00:00Z".parse().unwrap())
        );
        assert_eq!(
            s.plan("2026-10-25T00:30:00Z".parse().unwrap()).playlist,
            "night"
        );
        assert_eq!(
            s.plan("2026-10-25T01:30:00Z".parse().unwrap()).playlist,
            "night"
        );
    }

    #[test]
    fn power_windows_say_when_the_screen_is_on() {
        let a = assignment(
            "UTC",
            json!([]),
            json!({"power": [{"days": ["mon"], "on": "07:30", "off": "20:00"}]}),
        );
        let s = Schedule::compile(&a).unwrap();
        let night = s.plan(at("2026-11-30T06:00", "UTC"));
        assert!(!night.display_on);
        assert_eq!(night.next_change, Some(at("2026-11-30T07:30", "UTC")));
        assert!(s.plan(at("2026-11-30T12:00", "UTC")).display_on);
        assert!(
            !s.plan(at("2026-12-01T12:00", "UTC")).display_on,
            "Tuesday is off"
        );
        // No power windows: always on, nothing to wake up for.
        let always = Schedule::compile(&assignment("UTC", json!([]), json!(null))).unwrap();
        assert_eq!(always.plan(at("2026-11-30T06:00", "UTC")).next_change, None);
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        for (schedule, why) in [
            (
                json!([{"playlist": "main", "days": ["monday"]}]),
                "unknown day",
            ),
            (json!([{"playlist": "main", "start": "25:00"}]), "start"),
            (json!([{"playlist": "main", "from": "2026-13-01"}]), "from"),
        ] {
            let err = Schedule::compile(&assignment("UTC", schedule, json!(null)))
                .err()
                .unwrap();
            assert!(err.contains(why), "{err}");
        }
    }

    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    const ZONES: [&str; 4] = [
        "Europe/Paris",
        "America/New_York",
        "Australia/Lord_Howe",
        "UTC",
    ];
    const PLAYLISTS: [&str; 4] = ["morning", "lunch", "night", "dec"];

    fn entry() -> impl Strategy<Value = serde_json::Value> {
        (
            prop::collection::vec(0..7usize, 0..4),
            prop::option::of((0..24u32, 0..4u32)),
            prop::option::of((0..24u32, 0..4u32)),
            prop::option::of(0..60i64),
            -2..3i64,
            0..4usize,
        )
            .prop_map(|(days, start, end, from, priority, playlist)| {
                let time = |(h, q): (u32, u32)| format!("{h:02}:{:02}", q * 15);
                let mut e = json!({"playlist": PLAYLISTS[playlist], "priority": priority,
                                   "days": days.iter().map(|d| DAYS[*d]).collect::<Vec<_>>()});
                if let Some(s) = start {
                    e["start"] = time(s).into();
                }
                if let Some(s) = end {
                    e["end"] = time(s).into();
                }
                if let Some(offset) = from {
                    let from = Date::constant(2026, 10, 1)
                        .checked_add(jiff::Span::new().days(offset))
                        .unwrap();
                    e["from"] = from.to_string().into();
                    e["until"] = from
                        .checked_add(jiff::Span::new().days(20))
                        .unwrap()
                        .to_string()
                        .into();
                }
                e
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn the_answer_is_a_matching_entry_of_highest_priority(
            entries in prop::collection::vec(entry(), 0..6),
            zone in 0..ZONES.len(),
            offset_min in 0..(120 * 24 * 60i64),
        ) {
            let a = assignment(ZONES[zone], json!(entries), json!(null));
            let s = Schedule::compile(&a).unwrap();
            let t = Timestamp::from_second(1_788_000_000 + offset_min * 60).unwrap();
            let plan = s.plan(t);
            let matching: Vec<usize> = (0..s.entries.len()).filter(|i| s.entries[*i].window.contains(t, &s.tz)).collect();
            match plan.entry {
                None => {
                    prop_assert!(matching.is_empty());
                    prop_assert_eq!(plan.playlist, "main");
                }
                Some(i) => {
                    prop_assert!(matching.contains(&i));
                    let best = matching.iter().map(|m| s.entries[*m].priority).max().unwrap();
                    prop_assert_eq!(s.entries[i].priority, best);
                    prop_assert_eq!(&plan.playlist, &s.entries[i].playlist);
                }
            }
        }

        #[test]
        fn nothing_changes_before_the_next_change(
            entries in prop::collection::vec(entry(), 0..6),
            zone in 0..ZONES.len(),
            offset_min in 0..(120 * 24 * 60i64),
            probes in prop::collection::vec(0.0..1.0f64, 8),
        ) {
            let a = assignment(ZONES[zone], json!(entries), json!(null));
            let s = Schedule::compile(&a).unwrap();
            let t = Timestamp::from_second(1_788_000_000 + offset_min * 60).unwrap();
            let plan = s.plan(t);
            if let Some(next) = plan.next_change {
                prop_assert!(next > t);
                let span = next.as_second() - t.as_second();
                for p in probes {
                    let probe = Timestamp::from_second(t.as_second() + (span as f64 * p) as i64).unwrap();
                    if probe < next {
                        prop_assert_eq!(s.plan(probe).entry, plan.entry, "changed at {} before {}", probe, next);
                    }
                }
                prop_assert_ne!(s.plan(next).entry, plan.entry);
            }
        }
    }
}
