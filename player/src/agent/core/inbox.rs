//! Documents and commands arriving from the broker: each is routed by its
//! topic, verified (trust), made durable (storage), then acted upon, or
//! refused with a reason code in an event.

use phare_protocol::document::Action;
use phare_protocol::report::{CommandResponse, Event, EventKind};
use phare_protocol::{Envelope, Rejection, Target};

use super::{Content, Core, DisplayOverride, Effect, FLOOD_RESUBSCRIBE, Now, Render};
use crate::report::{Admission, ShortText};
use crate::trust::{ALERT_STREAMS, Verdict, alert_stream, assignment_stream};

/// Alerts held at once (each its own version stream): past this, the one
/// that ended longest ago is forgotten for a new one; if all are active,
/// the new one is refused.
pub(super) const MAX_ALERTS: usize = 64;

/// What a message is, by its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    /// `trust/root/<N>`.
    Root(u64),
    /// The assignment of this device or of one of its groups.
    Assignment(Target),
    /// `alert/<id>`: one alert's versions.
    Alert(String),
    /// This device's commands.
    Command,
    /// A collector's acknowledgement of proof of play (unsigned).
    PopAck,
}

impl<S: super::Storage> Core<S> {
    /// This device's assignment targets, in order of preference: its own,
    /// then its groups in config order.
    pub(super) fn targets(&self) -> impl Iterator<Item = Target> + '_ {
        std::iter::once(Target::Device(self.settings.device_id.clone())).chain(
            self.settings
                .groups
                .iter()
                .map(|group| Target::Group(group.clone())),
        )
    }

    pub(super) fn route(&self, topic: &str) -> Option<Route> {
        let (topics, device) = (&self.settings.topics, &self.settings.device_id);
        if topic == topics.pop_ack(device) {
            Some(Route::PopAck)
        } else if let Some(version) = topics.root_version(topic) {
            Some(Route::Root(version))
        } else if let Some(target) = self.targets().find(|t| topics.assignment(t) == topic) {
            Some(Route::Assignment(target))
        } else if let Some(id) = topics.alert_id(topic) {
            Some(Route::Alert(id.to_owned()))
        } else {
            (topic == topics.command(device)).then_some(Route::Command)
        }
    }

    pub(super) fn on_message(
        &mut self,
        topic: &str,
        payload: &[u8],
        now: Now,
        content: &impl Content,
    ) {
        // An empty retained message only clears the broker's copy; it is
        // unsigned, so it changes nothing here.
        if payload.is_empty() {
            return;
        }
        let route = self.route(topic);
        // The one message that is not a signed document.
        if route == Some(Route::PopAck) {
            return self.on_pop_ack(payload);
        }
        let envelope = match Envelope::from_slice(payload) {
            Ok(envelope) => envelope,
            Err(rejection) => return self.reject(topic, &rejection, now),
        };
        match route {
            Some(Route::Root(version)) => self.on_root(topic, version, envelope, now),
            Some(Route::Assignment(target)) => self.on_assignment(target, envelope, now, content),
            Some(Route::Alert(id)) => self.on_alert(id, envelope, now, content),
            Some(Route::Command) => self.on_command(envelope, now, content),
            Some(Route::PopAck) | None => {}
        }
    }

    /// Re-verifies the stored assignments and alerts (never trusted from
    /// disk).
    pub(super) fn load_stored(&mut self, now: Now) {
        let documents = match self.storage.publisher_documents() {
            Ok(documents) => documents,
            Err(e) => return tracing::error!(error = %e, "reading the stored documents"),
        };
        for target in self.targets().collect::<Vec<_>>() {
            let stream = assignment_stream(&target.to_string());
            let Some((_, stored)) = documents.iter().find(|(s, _)| *s == stream) else {
                continue;
            };
            match self.trust.reverify_stored(stored) {
                Ok(verified) => {
                    self.assignments.insert(target, verified);
                }
                Err(rejection) => self.reject(&target.to_string(), &rejection, now),
            }
        }
        for (stream, stored) in &documents {
            if !stream.starts_with(ALERT_STREAMS) {
                continue;
            }
            match self.trust.reverify_alert(stored) {
                Ok(alert) => {
                    self.alerts.insert(alert.id.clone(), alert);
                }
                Err(rejection) => self.reject(stream, &rejection, now),
            }
        }
    }

    fn on_root(&mut self, topic: &str, version: u64, envelope: Envelope, now: Now) {
        let update = self.trust.offer_root(version, envelope);
        for (version, envelope) in &update.accepted {
            if let Err(e) = self.storage.put_root(*version, envelope) {
                tracing::error!(error = %e, "storing an accepted root");
            }
            tracing::info!(version, "accepted a new root");
        }
        if !update.accepted.is_empty() {
            // A newer root supersedes the refused ones and an expired one.
            let roots = self.settings.topics.root_filter();
            let roots = roots.trim_end_matches('+');
            self.resolve_errors(|e| {
                e.kind == EventKind::RootExpired
                    || e.subject.as_deref().is_some_and(|s| s.starts_with(roots))
            });
        }
        if update.publisher_rotated {
            self.reset_orphaned_floors();
        }
        if let Some(rejection) = update.rejected {
            self.reject(topic, &rejection, now);
        }
    }

    /// After the publisher keys changed, resets the version floor of each
    /// stream whose stored document no longer verifies under the new root
    /// (its key was rotated away: a stolen key's fast-forward is undone).
    /// The others keep theirs, or an older document could be replayed.
    fn reset_orphaned_floors(&mut self) {
        let documents = match self.storage.publisher_documents() {
            Ok(documents) => documents,
            Err(e) => return tracing::error!(error = %e, "reading the version floors"),
        };
        for (stream, stored) in documents {
            let still_signed = if stream.starts_with(ALERT_STREAMS) {
                self.trust.reverify_alert(&stored).is_ok()
            } else {
                self.trust.reverify_stored(&stored).is_ok()
            };
            if still_signed {
                continue;
            }
            tracing::info!(
                stream,
                "its signer's key was rotated away: version floor reset"
            );
            if let Err(e) = self.storage.reset_floor(&stream) {
                tracing::error!(error = %e, stream, "resetting a version floor");
            }
        }
    }

    fn on_assignment(
        &mut self,
        target: Target,
        envelope: Envelope,
        now: Now,
        content: &impl Content,
    ) {
        let subject = target.to_string();
        let stream = assignment_stream(&subject);
        let floor = match self.storage.document(&stream) {
            Ok(floor) => floor,
            Err(e) => return tracing::error!(error = %e, "reading the version floor"),
        };
        let verified = match self
            .trust
            .verify_assignment(&envelope, floor.as_ref(), self.now(now))
        {
            Ok(Verdict::New(verified)) if verified.target == target => *verified,
            Ok(Verdict::New(verified)) => {
                let wrong = Rejection::WrongTarget(verified.target.to_string());
                return self.reject(&subject, &wrong, now);
            }
            Ok(Verdict::Known) => return,
            Err(rejection) => return self.reject(&subject, &rejection, now),
        };
        let assignment = &verified.assignment;
        if let Err(rejection) = self.clock.check_issued_at(assignment.issued_at, now.system) {
            return self.reject(&subject, &rejection, now);
        }
        if let Err(e) = self
            .storage
            .put_document(&stream, assignment.version, &envelope.to_json())
        {
            // Not durable, so not accepted: the retained copy comes back.
            return tracing::error!(error = %e, "storing an accepted assignment");
        }
        tracing::info!(
            target = subject,
            version = assignment.version,
            "accepted an assignment"
        );
        self.clock.observe_signed(assignment.issued_at);
        // What was refused or could not fit for this target is superseded.
        let topic = self.settings.topics.assignment(&target);
        self.resolve_errors(|e| {
            e.subject.as_deref().is_some_and(|s| {
                s == subject
                    || s == topic
                    || s.strip_prefix(subject.as_str())
                        .is_some_and(|v| v.starts_with(" version "))
            })
        });
        self.assignments.insert(target, verified);
        self.reconcile(now, content);
        self.publish_status(now);
    }

    /// One alert's new version, from its own topic: it replaces that
    /// alert's previous version only, never another alert.
    fn on_alert(&mut self, id: String, envelope: Envelope, now: Now, content: &impl Content) {
        let stream = alert_stream(&id);
        let floor = match self.storage.document(&stream) {
            Ok(floor) => floor,
            Err(e) => return tracing::error!(error = %e, "reading the alert floor"),
        };
        let alert = match self
            .trust
            .verify_alert(&envelope, floor.as_ref(), self.now(now))
        {
            // Published on another alert's topic, it would replace that one.
            Ok(Verdict::New(alert)) if alert.id != id => {
                let why = format!(
                    "alert {:?} published on the topic of alert {id:?}",
                    alert.id
                );
                return self.reject(&stream, &Rejection::Malformed(why), now);
            }
            Ok(Verdict::New(alert)) => *alert,
            Ok(Verdict::Known) => return,
            Err(rejection) => return self.reject(&stream, &rejection, now),
        };
        if let Err(rejection) = self.clock.check_issued_at(alert.issued_at, now.system) {
            return self.reject(&stream, &rejection, now);
        }
        if !self.alerts.contains_key(&id) && !self.make_room_for_an_alert(self.now(now)) {
            let why = format!("more than {MAX_ALERTS} alerts are still active");
            return self.reject(&stream, &Rejection::Malformed(why), now);
        }
        if let Err(e) = self
            .storage
            .put_document(&stream, alert.version, &envelope.to_json())
        {
            return tracing::error!(error = %e, "storing an accepted alert");
        }
        tracing::info!(
            id,
            version = alert.version,
            active = alert.active,
            priority = alert.priority,
            "accepted an alert"
        );
        self.clock.observe_signed(alert.issued_at);
        let topic = self.settings.topics.alert(&id);
        self.resolve_errors(|e| {
            e.subject
                .as_deref()
                .is_some_and(|s| s == stream || s == topic)
        });
        self.alerts.insert(id, alert);
        self.replan(now, content);
        self.publish_status(now);
    }

    /// Forgets the alert that ended longest ago (expired or cleared) when
    /// [`MAX_ALERTS`] are held; false if every one is still active.
    fn make_room_for_an_alert(&mut self, now: jiff::Timestamp) -> bool {
        if self.alerts.len() < MAX_ALERTS {
            return true;
        }
        let ended = self
            .alerts
            .values()
            .filter(|a| !a.active || a.expires_at <= now)
            // A cleared alert ended when its clearing was issued.
            .min_by_key(|a| {
                if a.active {
                    a.expires_at
                } else {
                    a.issued_at.min(a.expires_at)
                }
            })
            .map(|a| a.id.clone());
        let Some(id) = ended else { return false };
        // Its floor goes too: a replay of it can raise it again only until
        // the replayed version expires.
        if let Err(e) = self.storage.forget_document(&alert_stream(&id)) {
            tracing::error!(error = %e, "forgetting an ended alert");
            return false;
        }
        self.alerts.remove(&id);
        true
    }

    fn on_command(&mut self, envelope: Envelope, now: Now, content: &impl Content) {
        let subject = self.settings.topics.command(&self.settings.device_id);
        let trusted_now = self.now(now);
        let command = match self.trust.verify_command(&envelope, trusted_now) {
            Ok(command) => command,
            Err(rejection) => return self.reject(&subject, &rejection, now),
        };
        if let Err(rejection) = self.clock.check_issued_at(command.issued_at, now.system) {
            return self.reject(&subject, &rejection, now);
        }
        match self
            .storage
            .record_command(&command.id, command.expires_at, trusted_now)
        {
            Ok(true) => {}
            Ok(false) => return self.reject(&subject, &Rejection::Replay(command.id), now),
            // Unrecorded means it could run twice: refuse rather than risk it.
            Err(e) => return tracing::error!(error = %e, "recording a command id"),
        }
        self.clock.observe_signed(command.issued_at);
        let response = CommandResponse::to(&command.id, &command.action, trusted_now);
        match Action::of(&command) {
            Ok(action) => self.execute(action, response, now, content),
            Err(error) => self.answer(&response.failed(error)),
        }
    }

    /// Carries out a verified, first-seen command, and answers it (or has
    /// the shell carry it out and answer with [`super::Input::Finished`]).
    fn execute(
        &mut self,
        action: Action,
        response: CommandResponse,
        now: Now,
        content: &impl Content,
    ) {
        match action {
            Action::Screenshot { format } => {
                return self.effects.push(Effect::Screenshot { response, format });
            }
            Action::PurgeCache => return self.effects.push(Effect::PurgeCache { response }),
            Action::ReportNow => self.publish_status(now),
            Action::Reload => {
                // The programme again from its first item.
                if let Some(active) = &mut self.active {
                    active.playlist = None;
                }
                self.replan(now, content);
            }
            Action::SetVolume { volume } => {
                self.effects.push(Effect::Render(Render::Volume(volume)));
            }
            Action::Reboot if !self.settings.can_reboot => {
                return self
                    .answer(&response.failed("reboot_command is empty in the configuration"));
            }
            Action::Reboot => self.effects.push(Effect::Reboot),
            Action::DisplayOn | Action::DisplayOff => {
                let planned = match &self.active {
                    Some(active) => active.verified.schedule.plan(self.now(now)).display_on,
                    None => true,
                };
                self.screen.override_ = Some(DisplayOverride {
                    on: action == Action::DisplayOn,
                    planned,
                });
                self.replan(now, content);
                self.publish_status(now);
            }
        }
        self.answer(&response);
    }

    /// Reports a refused document (within the rejection budget: past it,
    /// refusals are only counted, and the next report says how many).
    pub(super) fn reject(&mut self, subject: &str, rejection: &Rejection, now: Now) {
        let suppressed = match self.rejections.admit(now.monotonic) {
            Admission::Report { suppressed } => suppressed,
            Admission::Suppress => {
                // A flood: a good document may be lost behind it.
                self.resubscribe_at
                    .get_or_insert(now.monotonic + FLOOD_RESUBSCRIBE);
                return;
            }
        };
        let mut detail = rejection.to_string();
        if suppressed > 0 {
            detail = format!("{suppressed} more rejections not reported; this one: {detail}");
        }
        let (detail, subject) = (ShortText::from(detail), ShortText::from(subject));
        tracing::warn!(%subject, reason = rejection.code(), %detail, "document rejected");
        self.emit(
            Event::new(now.system, EventKind::Rejected, detail)
                .with_reason(rejection.code())
                .with_subject(subject),
        );
        self.publish_status(now);
    }
}
