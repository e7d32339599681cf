//! What should be on screen: the effective assignment and its activation
//! once complete, the schedule and its alarm, alerts, and screen power.

use super::*;

impl Agent {
    /// The effective assignment: the device's own, else the first of its
    /// groups (in config order) that has one.
    pub(super) fn effective(&self) -> Option<&Assignment> {
        let device = format!("device:{}", self.config.device_id);
        self.assignments.get(&device).or_else(|| {
            self.config
                .groups
                .iter()
                .find_map(|g| self.assignments.get(&format!("group:{g}")))
        })
    }

    pub(super) fn missing_assets(&self, assignment: &Assignment) -> BTreeMap<AssetId, AssetEntry> {
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
    pub(super) fn show_status_screen(&self) {
        if self.active.is_none() {
            self.renderer
                .show_status_screen(status_screen(&self.config, self.status.broker.clone()));
        }
    }

    pub(super) fn reconcile(&mut self) {
        let Some(wanted) = self.effective().cloned() else {
            self.status.pending_assignment = None;
            self.show_status_screen();
            return;
        };
        let is_active = self.active.as_ref().is_some_and(|a| {
            a.assignment.target == wanted.target && a.assignment.version == wanted.version
        });
        let missing = self.missing_assets(&wanted);
        if missing.is_empty() && !is_active {
            self.activate(wanted.clone());
        }
        // Never evicted: what plays, what is to play next, and so their
        // fallbacks, all of which are among their assets. Computed after a
        // possible activation, so that what was replaced is no longer held.
        let pins: BTreeSet<AssetId> = self
            .active
            .iter()
            .map(|a| &a.assignment)
            .chain([&wanted])
            .flat_map(|a| a.required_assets().map(|(id, _)| id.clone()))
            .collect();
        let subject = format!("{} version {}", wanted.target, wanted.version);
        let outcome = self.cache.want(&subject, missing, pins);
        for event in outcome.events {
            self.emit(event);
        }
    }

    pub(super) fn activate(&mut self, assignment: Assignment) {
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
    pub(super) fn replan(&mut self) {
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
        let alert_shown = alert.as_ref().map(|a| (a.id.clone(), a.version));
        if alert_shown != self.alert_on_screen {
            self.alert_on_screen = alert_shown;
            // With its own asset on screen, the text goes in a banner over it.
            let banner = |a: &Alert| a.style == "banner" || alert_item.is_some();
            self.alert_covers_programme = alert.as_ref().is_some_and(|a| !banner(a));
            self.renderer.set_alert(alert.map(|a| AlertOverlay {
                style: if banner(&a) {
                    AlertStyle::Banner
                } else {
                    AlertStyle::Fullscreen
                },
                message: a.message,
            }));
        }
        if self.alert_covers_programme
            && let Some(shown) = &mut self.on_screen
        {
            shown.hidden = true;
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
                // Another alert's asset replaces this one's.
                if self.alert_asset_playing.as_ref() != Some(&item.path) {
                    self.interrupt_reason = Some(Interruption::Alert);
                    self.alert_asset_playing = Some(item.path.clone());
                    self.renderer.play(vec![item]);
                    self.status.playing = None;
                    if let Some(active) = &mut self.active {
                        // Played again from the start when the alert ends.
                        active.playlist = None;
                        active.items.clear();
                    }
                }
            } else if playing.as_deref() != Some(plan.playlist.as_str())
                || self.alert_asset_playing.is_some()
            {
                self.alert_asset_playing = None;
                let reason = if playing.is_none() {
                    Interruption::Assignment
                } else {
                    Interruption::Schedule
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
    pub(super) fn alert_item(&self, alert: &Alert) -> Option<PlayItem> {
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
    pub(super) fn set_display(&mut self, on: bool) {
        let state = if on {
            DisplayState::On
        } else {
            DisplayState::Off
        };
        if self.status.display == state {
            return;
        }
        tracing::info!(display = ?state, "screen power");
        if !on {
            self.interrupt_reason = Some(Interruption::DisplayOff);
        }
        self.renderer.set_display(on);
        power::set_screen_power(on);
        self.status.display = state;
        if !on {
            self.status.playing = None;
        }
    }

    /// Starts playing one playlist of the active assignment.
    pub(super) fn play_playlist(&mut self, playlist: String, reason: Interruption) {
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
    pub(super) fn on_cache(&mut self, outcome: Outcome) {
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
    pub(super) fn pending_status(&self) -> Option<PendingStatus> {
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
                // Signed sizes: a hostile sum must not overflow.
                .fold(0, u64::saturating_add),
        })
    }
}
