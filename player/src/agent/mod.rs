//! The agent: the one owner of the device's moving state. Its decisions
//! are [`core`]'s, taken without I/O; this shell waits on the link (MQTT),
//! the cache's downloads, the renderer, the alarm and the timers, hands
//! each to the core as an [`Input`], and carries out the [`Effect`]s it
//! returns with the real store, outbox, link, cache and renderer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use phare_common::files::{Access, replace_file};
use phare_common::time::sleep_until_opt;
use phare_protocol::Envelope;
use phare_protocol::report::{CommandResponse, Status};
use phare_protocol::topics::Topics;
use tokio::sync::mpsc;

use self::core::{Content, Core, Effect, Input, Now, Render, Settings};
use crate::alarm::{Alarm, Ring};
use crate::cache::{Cache, FetchEvent, Outcome};
use crate::clock::TrustedClock;
use crate::config::Config;
use crate::link::{AckToken, Link, LinkConfig, LinkEvent};
use crate::outbox::Outbox;
use crate::power;
use crate::render::{
    MediaKind, PlayItem, RenderEvent, RenderSettings, Renderer, Screenshots, StatusScreen,
    ThumbnailFormat,
};
use crate::store::Store;
use crate::trust::{Identity, PlaylistItem, Trust};

mod core;
mod storage;

/// How long a reboot waits, so that its response reaches the broker first.
const REBOOT_DELAY: Duration = Duration::from_secs(2);

pub struct Agent {
    config: Config,
    topics: Topics,
    core: Core<Store>,
    cache: Cache,
    renderer: Renderer,
    link: Link,
    /// Events and command responses until a broker has them.
    outbox: Outbox,
    started: Instant,
    /// Wakes the agent at the next schedule change, or when the clock is set.
    alarm: Alarm,
    link_events: mpsc::Receiver<LinkEvent>,
    fetch_events: mpsc::UnboundedReceiver<FetchEvent>,
    render_events: mpsc::UnboundedReceiver<RenderEvent>,
    /// Command responses finished off the agent's task (screenshots).
    answers_tx: mpsc::UnboundedSender<CommandResponse>,
    answers: mpsc::UnboundedReceiver<CommandResponse>,
}

impl Content for Cache {
    fn has(&self, id: &phare_protocol::AssetId, size: u64) -> bool {
        Cache::has(self, id, size)
    }

    fn fetched(&self, id: &phare_protocol::AssetId) -> u64 {
        Cache::fetched(self, id)
    }
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
                    Status::offline_will(&config.device_id),
                ),
                auth: config.mqtt.clone(),
                primary_retry: Duration::from_secs(config.primary_retry_s),
            },
            link_tx,
        );

        let (answers_tx, answers) = mpsc::unbounded_channel();
        let settings = Settings {
            device_id: config.device_id.clone(),
            groups: config.groups.clone(),
            topics: topics.clone(),
            rotation: config.display.rotation,
            can_reboot: !config.reboot_command.is_empty(),
        };
        let mut agent = Agent {
            core: Core::new(settings, store, trust, clock),
            config,
            topics,
            cache,
            renderer,
            link,
            outbox,
            started: Instant::now(),
            alarm: Alarm::new().context("creating the schedule alarm")?,
            link_events,
            fetch_events,
            render_events,
            answers_tx,
            answers,
        };
        agent.step(Input::Start);
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
            let deadline = self.core.deadline().map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = &mut shutdown => break,
                Some(event) = self.link_events.recv() => self.on_link(event),
                Some(event) = self.fetch_events.recv() => {
                    let outcome = self.cache.on_event(event);
                    self.step(Input::Cache(outcome));
                }
                _ = sleep_until_opt(cache_wakeup) => {
                    let outcome = self.cache.on_timer();
                    self.step(Input::Cache(outcome));
                }
                Some(event) = self.render_events.recv() => self.step(Input::Render(event)),
                Some(response) = self.answers.recv() => self.step(Input::Finished(response)),
                ring = self.alarm.ring() => {
                    let clock_set = matches!(ring, Ok(Ring::ClockSet));
                    self.step(Input::Alarm { clock_set });
                }
                _ = sleep_until_opt(deadline) => self.step(Input::Deadline),
                _ = tick.tick() => self.step(Input::Tick),
                _ = heartbeat.tick() => heartbeat.beat(),
            }
        }
        self.step(Input::Shutdown);
        let last = (
            self.topics.status(&self.config.device_id),
            self.status(Now::read()).to_json(),
        );
        // Nobody reads the link's events any more: closing the queue keeps
        // the link from waiting on it instead of serving the shutdown.
        self.link_events.close();
        self.link.shutdown(Some(last)).await;
    }

    /// The renderer's screenshots, for local diagnostics (`--screenshot-dir`).
    pub fn screenshots(&self) -> Screenshots {
        self.renderer.screenshots()
    }

    /// Hands `input` to the core and carries out what it decides, then
    /// what those effects bring back (a cache purge's answer, the events
    /// of a wanted set), in order.
    fn step(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let now = Now::read();
            for effect in self.core.handle(input, now, &self.cache) {
                inputs.extend(self.carry_out(effect, now));
            }
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Connected { broker } => {
                self.outbox.connection_lost();
                self.step(Input::Connected { broker });
                self.send_outbox();
            }
            LinkEvent::Disconnected { .. } => {
                // Unacknowledged messages stay stored and go again on the
                // next connection.
                self.outbox.connection_lost();
                self.step(Input::Disconnected);
            }
            LinkEvent::Unreachable { broker, reason } => {
                self.step(Input::Unreachable { broker, reason })
            }
            LinkEvent::Acked {
                token: AckToken::Outbox(seq),
            } => {
                if let Err(e) = self.outbox.acked(seq) {
                    tracing::error!(error = %e, "forgetting a delivered message");
                }
                self.send_outbox();
            }
            LinkEvent::Acked {
                token: AckToken::Plays(batch),
            } => self.step(Input::PlaysAcked(batch)),
            LinkEvent::Message { topic, payload } => self.step(Input::Message { topic, payload }),
        }
    }

    /// Carries out one effect; returns what the core must learn from it.
    fn carry_out(&mut self, effect: Effect, now: Now) -> Option<Input> {
        match effect {
            Effect::PublishStatus => {
                let json = self.status(now).to_json();
                let path = self.config.data_dir.join("status.json");
                if let Err(e) = replace_file(&path, &json, Access::Public) {
                    tracing::error!(error = format!("{e:#}"), "writing status.json");
                }
                self.link
                    .publish_retained(self.topics.status(&self.config.device_id), json);
            }
            Effect::Queue {
                topic,
                payload,
                importance,
            } => {
                // Stored, it would be sent first again on every connection
                // and fail each one: never queued.
                if !crate::link::fits_in_packet(&topic, &payload) {
                    tracing::error!(
                        topic,
                        bytes = payload.len(),
                        "message over the packet cap dropped"
                    );
                    return None;
                }
                if let Err(e) = self.outbox.push(&topic, &payload, importance) {
                    tracing::error!(error = %e, topic, "queueing a message");
                }
                self.send_outbox();
            }
            Effect::PublishPlays {
                topic,
                payload,
                batch,
            } => self
                .link
                .publish_acked(topic, payload, AckToken::Plays(batch)),
            Effect::Render(render) => self.render(render),
            Effect::ScreenPower(on) => power::set_screen_power(on),
            Effect::WantAssets {
                subject,
                missing,
                pins,
            } => {
                let outcome = self.cache.want(&subject, missing, pins);
                // What it evicted was neither playing nor to play: there
                // is nothing to decide again, only events to report.
                return (!outcome.events.is_empty()).then_some(Input::Cache(Outcome {
                    changed: false,
                    ..outcome
                }));
            }
            Effect::SetAlarm(at) => {
                if let Err(e) = self.alarm.set(at) {
                    tracing::error!(error = %e, "setting the schedule alarm");
                }
            }
            Effect::Resubscribe => self.link.resubscribe(),
            Effect::Screenshot { response, format } => self.screenshot_later(response, format),
            Effect::PurgeCache { mut response } => {
                let (files, bytes) = self.cache.purge();
                response.purged_files = Some(files);
                response.purged_bytes = Some(bytes);
                return Some(Input::Finished(response));
            }
            Effect::Reboot => self.reboot_later(),
        }
        None
    }

    fn render(&mut self, render: Render) {
        match render {
            Render::Play { items, reason } => {
                tracing::debug!(reason = reason.as_str(), "what was on screen is cut short");
                let items = items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| self.play_item(index, item))
                    .collect();
                self.renderer.play(items);
            }
            Render::StatusScreen { broker, message } => {
                self.renderer.show_status_screen(StatusScreen {
                    message,
                    ..status_screen(&self.config, broker)
                })
            }
            Render::Alert(overlay) => self.renderer.set_alert(overlay),
            Render::Display(on) => self.renderer.set_display(on),
            Render::Rotation(rotation) => self.renderer.set_rotation(rotation),
            Render::Volume(volume) => self.renderer.set_volume(volume),
            Render::Stop => self.renderer.stop(),
        }
    }

    /// A verified item as the renderer plays it: its files in the cache.
    fn play_item(&self, index: usize, item: PlaylistItem) -> PlayItem {
        match item {
            PlaylistItem::Asset {
                id,
                image,
                duration,
            } => PlayItem {
                index,
                path: self.cache.path(&id),
                kind: if image {
                    MediaKind::Image
                } else {
                    MediaKind::Video
                },
                duration,
            },
            PlaylistItem::Live {
                uri,
                fallback,
                duration,
            } => PlayItem {
                index,
                path: std::path::PathBuf::new(),
                kind: MediaKind::Live {
                    uri,
                    fallback: fallback.map(|id| self.cache.path(&id)),
                },
                duration,
            },
        }
    }

    /// The status now: the core's view, with the cache's figures.
    fn status(&self, now: Now) -> Status {
        let uptime_s = self.started.elapsed().as_secs();
        self.core
            .status(now, self.cache.figures(), uptime_s, &self.cache)
    }

    /// Sends what the outbox holds, while connected and its window has room.
    fn send_outbox(&mut self) {
        if !self.core.connected() {
            return;
        }
        match self.outbox.next_batch() {
            Ok(batch) => {
                for message in batch {
                    let token = AckToken::Outbox(message.seq);
                    self.link
                        .publish_acked(message.topic, message.payload, token);
                }
            }
            Err(e) => tracing::error!(error = %e, "reading the outbox"),
        }
    }

    /// Encodes the thumbnail off the agent's task (it takes a fraction of a
    /// second) and answers when it is done.
    fn screenshot_later(
        &self,
        mut response: CommandResponse,
        format: phare_protocol::document::ImageFormat,
    ) {
        let format = match format {
            phare_protocol::document::ImageFormat::Png => ThumbnailFormat::Png,
            phare_protocol::document::ImageFormat::Jpeg => ThumbnailFormat::Jpeg,
        };
        let screenshots = self.renderer.screenshots();
        let answers = self.answers_tx.clone();
        tokio::task::spawn_blocking(move || {
            use base64::Engine;
            match screenshots.thumbnail(format) {
                Ok(image) => {
                    response.media_type = Some(format.media_type().to_string());
                    response.image = Some(base64::engine::general_purpose::STANDARD.encode(image));
                }
                Err(e) => response = response.failed(e.to_string()),
            }
            let _ = answers.send(response);
        });
    }

    /// Runs the configured reboot command, later, so that the response
    /// reaches the broker first.
    fn reboot_later(&self) {
        let Some((program, args)) = self.config.reboot_command.split_first() else {
            return;
        };
        let mut reboot = tokio::process::Command::new(program);
        reboot.args(args);
        tokio::spawn(async move {
            tokio::time::sleep(REBOOT_DELAY).await;
            if let Err(e) = reboot.status().await {
                tracing::error!(error = %e, "running the reboot command");
            }
        });
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
