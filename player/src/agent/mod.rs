//! The agent: the one owner of the device's moving state. It receives
//! events from the link (MQTT), the fetcher and the renderer, decides with
//! the pure modules (trust, protocol checks), and drives the rest.
//!
//! Invariant: the renderer only ever plays an assignment whose every asset
//! is on disk and verified; a newer one waits as `pending` meanwhile.
//!
//! The state lives here; its handlers are split by concern:
//! - [`inbox`]: documents and commands from the broker, verified or refused;
//! - [`programme`]: what should be on screen (effective assignment,
//!   activation, schedule, alerts, screen power);
//! - [`plays`]: what the renderer reports, and proof of play.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use phare_protocol::topics::Topics;
use phare_protocol::{Alert, AssetEntry, AssetId, Assignment, Command, Envelope, Rejection};
use tokio::sync::mpsc;

use crate::alarm::{Alarm, Ring};
use crate::cache::{Cache, FetchEvent, Outcome};
use crate::clock::TrustedClock;
use crate::config::Config;
use crate::display::Rotation;
use crate::link::{Link, LinkConfig, LinkEvent};
use crate::outbox::Outbox;
use crate::overlay::{AlertOverlay, AlertStyle};
use crate::power;
use crate::render::{
    LiveState, MediaKind, PlayItem, RenderEvent, RenderSettings, Renderer, Screenshots,
    StatusScreen, ThumbnailFormat,
};
use crate::report::{
    self, Admission, AssignmentStatus, Event, LiveStatus, PendingStatus, PlayingStatus,
    RejectionBudget, ShortText, Status,
};
use crate::store::{OpenPlay, Store};
use crate::trust::{ALERT_STREAMS, Identity, Trust, Verdict, alert_stream, assignment_stream};
use phare_protocol::schedule::Schedule;

mod inbox;
mod plays;
mod programme;

/// A proof-of-play batch on its way (one at a time). Its records are
/// forgotten only once a collector acknowledged them on `pop/ack`: the
/// broker's acknowledgement is not enough, since with no collector session
/// it drops what nobody subscribed to.
#[derive(Debug, Clone, Copy)]
enum PlaysInFlight {
    /// Published; waiting for the broker. `last`: its last record.
    Publishing { token: u64, last: i64 },
    /// The broker has it; waiting for a collector, until `resend_at`.
    AwaitingCollector {
        last: i64,
        resend_at: tokio::time::Instant,
    },
}

/// After a flood of refused messages, the broker may have dropped a good
/// one queued behind them (its per-client queue is bounded): the retained
/// documents are asked for again this long after the flood was noticed,
/// and at most this often while it lasts.
const FLOOD_RESUBSCRIBE: Duration = Duration::from_secs(5);

/// How long a batch waits for a collector's acknowledgement before it goes
/// again (a collector that was not running gets it then).
const PLAY_ACK_WAIT: Duration = Duration::from_secs(15);

/// The playlist item on screen and its open proof-of-play record.
#[derive(Debug, Clone, Copy)]
struct OnScreen {
    /// The renderer's index of the item.
    index: usize,
    /// Its proof-of-play record.
    seq: i64,
    /// A full-screen text alert covered it at some point: it was not seen
    /// whole, so it does not count as completed.
    hidden: bool,
}

/// Alerts held at once (each its own version stream): past this, the one
/// that ended longest ago is forgotten for a new one; if all are active,
/// the new one is refused.
const MAX_ALERTS: usize = 64;

/// Link acknowledgement tokens with this bit set are outbox sequence
/// numbers; the others are proof-of-play batches.
const OUTBOX_TOKEN: u64 = 1 << 63;

/// What is on screen: the assignment and the playlist built from it.
struct Active {
    assignment: Assignment,
    schedule: Schedule,
    /// The playlist on screen; `None` until the schedule picked one.
    playlist: Option<String>,
    /// For each renderer item, the playlist position and what it shows.
    items: Vec<(usize, ItemSource)>,
}

/// What a renderer item shows: a cached asset or a live stream.
#[derive(Debug, Clone)]
enum ItemSource {
    Asset(AssetId),
    Live(String),
}

impl ItemSource {
    fn asset(&self) -> Option<String> {
        match self {
            ItemSource::Asset(id) => Some(id.to_string()),
            ItemSource::Live(_) => None,
        }
    }

    fn live(&self) -> Option<String> {
        match self {
            ItemSource::Asset(_) => None,
            ItemSource::Live(uri) => Some(uri.clone()),
        }
    }
}

impl std::fmt::Display for ItemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemSource::Asset(id) => write!(f, "{id}"),
            ItemSource::Live(uri) => f.write_str(uri),
        }
    }
}

pub struct Agent {
    config: Config,
    topics: Topics,
    store: Store,
    trust: Trust,
    cache: Cache,
    renderer: Renderer,
    link: Link,
    /// Events and command responses until a broker has them.
    outbox: Outbox,
    status: Status,
    /// How many rejections are still reported this minute.
    rejections: RejectionBudget,
    /// A flood of refused messages was seen: when to ask the broker for the
    /// retained documents again (see [`FLOOD_RESUBSCRIBE`]).
    resubscribe_at: Option<tokio::time::Instant>,
    started: Instant,
    clock: TrustedClock,
    /// Wakes the agent at the next schedule change, or when the clock is set.
    alarm: Alarm,
    /// The alert the renderer shows, if any: its id and version.
    alert_on_screen: Option<(String, u64)>,
    /// The shown alert's own asset (its cache file) playing in place of
    /// the programme.
    alert_asset_playing: Option<std::path::PathBuf>,
    /// A display command's state, and the power plan it overrode.
    display_override: Option<(bool, bool)>,
    /// The item on screen: its renderer index and proof-of-play record.
    on_screen: Option<OnScreen>,
    /// A full-screen text alert covers the programme: what plays under it
    /// is not seen.
    alert_covers_programme: bool,
    /// Why the item on screen is about to be cut short, set by the cause.
    interrupt_reason: Option<&'static str>,
    /// The proof-of-play batch on its way, if any.
    plays_in_flight: Option<PlaysInFlight>,
    play_token: u64,
    /// The time floor as last written to the store.
    floor_saved: Timestamp,
    /// When "last alive" was last written to the store.
    alive_saved: Timestamp,
    /// The newest verified version of each alert of the fleet, by id (at
    /// most [`MAX_ALERTS`]); the one shown is picked from those that
    /// concern us.
    alerts: BTreeMap<String, Alert>,
    /// Verified assignments by target (`device:<id>`, `group:<name>`).
    assignments: BTreeMap<String, Assignment>,
    active: Option<Active>,
    link_events: mpsc::Receiver<LinkEvent>,
    fetch_events: mpsc::UnboundedReceiver<FetchEvent>,
    render_events: mpsc::UnboundedReceiver<RenderEvent>,
    /// Command responses finished off the agent's task (screenshots):
    /// the response so far and the outcome.
    answers_tx: mpsc::UnboundedSender<(serde_json::Value, Result<serde_json::Value, String>)>,
    answers: mpsc::UnboundedReceiver<(serde_json::Value, Result<serde_json::Value, String>)>,
}

impl Agent {
    /// Opens the state, starts the renderer and begins playing from the
    /// cache, then starts the network side. Must run inside a Tokio runtime.
    pub fn start(config: Config) -> anyhow::Result<Agent> {
        Agent::start_on(config, false)
    }

    /// A device with everything but the screen (see
    /// [`Renderer::simulated`]): what `phare-player --simulate` runs many
    /// of, to load a broker and an origin like a fleet would.
    pub fn start_simulated(config: Config) -> anyhow::Result<Agent> {
        Agent::start_on(config, true)
    }

    fn start_on(config: Config, simulated: bool) -> anyhow::Result<Agent> {
        use anyhow::Context;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
        let store = Store::open(&config.data_dir.join("state.db"))?;
        let outbox = Outbox::open(&config.data_dir.join("state.db"))?;
        let clock = TrustedClock::new(store.time_floor()?);
        // Records left open by a crash or power cut end when the player was
        // last seen alive, never after now.
        let now = clock.now(Timestamp::now());
        let last_alive = store.last_alive()?.map_or(now, |at| at.min(now));
        store.close_abandoned_plays(last_alive)?;
        let pinned_bytes = std::fs::read(&config.root)
            .with_context(|| format!("reading the pinned root {}", config.root.display()))?;
        let pinned = Envelope::from_slice(&pinned_bytes).context("the pinned root")?;
        let identity = Identity {
            fleet: config.fleet.clone(),
            device_id: config.device_id.clone(),
            groups: config.groups.clone(),
            allow_plaintext_live: config.allow_plaintext_live,
        };
        let trust = Trust::new(&pinned, &store.roots()?, identity).context("the pinned root")?;
        let topics = config.topics();

        let (render_tx, render_events) = mpsc::unbounded_channel();
        let renderer = if simulated {
            Renderer::simulated(render_tx)
        } else {
            Renderer::start(
                RenderSettings {
                    sink: config.video_sink,
                    display: config.display.clone(),
                    overlay: config.overlay.clone(),
                    status: status_screen(&config, None),
                },
                render_tx,
            )?
        };
        let (fetch_tx, fetch_events) = mpsc::unbounded_channel();
        let origins = config
            .origins
            .iter()
            .filter_map(|o| reqwest::Url::parse(o).ok())
            .collect();
        let cache = Cache::open(&config.data_dir, &config.cache, origins, fetch_tx)?;

        let mut subscriptions = vec![
            topics.root_filter(),
            topics.device_assignment(&config.device_id),
        ];
        subscriptions.extend(config.groups.iter().map(|g| topics.group_assignment(g)));
        subscriptions.push(topics.alert_filter());
        subscriptions.push(topics.command(&config.device_id));
        subscriptions.push(topics.pop_ack(&config.device_id));
        let (link_tx, link_events) = mpsc::channel(crate::link::EVENT_QUEUE);
        let link = Link::spawn(
            LinkConfig {
                client_id: config.device_id.clone(),
                brokers: config.broker_addrs(),
                subscriptions,
                will: (
                    topics.status(&config.device_id),
                    report::offline_will(&config.device_id),
                ),
                auth: config.mqtt.clone(),
                primary_retry: Duration::from_secs(config.primary_retry_s),
            },
            link_tx,
        );

        let (answers_tx, answers) = mpsc::unbounded_channel();
        let mut agent = Agent {
            status: Status::new(&config.device_id),
            config,
            topics,
            store,
            trust,
            cache,
            renderer,
            link,
            outbox,
            rejections: RejectionBudget::new(),
            resubscribe_at: None,
            started: Instant::now(),
            floor_saved: clock.floor(),
            alive_saved: Timestamp::UNIX_EPOCH,
            alarm: Alarm::new().context("creating the schedule alarm")?,
            alert_on_screen: None,
            alert_asset_playing: None,
            display_override: None,
            on_screen: None,
            alert_covers_programme: false,
            interrupt_reason: None,
            plays_in_flight: None,
            play_token: 0,
            clock,
            alerts: BTreeMap::new(),
            assignments: BTreeMap::new(),
            active: None,
            link_events,
            fetch_events,
            render_events,
            answers_tx,
            answers,
        };
        agent.load_stored_assignments();
        agent.load_stored_alerts();
        agent.reconcile();
        agent.publish_status();
        Ok(agent)
    }

    /// Runs until `shutdown` resolves, then stops cleanly: the renderer
    /// stops and the broker is told we went offline on purpose. The loop
    /// itself answers `heartbeat` (the systemd watchdog): a hung loop
    /// stops the beats and gets the player restarted.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
        mut heartbeat: crate::watchdog::Heartbeat,
    ) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(self.config.status_interval_s));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let cache_wakeup = self.cache.wakeup();
            let plays_resend_at = self.plays_resend_at();
            let resubscribe_at = self.resubscribe_at;
            tokio::select! {
                _ = &mut shutdown => break,
                Some(event) = self.link_events.recv() => self.on_link(event),
                Some(event) = self.fetch_events.recv() => {
                    let outcome = self.cache.on_event(event);
                    self.on_cache(outcome);
                }
                _ = sleep_until_opt(cache_wakeup) => {
                    let outcome = self.cache.on_timer();
                    self.on_cache(outcome);
                }
                Some(event) = self.render_events.recv() => self.on_render(event),
                Some((response, outcome)) = self.answers.recv() => self.answer(response, outcome),
                ring = self.alarm.ring() => {
                    if let Ok(Ring::ClockSet) = ring {
                        tracing::info!("the system clock was set: re-planning");
                        // Documents refused against the wrong time come again.
                        self.link.resubscribe();
                    }
                    self.replan();
                    self.publish_status();
                }
                _ = sleep_until_opt(resubscribe_at) => {
                    tracing::info!("after a flood of refused messages: asking for the retained documents again");
                    self.resubscribe_at = None;
                    self.link.resubscribe();
                }
                _ = sleep_until_opt(plays_resend_at) => {
                    self.plays_in_flight = None;
                    self.send_plays();
                }
                _ = tick.tick() => self.publish_status(),
                _ = heartbeat.tick() => heartbeat.beat(),
            }
        }
        tracing::info!("shutting down");
        self.interrupt_reason = Some("shutdown");
        self.close_play(false);
        self.renderer.stop();
        self.status.online = false;
        self.publish_status();
        let last = (
            self.topics.status(&self.config.device_id),
            self.status.to_json(),
        );
        // Nobody reads the link's events any more: closing the queue keeps
        // the link from waiting on it instead of serving the shutdown.
        self.link_events.close();
        self.link.shutdown(Some(last)).await;
    }

    fn load_stored_assignments(&mut self) {
        let mut targets = vec![format!("device:{}", self.config.device_id)];
        targets.extend(self.config.groups.iter().map(|g| format!("group:{g}")));
        for target in targets {
            let stored = match self.store.document(&assignment_stream(&target)) {
                Ok(Some(stored)) => stored,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "reading a stored assignment");
                    continue;
                }
            };
            match self.trust.reverify_stored(&stored) {
                Ok(assignment) => {
                    self.assignments.insert(target, assignment);
                }
                Err(rejection) => self.reject(&target, &rejection),
            }
        }
    }

    fn load_stored_alerts(&mut self) {
        let documents = match self.store.publisher_documents() {
            Ok(documents) => documents,
            Err(e) => return tracing::error!(error = %e, "reading the stored alerts"),
        };
        for (stream, stored) in documents {
            if !stream.starts_with(ALERT_STREAMS) {
                continue;
            }
            match self.trust.reverify_alert(&stored) {
                Ok(alert) => {
                    self.alerts.insert(alert.id.clone(), alert);
                }
                Err(rejection) => self.reject(&stream, &rejection),
            }
        }
    }

    /// Persists the signed time floor when it moved, and the untrusted
    /// "last alive" time once a minute: often enough to end an open
    /// proof-of-play record near a power cut, rarely enough to spare the
    /// SD card.
    fn save_times(&mut self) {
        let floor = self.clock.floor();
        if floor != self.floor_saved {
            match self.store.put_time_floor(floor) {
                Ok(()) => self.floor_saved = floor,
                Err(e) => tracing::error!(error = %e, "saving the time floor"),
            }
        }
        let now = Timestamp::now();
        if now.duration_since(self.alive_saved).abs() >= jiff::SignedDuration::from_secs(60) {
            match self.store.put_last_alive(now) {
                Ok(()) => self.alive_saved = now,
                Err(e) => tracing::error!(error = %e, "saving the last-alive time"),
            }
        }
    }

    /// The trusted now: never below the durable time floor.
    fn now(&self) -> Timestamp {
        self.clock.now(Timestamp::now())
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Connected { broker } => {
                self.status.broker = Some(broker);
                self.status
                    .resolve_errors(|e| e.kind == "broker_unreachable");
                self.show_status_screen();
                self.plays_in_flight = None;
                self.outbox.connection_lost();
                self.publish_status();
                self.send_plays();
                self.send_outbox();
            }
            LinkEvent::Disconnected { .. } => {
                self.status.broker = None;
                self.show_status_screen();
                // Unacknowledged records and messages stay stored and go
                // again on the next connection.
                self.plays_in_flight = None;
                self.outbox.connection_lost();
                self.publish_status();
            }
            LinkEvent::Unreachable { broker, reason } => {
                // Kept in the status (and status.json, for the local admin)
                // without queueing an event per retry.
                let error = Event {
                    at: Timestamp::now(),
                    kind: "broker_unreachable",
                    reason: None,
                    detail: reason.into(),
                    subject: Some(broker.into()),
                };
                let repeated = self.status.errors.last().is_some_and(|last| {
                    (last.kind, &last.detail, &last.subject)
                        == (error.kind, &error.detail, &error.subject)
                });
                if !repeated {
                    self.status.record_error(error);
                    self.publish_status();
                }
            }
            LinkEvent::Acked { token } if token & OUTBOX_TOKEN != 0 => {
                let seq = (token & !OUTBOX_TOKEN) as i64;
                if let Err(e) = self.outbox.acked(seq) {
                    tracing::error!(error = %e, "forgetting a delivered message");
                }
                self.send_outbox();
            }
            LinkEvent::Acked { token } => {
                if let Some(PlaysInFlight::Publishing { token: sent, last }) = self.plays_in_flight
                    && sent == token
                {
                    self.plays_in_flight = Some(PlaysInFlight::AwaitingCollector {
                        last,
                        resend_at: tokio::time::Instant::now() + PLAY_ACK_WAIT,
                    });
                }
            }
            LinkEvent::Message { topic, payload } => self.on_message(&topic, &payload),
        }
    }

    /// The renderer's screenshots, for local diagnostics (`--screenshot-dir`).
    pub fn screenshots(&self) -> Screenshots {
        self.renderer.screenshots()
    }

    fn emit(&mut self, event: Event) {
        // An asset that arrived whole ends the failures about it.
        if event.kind == "downloaded" {
            self.status
                .resolve_errors(|e| e.subject.is_some() && e.subject == event.subject);
        }
        let json = serde_json::to_vec(&event).expect("events always serialise");
        let topic = self.topics.events(&self.config.device_id);
        self.queue(&topic, &json, !event.is_error());
        if event.is_error() {
            self.status.record_error(event);
        }
    }

    /// Sends `payload` through the durable outbox: kept until a broker
    /// acknowledges it; `low_value` ones are dropped first when it is full.
    fn queue(&mut self, topic: &str, payload: &[u8], low_value: bool) {
        // Stored, it would be sent first again on every connection and fail
        // each one: never queued.
        if !crate::link::fits_in_packet(topic, payload) {
            return tracing::error!(
                topic,
                bytes = payload.len(),
                "message over the packet cap dropped"
            );
        }
        if let Err(e) = self.outbox.push(topic, payload, low_value) {
            tracing::error!(error = %e, topic, "queueing a message");
        }
        self.send_outbox();
    }

    fn send_outbox(&mut self) {
        if self.status.broker.is_none() {
            return;
        }
        match self.outbox.next_batch() {
            Ok(batch) => {
                for message in batch {
                    let token = OUTBOX_TOKEN | message.seq as u64;
                    self.link
                        .publish_acked(message.topic, message.payload, token);
                }
            }
            Err(e) => tracing::error!(error = %e, "reading the outbox"),
        }
    }

    fn publish_status(&mut self) {
        let now = self.now();
        self.save_times();
        self.status.at = now;
        self.status.alert = self.shown_alert(now).map(|a| {
            serde_json::json!({"id": a.id, "version": a.version, "priority": a.priority,
                               "style": a.style, "message": a.message, "expires_at": a.expires_at})
        });
        self.status.uptime_s = self.started.elapsed().as_secs();
        if let Some(event) = self.trust.check_freeze(now) {
            self.emit(event);
        }
        self.status.trust = Some(self.trust.status(now));
        if let (Some(status), Some(active)) = (&mut self.status.assignment, &self.active) {
            status.stale = active.assignment.expires_at <= now;
        }
        self.status.pending_assignment = self.pending_status();
        self.status.cache = self.cache.figures();
        let json = self.status.to_json();
        if let Err(e) = report::write_atomically(&self.config.data_dir.join("status.json"), &json) {
            tracing::error!(error = %e, "writing status.json");
        }
        self.link
            .publish_retained(self.topics.status(&self.config.device_id), json);
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the status screen says about this device, reaching `broker` (if any).
fn status_screen(config: &Config, broker: Option<String>) -> StatusScreen {
    StatusScreen {
        device_id: config.device_id.clone(),
        fleet: config.fleet.clone(),
        broker,
        enrolment_code: crate::overlay::enrolment_code(&config.fleet, &config.device_id),
        message: None,
    }
}
