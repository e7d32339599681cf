//! What should be on screen: the effective assignment and its activation
//! once complete, the schedule and its alarm, alerts, and screen power.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use phare_protocol::report::{DisplayState, Interruption, PendingStatus};
use phare_protocol::{Alert, AssetEntry, AssetId, Assignment};

use super::{Active, Content, Core, Effect, Now, PLAN_HORIZON, Render};
use crate::cache::Outcome;
use crate::display::Rotation;
use crate::overlay::{AlertOverlay, AlertStyle};
use crate::trust::{PlaylistItem, VerifiedAssignment};

/// How long an alert's still shows before the renderer loops it (the
/// one-item playlist loops anyway; a still needs a duration).
const ALERT_STILL: Duration = Duration::from_secs(60);

impl<S: super::Storage> Core<S> {
    /// The effective assignment: the device's own, else the first of its
    /// groups (in config order) that has one.
    pub(super) fn effective(&self) -> Option<&VerifiedAssignment> {
        self.targets().find_map(|t| self.assignments.get(&t))
    }

    fn is_active(&self, wanted: &VerifiedAssignment) -> bool {
        self.active
            .as_ref()
            .is_some_and(|a| a.verified.key() == wanted.key())
    }

    /// Moves towards the effective assignment: plays it if complete,
    /// otherwise fetches what it lacks while the current one keeps playing.
    pub(super) fn reconcile(&mut self, now: Now, content: &impl Content) {
        let Some(wanted) = self.effective().cloned() else {
            return self.show_status_screen();
        };
        let missing = missing_assets(&wanted.assignment, content);
        if missing.is_empty() && !self.is_active(&wanted) {
            self.activate(wanted.clone(), now, content);
        }
        // Never evicted: what plays, what is to play next, and so their
        // fallbacks, all of which are among their assets. Computed after a
        // possible activation, so that what was replaced is no longer held.
        let pins: BTreeSet<AssetId> = self
            .active
            .iter()
            .map(|a| &a.verified.assignment)
            .chain([&wanted.assignment])
            .flat_map(|a| a.required_assets().map(|(id, _)| id.clone()))
            .collect();
        let subject = format!("{} version {}", wanted.target, wanted.assignment.version);
        self.effects.push(Effect::WantAssets {
            subject,
            missing,
            pins,
        });
    }

    fn activate(&mut self, verified: VerifiedAssignment, now: Now, content: &impl Content) {
        let assignment = &verified.assignment;
        tracing::info!(target = %verified.target, version = assignment.version, "activating");
        // The assignment's rotation, else the configured one.
        let rotation = assignment
            .display
            .as_ref()
            .and_then(|d| d.get("rotation")?.as_u64())
            .and_then(|degrees| Rotation::try_from(u16::try_from(degrees).ok()?).ok())
            .unwrap_or(self.settings.rotation);
        // Turning restarts the item on screen: the new assignment cut it.
        self.close_play(Some(Interruption::Assignment), now);
        self.effects
            .push(Effect::Render(Render::Rotation(rotation)));
        self.active = Some(Active {
            verified,
            playlist: None,
            items: Vec::new(),
        });
        self.replan(now, content);
    }

    /// Applies what the schedule says now, and sets the alarm for the next
    /// change. Called on activation, when the alarm rings (a window edge, or
    /// the system clock was set), and after anything that changes the plan.
    pub(super) fn replan(&mut self, now: Now, content: &impl Content) {
        let trusted = self.now(now);
        let mut wake = trusted.checked_add(PLAN_HORIZON).unwrap_or(trusted);
        let alert = self.shown_alert(trusted).cloned();
        if let Some(alert) = &alert {
            wake = wake.min(alert.expires_at);
        }
        // An alert with a cached asset plays it instead of the programme.
        let alert_item = alert.as_ref().and_then(|a| self.alert_item(a, content));
        let alert_shown = alert.as_ref().map(|a| (a.id.clone(), a.version));
        if alert_shown != self.screen.alert {
            self.screen.alert = alert_shown;
            // With its own asset on screen, the text goes in a banner over it.
            let banner = |a: &Alert| a.style == "banner" || alert_item.is_some();
            self.screen.alert_covers = alert.as_ref().is_some_and(|a| !banner(a));
            let overlay = alert.map(|a| AlertOverlay {
                style: if banner(&a) {
                    AlertStyle::Banner
                } else {
                    AlertStyle::Fullscreen
                },
                message: a.message,
            });
            self.effects.push(Effect::Render(Render::Alert(overlay)));
        }
        if self.screen.alert_covers {
            self.plays.hide_on_screen();
        }
        if let Some(active) = &self.active {
            let plan = active.verified.schedule.plan(trusted);
            let playing = active.playlist.clone();
            if let Some(next) = plan.next_change {
                wake = wake.min(next);
            }
            // A display_on/display_off command holds until the power
            // windows next change their mind.
            let display_on = match self.screen.override_ {
                Some(o) if o.planned == plan.display_on => o.on,
                _ => {
                    self.screen.override_ = None;
                    plan.display_on
                }
            };
            self.set_display(display_on, now);
            if let Some(item) = alert_item {
                // Another alert's asset replaces this one's.
                if self.screen.alert_asset.as_ref() != item.asset() {
                    self.screen.alert_asset = item.asset().cloned();
                    self.play(vec![item], Interruption::Alert, now);
                    if let Some(active) = &mut self.active {
                        // Played again from the start when the alert ends.
                        active.playlist = None;
                    }
                }
            } else if playing.as_deref() != Some(plan.playlist.as_str())
                || self.screen.alert_asset.is_some()
            {
                self.screen.alert_asset = None;
                let reason = if playing.is_none() {
                    Interruption::Assignment
                } else {
                    Interruption::Schedule
                };
                self.play_playlist(plan.playlist, reason, now);
            }
        }
        self.effects.push(Effect::SetAlarm(wake));
    }

    /// The alert to show now, if any: of the active, unexpired alerts
    /// addressed to us, the one of highest priority, then the newest.
    pub(super) fn shown_alert(&self, now: Timestamp) -> Option<&Alert> {
        let (device, groups) = (&self.settings.device_id, &self.settings.groups);
        self.alerts
            .values()
            .filter(|a| a.active && a.expires_at > now && a.concerns(device, groups))
            .max_by_key(|a| (a.priority, a.issued_at, a.version))
    }

    /// The alert's asset as an item, if the alert names one that is cached
    /// (its type and size come from an assignment that lists it).
    fn alert_item(&self, alert: &Alert, content: &impl Content) -> Option<PlaylistItem> {
        let id = alert.asset.as_ref()?;
        let entry = self
            .assignments
            .values()
            .find_map(|a| a.assignment.assets.get(id))?;
        content.has(id, entry.size).then(|| PlaylistItem::Asset {
            id: id.clone(),
            image: entry.is_image(),
            duration: entry.is_image().then_some(ALERT_STILL),
        })
    }

    /// Turns the screen and the pipeline on or off (HDMI-CEC where the
    /// hardware has it; the pipeline goes to NULL either way).
    fn set_display(&mut self, on: bool, now: Now) {
        let state = if on {
            DisplayState::On
        } else {
            DisplayState::Off
        };
        if self.screen.display == state {
            return;
        }
        tracing::info!(display = ?state, "screen power");
        if !on {
            self.close_play(Some(Interruption::DisplayOff), now);
            self.screen.playing = None;
        }
        self.effects.push(Effect::Render(Render::Display(on)));
        self.effects.push(Effect::ScreenPower(on));
        self.screen.display = state;
    }

    /// Starts playing one playlist of the active assignment.
    fn play_playlist(&mut self, playlist: String, reason: Interruption, now: Now) {
        let Some(active) = &self.active else { return };
        let verified = &active.verified;
        let items = verified
            .playlists
            .get(&playlist)
            .cloned()
            .unwrap_or_default();
        tracing::info!(target = %verified.target, version = verified.assignment.version,
                       %playlist, "playing");
        if items.is_empty() {
            self.close_play(Some(reason), now);
            self.screen.playing = None;
            self.screen.live = None;
            self.effects.push(Effect::Render(Render::StatusScreen {
                broker: self.broker.clone(),
                message: Some(format!("The playlist {playlist:?} is empty")),
            }));
        } else {
            self.play(items.clone(), reason, now);
        }
        if let Some(active) = &mut self.active {
            active.playlist = Some(playlist);
            active.items = items;
        }
    }

    /// Has the renderer play `items`, cutting what is on screen for
    /// `reason` (its record says so at once).
    fn play(&mut self, items: Vec<PlaylistItem>, reason: Interruption, now: Now) {
        self.close_play(Some(reason), now);
        self.screen.playing = None;
        self.screen.live = None;
        if let Some(active) = &mut self.active {
            // What plays now is not the programme's until play_playlist
            // says it is.
            active.items.clear();
        }
        self.effects
            .push(Effect::Render(Render::Play { items, reason }));
    }

    /// Reports what the cache did, and re-decides if its content changed.
    pub(super) fn on_cache(&mut self, outcome: Outcome, now: Now, content: &impl Content) {
        if outcome.events.is_empty() && !outcome.changed {
            return;
        }
        for event in outcome.events {
            self.emit(event);
        }
        if outcome.changed {
            self.reconcile(now, content);
        }
        self.publish_status(now);
    }

    /// The effective assignment while it waits for content: what it lacks.
    pub(super) fn pending_status(&self, content: &impl Content) -> Option<PendingStatus> {
        let wanted = self.effective()?;
        let missing = missing_assets(&wanted.assignment, content);
        (!missing.is_empty() && !self.is_active(wanted)).then(|| PendingStatus {
            target: wanted.target.to_string(),
            version: wanted.assignment.version,
            assets_missing: missing.len() as u64,
            bytes_missing: missing
                .iter()
                .map(|(id, e)| e.size.saturating_sub(content.fetched(id)))
                // Signed sizes: a hostile sum must not overflow.
                .fold(0, u64::saturating_add),
        })
    }
}

/// What of an assignment the cache lacks.
fn missing_assets(
    assignment: &Assignment,
    content: &impl Content,
) -> BTreeMap<AssetId, AssetEntry> {
    assignment
        .required_assets()
        .filter(|(id, entry)| !content.has(id, entry.size))
        .map(|(id, entry)| (id.clone(), entry.clone()))
        .collect()
}
