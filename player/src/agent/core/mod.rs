//! The agent's decisions, without I/O: [`Core::handle`] takes one
//! [`Input`] (a message from the broker, an acknowledgement, the link
//! going up or down, what the cache did, what the renderer reports, the
//! alarm, a tick, a command finished elsewhere) and the time, and returns
//! the [`Effect`]s to carry out (publish, queue, render, want assets, set
//! the alarm, …). The shell ([`super::Agent`]) only selects inputs and
//! carries out effects. What must be durable before it counts goes through
//! [`Storage`] (a document is accepted only once stored), and what the
//! cache holds is asked of [`Content`]; both are small traits with fakes
//! in the tests, which need no broker, no GStreamer and no clock.
//!
//! The status is a view of this state ([`Core::status`]), never a place
//! where state lives.
//!
//! Invariant: the renderer is only ever told to play an assignment whose
//! every asset is in the cache; a newer one waits as pending meanwhile.
//!
//! Handlers by concern:
//! - [`inbox`]: documents and commands from the broker, verified, stored,
//!   then acted upon or refused;
//! - [`programme`]: what should be on screen (effective assignment,
//!   activation, schedule, alerts, screen power);
//! - [`plays`]: what the renderer reports, and proof of play.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use phare_protocol::document::ImageFormat;
use phare_protocol::report::{
    AlertStatus, AssignmentStatus, CacheStatus, CommandResponse, DisplayState, Event, EventKind,
    Importance, Interruption, LiveStatus, PlayingStatus, Status,
};
use phare_protocol::topics::Topics;
use phare_protocol::{Alert, AssetEntry, AssetId, Target};

use super::storage::Storage;
use crate::cache::Outcome;
use crate::clock::TrustedClock;
use crate::display::Rotation;
use crate::overlay::AlertOverlay;
use crate::render::RenderEvent;
use crate::report::RejectionBudget;
use crate::trust::{PlaylistItem, Trust, VerifiedAssignment};

mod inbox;
mod plays;
mod programme;
#[cfg(test)]
mod tests;

use plays::PlayLog;

/// After a flood of refused messages, the broker may have dropped a good
/// one queued behind them (its per-client queue is bounded): the retained
/// documents are asked for again this long after the flood was noticed,
/// and at most this often while it lasts.
const FLOOD_RESUBSCRIBE: Duration = Duration::from_secs(5);

/// How far ahead the alarm is set when nothing is due sooner.
const PLAN_HORIZON: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// How often "last alive" is written: often enough to end an open
/// proof-of-play record near a power cut, rarely enough to spare the SD
/// card.
const ALIVE_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// The time, as the shell reads it: the system clock (untrusted; the core
/// keeps it above the durable time floor) and the monotonic clock (for
/// the core's own timers).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub system: Timestamp,
    pub monotonic: Instant,
}

impl Now {
    pub fn read() -> Now {
        Now {
            system: Timestamp::now(),
            monotonic: Instant::now(),
        }
    }
}

/// What the cache holds, as the core asks it.
pub trait Content {
    /// The asset is verified on disk.
    fn has(&self, id: &AssetId, size: u64) -> bool;
    /// Bytes of it downloaded so far by a running download.
    fn fetched(&self, id: &AssetId) -> u64;
}

/// What the device is, as the core needs to know it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub device_id: String,
    /// In order of preference: the first with an assignment plays when
    /// the device has none of its own.
    pub groups: Vec<String>,
    pub topics: Topics,
    /// Unless the assignment says otherwise.
    pub rotation: Rotation,
    /// A reboot command can be carried out.
    pub can_reboot: bool,
}

/// What happened, for [`Core::handle`].
#[derive(Debug)]
pub enum Input {
    /// The player starts: stored documents are re-verified and played.
    Start,
    Message {
        topic: String,
        payload: Vec<u8>,
    },
    Connected {
        broker: String,
    },
    Disconnected,
    /// No session could be had with this broker.
    Unreachable {
        broker: String,
        reason: String,
    },
    /// The broker has the proof-of-play batch of this number.
    PlaysAcked(u64),
    /// What the cache did (downloads, evictions).
    Cache(Outcome),
    Render(RenderEvent),
    /// A schedule edge, or the system clock was set (`clock_set`).
    Alarm {
        clock_set: bool,
    },
    /// Time to say the status again.
    Tick,
    /// [`Core::deadline`] passed.
    Deadline,
    /// A command carried out by the shell (screenshot, cache purge).
    Finished(CommandResponse),
    /// The player stops.
    Shutdown,
}

/// What to do, from [`Core::handle`].
#[derive(Debug, PartialEq)]
pub enum Effect {
    /// Publish the status, retained, and write `status.json`:
    /// [`Core::status`] says what.
    PublishStatus,
    /// Send through the durable outbox: kept until a broker has it;
    /// routine messages are dropped first when it is full.
    Queue {
        topic: String,
        payload: Vec<u8>,
        importance: Importance,
    },
    /// A proof-of-play batch: publish if connected, and say
    /// [`Input::PlaysAcked`] once the broker has it.
    PublishPlays {
        topic: String,
        payload: Vec<u8>,
        batch: u64,
    },
    Render(Render),
    /// HDMI-CEC screen power.
    ScreenPower(bool),
    /// Fetch `missing` (what `subject` lacks); never evict `pins`.
    WantAssets {
        subject: String,
        missing: BTreeMap<AssetId, AssetEntry>,
        pins: BTreeSet<AssetId>,
    },
    /// Say [`Input::Alarm`] at this time (or when the clock is set).
    SetAlarm(Timestamp),
    /// Ask the broker for the retained documents again.
    Resubscribe,
    /// Take a thumbnail, then say [`Input::Finished`] with it in the
    /// response.
    Screenshot {
        response: CommandResponse,
        format: ImageFormat,
    },
    /// Empty the cache of what nothing pins, then say
    /// [`Input::Finished`] with what went in the response.
    PurgeCache {
        response: CommandResponse,
    },
    /// Run the configured reboot command (once the response is out).
    Reboot,
}

/// What the renderer is told.
#[derive(Debug, PartialEq)]
pub enum Render {
    /// Play these items in a loop; what was on screen is cut short for
    /// `reason`, which its proof-of-play record already says.
    Play {
        items: Vec<PlaylistItem>,
        reason: Interruption,
    },
    /// The status screen (with `message` saying why nothing plays).
    StatusScreen {
        broker: Option<String>,
        message: Option<String>,
    },
    Alert(Option<AlertOverlay>),
    Display(bool),
    Rotation(Rotation),
    Volume(f64),
    Stop,
}

/// What plays: the assignment and the playlist built from it.
struct Active {
    verified: VerifiedAssignment,
    /// The playlist on screen; `None` until the schedule picked one, and
    /// again when it must start over (a reload, an alert's asset ended).
    playlist: Option<String>,
    /// What the renderer plays, by its index: the playlist's items (none
    /// while an alert's asset or the status screen shows).
    items: Vec<PlaylistItem>,
}

/// A display command's state, held until the power windows change their
/// mind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DisplayOverride {
    /// What the command asked.
    on: bool,
    /// What the power windows said when it was given.
    planned: bool,
}

/// What the screen shows, as far as the core decided it.
struct Screen {
    display: DisplayState,
    override_: Option<DisplayOverride>,
    /// The alert shown, if any: its id and version.
    alert: Option<(String, u64)>,
    /// A full-screen text alert covers the programme: what plays under it
    /// is not seen.
    alert_covers: bool,
    /// The shown alert's own asset plays in place of the programme.
    alert_asset: Option<AssetId>,
    playing: Option<PlayingStatus>,
    live: Option<LiveStatus>,
}

pub struct Core<S> {
    settings: Settings,
    storage: S,
    trust: Trust,
    clock: TrustedClock,
    online: bool,
    /// The broker connected to, if any.
    broker: Option<String>,
    /// Current problems (see [`Status::errors`]).
    errors: Vec<Event>,
    /// How many rejections are still reported this minute.
    rejections: RejectionBudget,
    /// A flood of refused messages was seen: when to ask the broker for
    /// the retained documents again (see [`FLOOD_RESUBSCRIBE`]).
    resubscribe_at: Option<Instant>,
    /// The newest verified version of each alert of the fleet, by id; the
    /// one shown is picked from those that concern us.
    alerts: BTreeMap<String, Alert>,
    /// Verified assignments by target.
    assignments: BTreeMap<Target, VerifiedAssignment>,
    active: Option<Active>,
    screen: Screen,
    plays: PlayLog,
    /// The time floor as last written.
    floor_saved: Timestamp,
    /// When "last alive" was last written.
    alive_saved: Timestamp,
    effects: Vec<Effect>,
}

impl<S: Storage> Core<S> {
    /// `clock` holds the stored time floor; `trust` the stored root chain.
    pub fn new(settings: Settings, storage: S, trust: Trust, clock: TrustedClock) -> Core<S> {
        Core {
            settings,
            storage,
            trust,
            floor_saved: clock.floor(),
            clock,
            online: true,
            broker: None,
            errors: Vec::new(),
            rejections: RejectionBudget::new(),
            resubscribe_at: None,
            alerts: BTreeMap::new(),
            assignments: BTreeMap::new(),
            active: None,
            screen: Screen {
                display: DisplayState::On,
                override_: None,
                alert: None,
                alert_covers: false,
                alert_asset: None,
                playing: None,
                live: None,
            },
            plays: PlayLog::default(),
            alive_saved: Timestamp::UNIX_EPOCH,
            effects: Vec::new(),
        }
    }

    /// Decides what `input` calls for; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Now, content: &impl Content) -> Vec<Effect> {
        match input {
            Input::Start => {
                self.load_stored(now);
                self.reconcile(now, content);
                self.publish_status(now);
            }
            Input::Message { topic, payload } => self.on_message(&topic, &payload, now, content),
            Input::Connected { broker } => {
                self.broker = Some(broker);
                self.resolve_errors(|e| e.kind == EventKind::BrokerUnreachable);
                self.show_status_screen();
                self.plays.connection_changed();
                self.publish_status(now);
                self.send_plays();
            }
            Input::Disconnected => {
                self.broker = None;
                self.show_status_screen();
                // Unacknowledged records stay stored and go again on the
                // next connection.
                self.plays.connection_changed();
                self.publish_status(now);
            }
            Input::Unreachable { broker, reason } => {
                // Kept in the status (and status.json, for the local admin)
                // without queueing an event per retry.
                let error = Event::new(now.system, EventKind::BrokerUnreachable, reason)
                    .with_subject(broker);
                let repeated = self.errors.last().is_some_and(|last| {
                    (last.kind, &last.detail, &last.subject)
                        == (error.kind, &error.detail, &error.subject)
                });
                if !repeated {
                    self.record_error(error);
                    self.publish_status(now);
                }
            }
            Input::PlaysAcked(batch) => self.plays.broker_has(batch, now),
            Input::Cache(outcome) => self.on_cache(outcome, now, content),
            Input::Render(event) => self.on_render(event, now),
            Input::Alarm { clock_set } => {
                if clock_set {
                    tracing::info!("the system clock was set: re-planning");
                    // Documents refused against the wrong time come again.
                    self.effects.push(Effect::Resubscribe);
                }
                self.replan(now, content);
                self.publish_status(now);
            }
            Input::Tick => self.publish_status(now),
            Input::Deadline => {
                if self.resubscribe_at.is_some_and(|at| at <= now.monotonic) {
                    tracing::info!(
                        "after a flood of refused messages: asking for the retained documents again"
                    );
                    self.resubscribe_at = None;
                    self.effects.push(Effect::Resubscribe);
                }
                if self.plays.resend_due(now) {
                    self.send_plays();
                }
            }
            Input::Finished(response) => {
                self.answer(&response);
                self.publish_status(now);
            }
            Input::Shutdown => {
                tracing::info!("shutting down");
                self.close_play(Some(Interruption::Shutdown), now);
                self.effects.push(Effect::Render(Render::Stop));
                self.online = false;
                self.publish_status(now);
            }
        }
        std::mem::take(&mut self.effects)
    }

    /// When to say [`Input::Deadline`], if anything is due.
    pub fn deadline(&self) -> Option<Instant> {
        [self.resubscribe_at, self.plays.resend_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A broker is connected.
    pub fn connected(&self) -> bool {
        self.broker.is_some()
    }

    /// The status at `now`: a view of the core's state, with the cache's
    /// figures and the uptime, which the shell knows.
    pub fn status(
        &self,
        now: Now,
        cache: CacheStatus,
        uptime_s: u64,
        content: &impl Content,
    ) -> Status {
        let now_trusted = self.now(now);
        Status {
            device: self.settings.device_id.clone(),
            online: self.online,
            player_version: env!("CARGO_PKG_VERSION").to_string(),
            at: Some(now_trusted),
            uptime_s,
            assignment: self.active.as_ref().map(|active| AssignmentStatus {
                target: active.verified.target.to_string(),
                version: active.verified.assignment.version,
                stale: active.verified.assignment.expires_at <= now_trusted,
            }),
            pending_assignment: self.pending_status(content),
            playing: self.screen.playing.clone(),
            live: self.screen.live.clone(),
            alert: self.shown_alert(now_trusted).map(|a| AlertStatus {
                id: a.id.clone(),
                version: a.version,
                priority: a.priority,
                style: a.style.clone(),
                message: a.message.clone(),
                expires_at: a.expires_at,
            }),
            display: self.screen.display,
            cache,
            broker: self.broker.clone(),
            trust: Some(self.trust.status(now_trusted)),
            errors: self.errors.clone(),
        }
    }

    /// The trusted now: never below the durable time floor.
    fn now(&self, now: Now) -> Timestamp {
        self.clock.now(now.system)
    }

    /// Says the status (once the freeze check and the times are up to
    /// date).
    fn publish_status(&mut self, now: Now) {
        self.save_times(now);
        if let Some(event) = self.trust.check_freeze(self.now(now)) {
            self.emit(event);
        }
        self.effects.push(Effect::PublishStatus);
    }

    /// Persists the signed time floor when it moved, and the untrusted
    /// "last alive" time once in a while (see [`ALIVE_EVERY`]).
    fn save_times(&mut self, now: Now) {
        let floor = self.clock.floor();
        if floor != self.floor_saved {
            match self.storage.put_time_floor(floor) {
                Ok(()) => self.floor_saved = floor,
                Err(e) => tracing::error!(error = %e, "saving the time floor"),
            }
        }
        if now.system.duration_since(self.alive_saved).abs() >= ALIVE_EVERY {
            match self.storage.put_last_alive(now.system) {
                Ok(()) => self.alive_saved = now.system,
                Err(e) => tracing::error!(error = %e, "saving the last-alive time"),
            }
        }
    }

    /// Sends an event through the outbox; an error also stays in the
    /// status until it is over.
    fn emit(&mut self, event: Event) {
        // An asset that arrived whole ends the failures about it.
        if event.kind == EventKind::Downloaded {
            self.resolve_errors(|e| e.subject.is_some() && e.subject == event.subject);
        }
        let payload = serde_json::to_vec(&event).expect("events always serialise");
        self.effects.push(Effect::Queue {
            topic: self.settings.topics.events(&self.settings.device_id),
            payload,
            importance: event.kind.importance(),
        });
        if event.is_error() {
            self.record_error(event);
        }
    }

    fn record_error(&mut self, event: Event) {
        if self.errors.len() == phare_protocol::report::RECENT_ERRORS {
            self.errors.remove(0);
        }
        self.errors.push(event);
    }

    /// Forgets the errors `resolved` says are over: what they were about
    /// was superseded or works now.
    fn resolve_errors(&mut self, resolved: impl Fn(&Event) -> bool) {
        self.errors.retain(|event| !resolved(event));
    }

    /// Sends a command's response through the outbox.
    fn answer(&mut self, response: &CommandResponse) {
        let payload = serde_json::to_vec(response).expect("responses always serialise");
        self.effects.push(Effect::Queue {
            topic: self.settings.topics.response(&self.settings.device_id),
            payload,
            importance: Importance::Error,
        });
    }

    /// The status screen, when there is no assignment to play; kept up to
    /// date with the broker.
    fn show_status_screen(&mut self) {
        if self.active.is_none() {
            self.effects.push(Effect::Render(Render::StatusScreen {
                broker: self.broker.clone(),
                message: None,
            }));
        }
    }
}
