//! The agent: the one owner of the device's moving state. It receives
//! events from the link (MQTT), the fetcher and the renderer, decides with
//! the pure modules (trust, protocol checks), and drives the rest.
//!
//! Invariant: the renderer only ever plays an assignment whose every asset
//! is on disk and verified; a newer one waits as `pending` meanwhile.

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
use crate::overlay::{AlertOverlay, AlertStyle};
use crate::power;
use crate::render::{
    LiveState, MediaKind, PlayItem, RenderEvent, RenderSettings, Renderer, Screenshots,
    StatusScreen,
};
use crate::report::{
    self, AssignmentStatus, Event, LiveStatus, PendingStatus, PlayingStatus, Status,
};
use crate::schedule::Schedule;
use crate::store::{OpenPlay, Store};
use crate::trust::{ALERT_STREAM, Identity, Trust, Verdict, assignment_stream};

/// Proof-of-play records per published batch.
const PLAY_BATCH: usize = 100;

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
    status: Status,
    started: Instant,
    clock: TrustedClock,
    /// Wakes the agent at the next schedule change, or when the clock is set.
    alarm: Alarm,
    /// The version of the alert the renderer shows, if any.
    alert_on_screen: Option<u64>,
    /// The alert's own asset is playing in place of the programme.
    alert_asset_playing: bool,
    /// A display command's state, and the power plan it overrode.
    display_override: Option<(bool, bool)>,
    /// The item on screen: its renderer index and proof-of-play record.
    on_screen: Option<(usize, i64)>,
    /// Why the item on screen is about to be cut short, set by the cause.
    interrupt_reason: Option<&'static str>,
    /// The proof-of-play batch awaiting the broker's ack: (token, last seq).
    plays_in_flight: Option<(u64, i64)>,
    play_token: u64,
    /// The time floor as last written to the store.
    floor_saved: Timestamp,
    /// The newest verified alert of the fleet, shown if it concerns us.
    alert: Option<Alert>,
    /// Verified assignments by target (`device:<id>`, `group:<name>`).
    assignments: BTreeMap<String, Assignment>,
    active: Option<Active>,
    link_events: mpsc::UnboundedReceiver<LinkEvent>,
    fetch_events: mpsc::UnboundedReceiver<FetchEvent>,
    render_events: mpsc::UnboundedReceiver<RenderEvent>,
}

impl Agent {
    /// Opens the state, starts the renderer and begins playing from the
    /// cache, then starts the network side. Must run inside a Tokio runtime.
    pub fn start(config: Config) -> anyhow::Result<Agent> {
        use anyhow::Context;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
        let store = Store::open(&config.data_dir.join("state.db"))?;
        // Records left open by a crash or power cut end where the last
        // trustworthy time says.
        store.close_abandoned_plays(store.time_floor()?.unwrap_or_else(Timestamp::now))?;
        let pinned_bytes = std::fs::read(&config.root)
            .with_context(|| format!("reading the pinned root {}", config.root.display()))?;
        let pinned = Envelope::from_slice(&pinned_bytes).context("the pinned root")?;
        let identity = Identity {
            fleet: config.fleet.clone(),
            device_id: config.device_id.clone(),
            groups: config.groups.clone(),
        };
        let trust = Trust::new(&pinned, &store.roots()?, identity).context("the pinned root")?;
        let clock = TrustedClock::new(store.time_floor()?);
        let topics = config.topics();

        let (render_tx, render_events) = mpsc::unbounded_channel();
        let renderer = Renderer::start(
            RenderSettings {
                sink: config.video_sink,
                display: config.display.clone(),
                overlay: config.overlay.clone(),
                status: status_screen(&config, None),
            },
            render_tx,
        )?;
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
        subscriptions.push(topics.alert());
        subscriptions.push(topics.command(&config.device_id));
        let (link_tx, link_events) = mpsc::unbounded_channel();
        let link = Link::spawn(
            LinkConfig {
                client_id: config.device_id.clone(),
                brokers: config.broker_addrs(),
                subscriptions,
                will: (
                    topics.status(&config.device_id),
                    report::offline_will(&config.device_id),
                ),
            },
            link_tx,
        );

        let mut agent = Agent {
            status: Status::new(&config.device_id),
            config,
            topics,
            store,
            trust,
            cache,
            renderer,
            link,
            started: Instant::now(),
            floor_saved: clock.floor(),
            alarm: Alarm::new().context("creating the schedule alarm")?,
            alert_on_screen: None,
            alert_asset_playing: false,
            display_override: None,
            on_screen: None,
            interrupt_reason: None,
            plays_in_flight: None,
            play_token: 0,
            clock,
            alert: None,
            assignments: BTreeMap::new(),
            active: None,
            link_events,
            fetch_events,
            render_events,
        };
        agent.load_stored_assignments();
        agent.load_stored_alert();
        agent.reconcile();
        agent.publish_status();
        Ok(agent)
    }

    /// Runs until `shutdown` resolves, then stops cleanly: the renderer
    /// stops and the broker is told we went offline on purpose.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(self.config.status_interval_s));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let cache_wakeup = self.cache.wakeup();
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
                ring = self.alarm.ring() => {
                    if let Ok(Ring::ClockSet) = ring {
                        tracing::info!("the system clock was set: re-planning");
                    }
                    self.replan();
                    self.publish_status();
                }
                _ = tick.tick() => self.publish_status(),
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

    fn load_stored_alert(&mut self) {
        match self.store.document(ALERT_STREAM) {
            Ok(Some(stored)) => match self.trust.reverify_alert(&stored) {
                Ok(alert) => self.alert = Some(alert),
                Err(rejection) => self.reject(ALERT_STREAM, &rejection),
            },
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "reading the stored alert"),
        }
    }

    /// Persists the time floor when it moved by a minute or more: often
    /// enough to matter after a power cut, rarely enough to spare the SD card.
    fn save_time_floor(&mut self) {
        let floor = self.clock.floor();
        if floor.duration_since(self.floor_saved) >= jiff::SignedDuration::from_secs(60) {
            match self.store.put_time_floor(floor) {
                Ok(()) => self.floor_saved = floor,
                Err(e) => tracing::error!(error = %e, "saving the time floor"),
            }
        }
    }

    /// The trusted now: never below the durable time floor.
    fn now(&mut self) -> Timestamp {
        self.clock.now(Timestamp::now())
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Connected { broker } => {
                self.status.broker = Some(broker);
                self.show_status_screen();
                self.plays_in_flight = None;
                self.send_plays();
                self.publish_status();
            }
            LinkEvent::Disconnected { .. } => {
                self.status.broker = None;
                self.show_status_screen();
                // Unacknowledged records stay stored and go again.
                self.plays_in_flight = None;
                self.publish_status();
            }
            LinkEvent::Acked { token } => {
                if let Some((sent, last)) = self.plays_in_flight
                    && sent == token
                {
                    if let Err(e) = self.store.forget_plays_through(last) {
                        tracing::error!(error = %e, "forgetting delivered proof of play");
                    }
                    self.plays_in_flight = None;
                    self.send_plays();
                }
            }
            LinkEvent::Message { topic, payload } => self.on_message(&topic, &payload),
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        // An empty retained message only clears the broker's copy; it is
        // unsigned, so it changes nothing here.
        if payload.is_empty() {
            return;
        }
        let envelope = match Envelope::from_slice(payload) {
            Ok(envelope) => envelope,
            Err(rejection) => return self.reject(topic, &rejection),
        };
        if let Some(version) = self.topics.root_version(topic) {
            self.on_root(topic, version, envelope);
        } else if let Some(target) = self.target_of(topic) {
            self.on_assignment(&target, envelope);
        } else if topic == self.topics.alert() {
            self.on_alert(envelope);
        } else if topic == self.topics.command(&self.config.device_id) {
            self.on_command(envelope);
        }
    }

    /// The assignment target an assignment topic stands for.
    fn target_of(&self, topic: &str) -> Option<String> {
        let device = format!("device:{}", self.config.device_id);
        let mut targets =
            std::iter::once(device).chain(self.config.groups.iter().map(|g| format!("group:{g}")));
        targets.find(|t| self.topics.assignment_for_target(t).as_deref() == Some(topic))
    }

    fn on_root(&mut self, topic: &str, version: u64, envelope: Envelope) {
        let update = self.trust.offer_root(version, envelope);
        for (version, envelope) in &update.accepted {
            if let Err(e) = self.store.put_root(*version, envelope) {
                tracing::error!(error = %e, "storing an accepted root");
            }
            tracing::info!(version, "accepted a new root");
        }
        if update.publisher_rotated {
            tracing::info!(
                "publisher keys rotated: version floors of assignments and alerts reset"
            );
            if let Err(e) = self.store.reset_publisher_floors() {
                tracing::error!(error = %e, "resetting version floors");
            }
        }
        if let Some(rejection) = update.rejected {
            self.reject(topic, &rejection);
        }
    }

    fn on_assignment(&mut self, target: &str, envelope: Envelope) {
        let stream = assignment_stream(target);
        let floor = match self.store.document(&stream) {
            Ok(floor) => floor,
            Err(e) => return tracing::error!(error = %e, "reading the version floor"),
        };
        let assignment = match self.trust.verify_assignment(
            &envelope,
            floor.as_ref(),
            self.clock.now(Timestamp::now()),
        ) {
            Ok(Verdict::New(assignment)) if assignment.target == target => *assignment,
            Ok(Verdict::New(assignment)) => {
                return self.reject(target, &Rejection::WrongTarget(assignment.target));
            }
            Ok(Verdict::Known) => return,
            Err(rejection) => return self.reject(target, &rejection),
        };
        if let Err(e) = self
            .store
            .put_document(&stream, assignment.version, &envelope.to_json())
        {
            // Not durable, so not accepted: the retained copy comes back.
            return tracing::error!(error = %e, "storing an accepted assignment");
        }
        tracing::info!(
            target,
            version = assignment.version,
            "accepted an assignment"
        );
        self.clock.observe_signed(assignment.issued_at);
        self.assignments.insert(target.to_string(), assignment);
        self.reconcile();
        self.publish_status();
    }

    fn on_alert(&mut self, envelope: Envelope) {
        let floor = match self.store.document(ALERT_STREAM) {
            Ok(floor) => floor,
            Err(e) => return tracing::error!(error = %e, "reading the alert floor"),
        };
        let now = self.now();
        let alert = match self.trust.verify_alert(&envelope, floor.as_ref(), now) {
            Ok(Verdict::New(alert)) => *alert,
            Ok(Verdict::Known) => return,
            Err(rejection) => return self.reject(ALERT_STREAM, &rejection),
        };
        if let Err(e) = self
            .store
            .put_document(ALERT_STREAM, alert.version, &envelope.to_json())
        {
            return tracing::error!(error = %e, "storing an accepted alert");
        }
        tracing::info!(
            version = alert.version,
            active = alert.active,
            "accepted an alert"
        );
        self.clock.observe_signed(alert.issued_at);
        self.alert = Some(alert);
        self.replan();
        self.publish_status();
    }

    /// The alert to show now, if any: active, unexpired, addressed to us.
    fn shown_alert(&self, now: Timestamp) -> Option<&Alert> {
        self.alert.as_ref().filter(|a| {
            a.active
                && a.expires_at > now
                && a.concerns(&self.config.device_id, &self.config.groups)
        })
    }

    fn on_command(&mut self, envelope: Envelope) {
        let now = self.now();
        let subject = self.topics.command(&self.config.device_id);
        let command = match self.trust.verify_command(&envelope, now) {
            Ok(command) => command,
            Err(rejection) => return self.reject(&subject, &rejection),
        };
        match self
            .store
            .record_command(&command.id, command.expires_at, now)
        {
            Ok(true) => {}
            Ok(false) => return self.reject(&subject, &Rejection::Replay(command.id)),
            // Unrecorded means it could run twice: refuse rather than risk it.
            Err(e) => return tracing::error!(error = %e, "recording a command id"),
        }
        self.clock.observe_signed(command.issued_at);
        let outcome = self.execute(&command);
        let mut response = serde_json::json!({
            "id": command.id,
            "ok": outcome.is_ok(),
            "action": command.action,
            "at": now,
        });
        match outcome {
            Ok(serde_json::Value::Object(extra)) => {
                response.as_object_mut().expect("an object").extend(extra)
            }
            Ok(_) => {}
            Err(error) => response["error"] = error.into(),
        }
        let json = serde_json::to_vec(&response).expect("responses always serialise");
        self.link
            .publish(self.topics.response(&self.config.device_id), json, false);
    }

    /// Carries out a verified, first-seen command; `Ok` carries fields to
    /// add to the response.
    fn execute(&mut self, command: &Command) -> Result<serde_json::Value, String> {
        let done = Ok(serde_json::Value::Null);
        match command.action.as_str() {
            "report_now" => {
                self.publish_status();
                done
            }
            "screenshot" => {
                use base64::Engine;
                let shot = self.renderer.screenshot().map_err(|e| e.to_string())?;
                Ok(serde_json::json!({
                    "media_type": "image/jpeg",
                    "image": base64::engine::general_purpose::STANDARD.encode(shot.jpeg_thumbnail),
                }))
            }
            "reload" => {
                // Start the programme again from its first item.
                if let Some(active) = &mut self.active {
                    active.playlist = None;
                }
                self.replan();
                done
            }
            "set_volume" => {
                let volume = command.args.get("volume").and_then(|v| v.as_f64());
                match volume {
                    Some(v) if (0.0..=1.0).contains(&v) => {
                        self.renderer.set_volume(v);
                        done
                    }
                    _ => Err("args.volume must be a number from 0.0 to 1.0".into()),
                }
            }
            "reboot" => {
                let Some((program, args)) = self.config.reboot_command.split_first() else {
                    return Err("reboot_command is empty in the configuration".into());
                };
                let mut reboot = tokio::process::Command::new(program);
                reboot.args(args);
                // Later, so that the response reaches the broker first.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if let Err(e) = reboot.status().await {
                        tracing::error!(error = %e, "running the reboot command");
                    }
                });
                done
            }
            "display_on" | "display_off" => {
                let on = command.action == "display_on";
                let planned = match &self.active {
                    Some(active) => active.schedule.plan(self.clock.floor()).display_on,
                    None => true,
                };
                self.display_override = Some((on, planned));
                self.replan();
                self.publish_status();
                done
            }
            other => Err(format!("action {other:?} is not supported by this player")),
        }
    }

    /// The effective assignment: the device's own, else the first of its
    /// groups (in config order) that has one.
    fn effective(&self) -> Option<&Assignment> {
        let device = format!("device:{}", self.config.device_id);
        self.assignments.get(&device).or_else(|| {
            self.config
                .groups
                .iter()
                .find_map(|g| self.assignments.get(&format!("group:{g}")))
        })
    }

    fn missing_assets(&self, assignment: &Assignment) -> BTreeMap<AssetId, AssetEntry> {
        assignment
            .required_assets()
            .filter(|(id, entry)| !self.cache.has(id, entry.size))
            .map(|(id, entry)| (id.clone(), entry.clone()))
            .collect()
    }

    /// Moves towards the effective assignment: plays it if complete,
    /// otherwise fetches what it lacks while the current one keeps playing.
    /// Shows the status screen when there is no assignment to play; kept
    /// up to date with the broker state.
    fn show_status_screen(&self) {
        if self.active.is_none() {
            self.renderer
                .show_status_screen(status_screen(&self.config, self.status.broker.clone()));
        }
    }

    /// The renderer's screenshots, for local diagnostics (`--screenshot-dir`).
    pub fn screenshots(&self) -> Screenshots {
        self.renderer.screenshots()
    }

    fn reconcile(&mut self) {
        let Some(wanted) = self.effective().cloned() else {
            self.status.pending_assignment = None;
            self.show_status_screen();
            return;
        };
        let is_active = self.active.as_ref().is_some_and(|a| {
            a.assignment.target == wanted.target && a.assignment.version == wanted.version
        });
        let missing = self.missing_assets(&wanted);
        // Never evicted: what plays, what is to play next, and so their
        // fallbacks, all of which are among their assets.
        let pins: BTreeSet<AssetId> = self
            .active
            .iter()
            .map(|a| &a.assignment)
            .chain([&wanted])
            .flat_map(|a| a.required_assets().map(|(id, _)| id.clone()))
            .collect();
        let subject = format!("{} version {}", wanted.target, wanted.version);
        let outcome = self.cache.want(&subject, missing.clone(), pins);
        for event in outcome.events {
            self.emit(event);
        }
        if missing.is_empty() && !is_active {
            self.activate(wanted);
        }
    }

    fn activate(&mut self, assignment: Assignment) {
        // Compiled when the assignment was verified, so this cannot fail.
        let schedule = match Schedule::compile(&assignment) {
            Ok(schedule) => schedule,
            Err(why) => return tracing::error!(%why, "an accepted assignment has a bad schedule"),
        };
        tracing::info!(target = %assignment.target, version = assignment.version, "activating");
        self.status.assignment = Some(AssignmentStatus {
            target: assignment.target.clone(),
            version: assignment.version,
            stale: false,
        });
        // The assignment's rotation, else the configured one.
        let rotation = assignment
            .display
            .as_ref()
            .and_then(|d| d.get("rotation")?.as_u64())
            .and_then(|degrees| Rotation::try_from(u16::try_from(degrees).ok()?).ok())
            .unwrap_or(self.config.display.rotation);
        self.renderer.set_rotation(rotation);
        self.active = Some(Active {
            assignment,
            schedule,
            playlist: None,
            items: Vec::new(),
        });
        self.replan();
    }

    /// Applies what the schedule says now, and sets the alarm for the next
    /// change. Called on activation, when the alarm rings (a window edge, or
    /// the system clock was set), and after anything that changes the plan.
    fn replan(&mut self) {
        let now = self.now();
        let mut wake = now
            .checked_add(jiff::SignedDuration::from_hours(24))
            .unwrap_or(now);
        let alert = self.shown_alert(now).cloned();
        if let Some(alert) = &alert {
            wake = wake.min(alert.expires_at);
        }
        // An alert with a cached asset plays it instead of the programme.
        let alert_item = alert.as_ref().and_then(|a| self.alert_item(a));
        let alert_version = alert.as_ref().map(|a| a.version);
        if alert_version != self.alert_on_screen {
            self.alert_on_screen = alert_version;
            // With its own asset on screen, the text goes in a banner over it.
            let banner = |a: &Alert| a.style == "banner" || alert_item.is_some();
            self.renderer.set_alert(alert.map(|a| AlertOverlay {
                style: if banner(&a) {
                    AlertStyle::Banner
                } else {
                    AlertStyle::Fullscreen
                },
                message: a.message,
            }));
        }
        if let Some(active) = &self.active {
            let plan = active.schedule.plan(now);
            let playing = active.playlist.clone();
            if let Some(next) = plan.next_change {
                wake = wake.min(next);
            }
            // A display_on/display_off command holds until the power
            // windows next change their mind.
            let display_on = match self.display_override {
                Some((forced, planned)) if planned == plan.display_on => forced,
                _ => {
                    self.display_override = None;
                    plan.display_on
                }
            };
            self.set_display(display_on);
            if let Some(item) = alert_item {
                if !self.alert_asset_playing {
                    self.interrupt_reason = Some("alert");
                    self.renderer.play(vec![item]);
                    self.alert_asset_playing = true;
                    self.status.playing = None;
                    if let Some(active) = &mut self.active {
                        // Played again from the start when the alert ends.
                        active.playlist = None;
                        active.items.clear();
                    }
                }
            } else if playing.as_deref() != Some(plan.playlist.as_str()) || self.alert_asset_playing
            {
                self.alert_asset_playing = false;
                let reason = if playing.is_none() {
                    "assignment"
                } else {
                    "schedule"
                };
                self.play_playlist(plan.playlist, reason);
            }
        }
        if let Err(e) = self.alarm.set(wake) {
            tracing::error!(error = %e, "setting the schedule alarm");
        }
    }

    /// The alert's asset as a renderer item, if the alert names one that is
    /// cached (its type and size come from an assignment that lists it).
    fn alert_item(&self, alert: &Alert) -> Option<PlayItem> {
        let id = alert.asset.as_ref()?;
        let entry = self.assignments.values().find_map(|a| a.assets.get(id))?;
        self.cache.has(id, entry.size).then(|| PlayItem {
            index: 0,
            path: self.cache.path(id),
            kind: if entry.is_image() {
                MediaKind::Image
            } else {
                MediaKind::Video
            },
            // Stills need a duration; the one-item playlist loops anyway.
            duration: entry.is_image().then_some(Duration::from_secs(60)),
        })
    }

    /// Turns the screen and the pipeline on or off (HDMI-CEC where the
    /// hardware has it; the pipeline goes to NULL either way).
    fn set_display(&mut self, on: bool) {
        let state = if on { "on" } else { "off" };
        if self.status.display == state {
            return;
        }
        tracing::info!(display = state, "screen power");
        if !on {
            self.interrupt_reason = Some("display_off");
        }
        self.renderer.set_display(on);
        power::set_screen_power(on);
        self.status.display = state;
        if !on {
            self.status.playing = None;
        }
    }

    /// Starts playing one playlist of the active assignment.
    fn play_playlist(&mut self, playlist: String, reason: &'static str) {
        self.interrupt_reason = Some(reason);
        let Some(active) = &self.active else { return };
        let assignment = &active.assignment;
        let mut items = Vec::new();
        let mut sources = Vec::new();
        for (position, item) in assignment.playlists[&playlist].iter().enumerate() {
            // Validation guarantees exactly one of asset and live.
            let (path, kind, source) = match (&item.asset, &item.live) {
                (Some(id), _) => (
                    self.cache.path(id),
                    if assignment.assets[id].is_image() {
                        MediaKind::Image
                    } else {
                        MediaKind::Video
                    },
                    ItemSource::Asset(id.clone()),
                ),
                (None, Some(uri)) => (
                    std::path::PathBuf::new(),
                    MediaKind::Live {
                        uri: uri.clone(),
                        fallback: item.fallback.as_ref().map(|id| self.cache.path(id)),
                    },
                    ItemSource::Live(uri.clone()),
                ),
                (None, None) => continue,
            };
            items.push(PlayItem {
                index: items.len(),
                path,
                kind,
                duration: item.duration_ms.map(Duration::from_millis),
            });
            sources.push((position, source));
        }
        tracing::info!(target = %assignment.target, version = assignment.version, %playlist, "playing");
        self.status.playing = None;
        self.status.live = None;
        if items.is_empty() {
            self.renderer.show_status_screen(StatusScreen {
                message: Some(format!("The playlist {playlist:?} is empty")),
                ..status_screen(&self.config, self.status.broker.clone())
            });
        } else {
            self.renderer.play(items);
        }
        if let Some(active) = &mut self.active {
            active.playlist = Some(playlist);
            active.items = sources;
        }
    }

    /// Reports what the cache did, and re-decides if its content changed.
    fn on_cache(&mut self, outcome: Outcome) {
        if outcome.events.is_empty() && !outcome.changed {
            return;
        }
        for event in outcome.events {
            self.emit(event);
        }
        if outcome.changed {
            self.reconcile();
        }
        self.publish_status();
    }

    /// The effective assignment while it waits for content: what it lacks.
    fn pending_status(&self) -> Option<PendingStatus> {
        let wanted = self.effective()?;
        let is_active = self.active.as_ref().is_some_and(|a| {
            a.assignment.target == wanted.target && a.assignment.version == wanted.version
        });
        let missing = self.missing_assets(wanted);
        (!missing.is_empty() && !is_active).then(|| PendingStatus {
            target: wanted.target.clone(),
            version: wanted.version,
            assets_missing: missing.len() as u64,
            bytes_missing: missing
                .iter()
                .map(|(id, e)| e.size.saturating_sub(self.cache.fetched(id)))
                .sum(),
        })
    }

    fn on_render(&mut self, event: RenderEvent) {
        let Some(active) = &self.active else { return };
        match event {
            RenderEvent::ItemStarted { index } => {
                let Some((position, source)) = active.items.get(index) else {
                    return;
                };
                let playlist = active.playlist.clone().unwrap_or_default();
                let play = OpenPlay {
                    playlist: playlist.clone(),
                    item: *position,
                    asset: source.asset(),
                    live: source.live(),
                    started_at: Timestamp::now(),
                };
                self.status.playing = Some(PlayingStatus {
                    playlist,
                    item: *position,
                    asset: source.asset(),
                    since: play.started_at,
                });
                // A live item says whether it shows its stream as soon as it
                // knows; until then it shows its fallback.
                self.status.live = match source.live() {
                    Some(uri) if self.status.live.as_ref().is_some_and(|l| l.uri == uri) => {
                        self.status.live.take()
                    }
                    Some(uri) => Some(LiveStatus {
                        uri,
                        state: LiveState::Fallback.as_str(),
                    }),
                    None => None,
                };
                self.close_play(false);
                match self.store.open_play(&play) {
                    Ok(seq) => self.on_screen = Some((index, seq)),
                    Err(e) => tracing::error!(error = %e, "recording proof of play"),
                }
                self.publish_status();
            }
            RenderEvent::ItemFailed { index, reason } => {
                let subject = active
                    .items
                    .get(index)
                    .map(|(_, source)| source.to_string());
                self.emit(Event {
                    at: Timestamp::now(),
                    kind: "play_failed",
                    reason: None,
                    detail: reason,
                    subject,
                });
                self.publish_status();
            }
            RenderEvent::LiveState { index, state } => {
                if let Some((_, ItemSource::Live(uri))) = active.items.get(index) {
                    self.status.live = Some(LiveStatus {
                        uri: uri.clone(),
                        state: state.as_str(),
                    });
                    self.publish_status();
                }
            }
            RenderEvent::ItemEnded { index, completed } => {
                if self.on_screen.is_some_and(|(shown, _)| shown == index) {
                    self.close_play(completed);
                }
            }
        }
    }

    /// Closes the proof-of-play record of the item on screen, if any, and
    /// sends what is ready.
    fn close_play(&mut self, completed: bool) {
        let Some((_, seq)) = self.on_screen.take() else {
            return;
        };
        let reason = if completed {
            None
        } else {
            Some(self.interrupt_reason.unwrap_or("interrupted"))
        };
        if let Err(e) = self
            .store
            .close_play(seq, Timestamp::now(), completed, reason)
        {
            tracing::error!(error = %e, "closing a proof-of-play record");
        }
        self.send_plays();
    }

    /// Publishes the oldest closed proof-of-play records, one batch at a
    /// time; they are deleted only once the broker acknowledged them.
    fn send_plays(&mut self) {
        if self.status.broker.is_none() || self.plays_in_flight.is_some() {
            return;
        }
        let batch = match self.store.closed_plays(PLAY_BATCH) {
            Ok(batch) => batch,
            Err(e) => return tracing::error!(error = %e, "reading proof of play"),
        };
        let Some(last) = batch.last().map(|r| r.seq) else {
            return;
        };
        let payload = serde_json::json!({"device": self.config.device_id, "records": batch});
        self.play_token += 1;
        let json = serde_json::to_vec(&payload).expect("records always serialise");
        self.link.publish_acked(
            self.topics.pop(&self.config.device_id),
            json,
            self.play_token,
        );
        self.plays_in_flight = Some((self.play_token, last));
    }

    fn reject(&mut self, subject: &str, rejection: &Rejection) {
        tracing::warn!(subject, reason = rejection.code(), %rejection, "document rejected");
        self.emit(Event {
            at: Timestamp::now(),
            kind: "rejected",
            reason: Some(rejection.code()),
            detail: rejection.to_string(),
            subject: Some(subject.to_string()),
        });
        self.publish_status();
    }

    fn emit(&mut self, event: Event) {
        let json = serde_json::to_vec(&event).expect("events always serialise");
        self.link
            .publish(self.topics.events(&self.config.device_id), json, false);
        if event.is_error() {
            self.status.record_error(event);
        }
    }

    fn publish_status(&mut self) {
        let now = self.now();
        self.save_time_floor();
        self.status.at = now;
        self.status.alert = self.shown_alert(now).map(|a| {
            serde_json::json!({"version": a.version, "style": a.style, "message": a.message, "expires_at": a.expires_at})
        });
        self.status.uptime_s = self.started.elapsed().as_secs();
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
            .publish(self.topics.status(&self.config.device_id), json, true);
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
