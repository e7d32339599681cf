//! The agent: the one owner of the device's moving state. It receives
//! events from the link (MQTT), the fetcher and the renderer, decides with
//! the pure modules (trust, protocol checks), and drives the rest.
//!
//! Invariant: the renderer only ever plays an assignment whose every asset
//! is on disk and verified; a newer one waits as `pending` meanwhile.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use phare_protocol::topics::Topics;
use phare_protocol::{Alert, AssetEntry, AssetId, Assignment, Command, Envelope, Rejection};
use tokio::sync::mpsc;

use crate::cache::{ContentStore, FetchEvent, Fetcher};
use crate::clock::TrustedClock;
use crate::config::Config;
use crate::link::{Link, LinkConfig, LinkEvent};
use crate::render::{MediaKind, PlayItem, RenderEvent, Renderer};
use crate::report::{self, AssignmentStatus, Event, PendingStatus, PlayingStatus, Status};
use crate::store::Store;
use crate::trust::{ALERT_STREAM, Identity, Trust, Verdict, assignment_stream};

/// What is on screen: the assignment and the playlist built from it.
struct Active {
    assignment: Assignment,
    playlist: String,
    /// For each renderer item, the playlist position and asset it came from.
    items: Vec<(usize, AssetId)>,
}

pub struct Agent {
    config: Config,
    topics: Topics,
    store: Store,
    trust: Trust,
    content: ContentStore,
    fetcher: Fetcher,
    renderer: Renderer,
    link: Link,
    status: Status,
    started: Instant,
    clock: TrustedClock,
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
        let content = ContentStore::open(&config.data_dir)?;
        let topics = config.topics();

        let (render_tx, render_events) = mpsc::unbounded_channel();
        let renderer = Renderer::start(config.video_sink, render_tx)?;
        let (fetch_tx, fetch_events) = mpsc::unbounded_channel();
        let origins = config
            .origins
            .iter()
            .filter_map(|o| reqwest::Url::parse(o).ok())
            .collect();
        let fetcher = Fetcher::spawn(content.clone(), origins, fetch_tx);

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
            content,
            fetcher,
            renderer,
            link,
            started: Instant::now(),
            floor_saved: clock.floor(),
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
            tokio::select! {
                _ = &mut shutdown => break,
                Some(event) = self.link_events.recv() => self.on_link(event),
                Some(event) = self.fetch_events.recv() => self.on_fetch(event),
                Some(event) = self.render_events.recv() => self.on_render(event),
                _ = tick.tick() => self.publish_status(),
            }
        }
        tracing::info!("shutting down");
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
                self.publish_status();
            }
            LinkEvent::Disconnected { .. } => {
                self.status.broker = None;
                self.publish_status();
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
        let response = serde_json::json!({
            "id": command.id,
            "ok": outcome.is_ok(),
            "error": outcome.err(),
            "action": command.action,
            "at": now,
        });
        let json = serde_json::to_vec(&response).expect("responses always serialise");
        self.link
            .publish(self.topics.response(&self.config.device_id), json, false);
    }

    /// Carries out a verified, first-seen command.
    fn execute(&mut self, command: &Command) -> Result<(), String> {
        match command.action.as_str() {
            "report_now" => {
                self.publish_status();
                Ok(())
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
            .filter(|(id, entry)| !self.content.has(id, entry.size))
            .map(|(id, entry)| (id.clone(), entry.clone()))
            .collect()
    }

    /// Moves towards the effective assignment: plays it if complete,
    /// otherwise fetches what it lacks while the current one keeps playing.
    fn reconcile(&mut self) {
        let Some(wanted) = self.effective().cloned() else {
            self.status.pending_assignment = None;
            return;
        };
        let is_active = self.active.as_ref().is_some_and(|a| {
            a.assignment.target == wanted.target && a.assignment.version == wanted.version
        });
        let missing = self.missing_assets(&wanted);
        self.status.pending_assignment =
            (!missing.is_empty() && !is_active).then(|| PendingStatus {
                target: wanted.target.clone(),
                version: wanted.version,
                assets_missing: missing.len() as u64,
                bytes_missing: missing.values().map(|e| e.size).sum(),
            });
        self.fetcher.want(missing.clone());
        if missing.is_empty() && !is_active {
            self.activate(wanted);
        }
    }

    fn activate(&mut self, assignment: Assignment) {
        // The schedule (time windows, priorities) is not interpreted yet:
        // the default playlist plays.
        let playlist = assignment.default_playlist.clone();
        let mut items = Vec::new();
        let mut sources = Vec::new();
        for (position, item) in assignment.playlists[&playlist].iter().enumerate() {
            let Some(id) = &item.asset else {
                tracing::warn!(position, "live items are not rendered yet; skipped");
                continue;
            };
            let entry = &assignment.assets[id];
            items.push(PlayItem {
                index: items.len(),
                path: self.content.path(id),
                kind: if entry.is_image() {
                    MediaKind::Image
                } else {
                    MediaKind::Video
                },
                duration: item.duration_ms.map(Duration::from_millis),
            });
            sources.push((position, id.clone()));
        }
        tracing::info!(target = %assignment.target, version = assignment.version, %playlist, "playing");
        self.status.assignment = Some(AssignmentStatus {
            target: assignment.target.clone(),
            version: assignment.version,
            stale: false,
        });
        self.status.playing = None;
        if items.is_empty() {
            self.renderer.stop();
        } else {
            self.renderer.play(items);
        }
        self.active = Some(Active {
            assignment,
            playlist,
            items: sources,
        });
    }

    fn on_fetch(&mut self, event: FetchEvent) {
        match event {
            FetchEvent::Ready { id, size } => {
                if let Err(e) = self.store.put_asset(&id, size) {
                    tracing::error!(error = %e, "recording a cached asset");
                }
                self.emit(Event {
                    at: Timestamp::now(),
                    kind: "downloaded",
                    reason: None,
                    detail: format!("{size} bytes"),
                    subject: Some(id.to_string()),
                });
                self.reconcile();
            }
            FetchEvent::Failed { id, reason } => self.emit(Event {
                at: Timestamp::now(),
                kind: "download_failed",
                reason: None,
                detail: reason,
                subject: Some(id.to_string()),
            }),
        }
        self.publish_status();
    }

    fn on_render(&mut self, event: RenderEvent) {
        let Some(active) = &self.active else { return };
        match event {
            RenderEvent::ItemStarted { index } => {
                let Some((position, asset)) = active.items.get(index) else {
                    return;
                };
                self.status.playing = Some(PlayingStatus {
                    playlist: active.playlist.clone(),
                    item: *position,
                    asset: Some(asset.to_string()),
                    since: Timestamp::now(),
                });
                self.publish_status();
            }
            RenderEvent::ItemFailed { index, reason } => {
                let subject = active.items.get(index).map(|(_, asset)| asset.to_string());
                self.emit(Event {
                    at: Timestamp::now(),
                    kind: "play_failed",
                    reason: None,
                    detail: reason,
                    subject,
                });
                self.publish_status();
            }
            RenderEvent::ItemEnded { .. } => {}
        }
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
        let (assets, bytes) = self.store.cache_totals().unwrap_or_default();
        self.status.cache = report::CacheStatus {
            assets,
            bytes,
            free_bytes: report::free_bytes(&self.config.data_dir),
        };
        let json = self.status.to_json();
        if let Err(e) = report::write_atomically(&self.config.data_dir.join("status.json"), &json) {
            tracing::error!(error = %e, "writing status.json");
        }
        self.link
            .publish(self.topics.status(&self.config.device_id), json, true);
    }
}
