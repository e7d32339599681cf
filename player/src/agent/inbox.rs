//! Documents and commands arriving from the broker: each is verified
//! (trust), made durable (store), then acted upon, or refused with a reason
//! code in an event.

use super::*;

impl Agent {
    pub(super) fn on_message(&mut self, topic: &str, payload: &[u8]) {
        // An empty retained message only clears the broker's copy; it is
        // unsigned, so it changes nothing here.
        if payload.is_empty() {
            return;
        }
        // The one message that is not a signed document.
        if topic == self.topics.pop_ack(&self.config.device_id) {
            return self.on_pop_ack(payload);
        }
        let envelope = match Envelope::from_slice(payload) {
            Ok(envelope) => envelope,
            Err(rejection) => return self.reject(topic, &rejection),
        };
        if let Some(version) = self.topics.root_version(topic) {
            self.on_root(topic, version, envelope);
        } else if let Some(target) = self.target_of(topic) {
            self.on_assignment(&target, envelope);
        } else if let Some(id) = self.topics.alert_id(topic) {
            self.on_alert(id.to_owned(), envelope);
        } else if topic == self.topics.command(&self.config.device_id) {
            self.on_command(envelope);
        }
    }

    /// The assignment target an assignment topic stands for.
    pub(super) fn target_of(&self, topic: &str) -> Option<String> {
        let device = format!("device:{}", self.config.device_id);
        let mut targets =
            std::iter::once(device).chain(self.config.groups.iter().map(|g| format!("group:{g}")));
        targets.find(|t| self.topics.assignment_for_target(t).as_deref() == Some(topic))
    }

    pub(super) fn on_root(&mut self, topic: &str, version: u64, envelope: Envelope) {
        let update = self.trust.offer_root(version, envelope);
        for (version, envelope) in &update.accepted {
            if let Err(e) = self.store.put_root(*version, envelope) {
                tracing::error!(error = %e, "storing an accepted root");
            }
            tracing::info!(version, "accepted a new root");
        }
        if !update.accepted.is_empty() {
            // A newer root supersedes the refused ones and an expired one.
            let roots = self.topics.root_filter();
            let roots = roots.trim_end_matches('+');
            self.status.resolve_errors(|e| {
                e.kind == EventKind::RootExpired
                    || e.subject.as_deref().is_some_and(|s| s.starts_with(roots))
            });
        }
        if update.publisher_rotated {
            self.reset_orphaned_floors();
        }
        if let Some(rejection) = update.rejected {
            self.reject(topic, &rejection);
        }
    }

    /// After the publisher keys changed, resets the version floor of each
    /// stream whose stored document no longer verifies under the new root
    /// (its key was rotated away: a stolen key's fast-forward is undone).
    /// The others keep theirs, or an older document could be replayed.
    fn reset_orphaned_floors(&mut self) {
        let documents = match self.store.publisher_documents() {
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
            if let Err(e) = self.store.reset_floor(&stream) {
                tracing::error!(error = %e, stream, "resetting a version floor");
            }
        }
    }

    pub(super) fn on_assignment(&mut self, target: &str, envelope: Envelope) {
        let stream = assignment_stream(target);
        let floor = match self.store.document(&stream) {
            Ok(floor) => floor,
            Err(e) => return tracing::error!(error = %e, "reading the version floor"),
        };
        let assignment = match self
            .trust
            .verify_assignment(&envelope, floor.as_ref(), self.now())
        {
            Ok(Verdict::New(assignment)) if assignment.target == target => *assignment,
            Ok(Verdict::New(assignment)) => {
                return self.reject(target, &Rejection::WrongTarget(assignment.target));
            }
            Ok(Verdict::Known) => return,
            Err(rejection) => return self.reject(target, &rejection),
        };
        if let Err(rejection) = self.check_issued_at(assignment.issued_at) {
            return self.reject(target, &rejection);
        }
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
        // What was refused or could not fit for this target is superseded.
        let topic = self.topics.assignment_for_target(target);
        self.status.resolve_errors(|e| {
            e.subject.as_deref().is_some_and(|s| {
                s == target
                    || Some(s) == topic.as_deref()
                    || s.strip_prefix(target)
                        .is_some_and(|v| v.starts_with(" version "))
            })
        });
        self.assignments.insert(target.to_string(), assignment);
        self.reconcile();
        self.publish_status();
    }

    /// One alert's new version, from its own topic: it replaces that
    /// alert's previous version only, never another alert.
    pub(super) fn on_alert(&mut self, id: String, envelope: Envelope) {
        let stream = alert_stream(&id);
        let floor = match self.store.document(&stream) {
            Ok(floor) => floor,
            Err(e) => return tracing::error!(error = %e, "reading the alert floor"),
        };
        let now = self.now();
        let alert = match self.trust.verify_alert(&envelope, floor.as_ref(), now) {
            // Published on another alert's topic, it would replace that one.
            Ok(Verdict::New(alert)) if alert.id != id => {
                let why = format!(
                    "alert {:?} published on the topic of alert {id:?}",
                    alert.id
                );
                return self.reject(&stream, &Rejection::Malformed(why));
            }
            Ok(Verdict::New(alert)) => *alert,
            Ok(Verdict::Known) => return,
            Err(rejection) => return self.reject(&stream, &rejection),
        };
        if let Err(rejection) = self.check_issued_at(alert.issued_at) {
            return self.reject(&stream, &rejection);
        }
        if !self.alerts.contains_key(&id) && !self.make_room_for_an_alert(now) {
            let why = format!("more than {MAX_ALERTS} alerts are still active");
            return self.reject(&stream, &Rejection::Malformed(why));
        }
        if let Err(e) = self
            .store
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
        let topic = self.topics.alert(&id);
        self.status.resolve_errors(|e| {
            e.subject
                .as_deref()
                .is_some_and(|s| s == stream || s == topic)
        });
        self.alerts.insert(id, alert);
        self.replan();
        self.publish_status();
    }

    /// Forgets the alert that ended longest ago (expired or cleared) when
    /// [`MAX_ALERTS`] are held; false if every one is still active.
    fn make_room_for_an_alert(&mut self, now: Timestamp) -> bool {
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
        if let Err(e) = self.store.forget_document(&alert_stream(&id)) {
            tracing::error!(error = %e, "forgetting an ended alert");
            return false;
        }
        self.alerts.remove(&id);
        true
    }

    /// A signed time far ahead of ours would raise the durable time floor
    /// into the future: refused before the document is stored.
    fn check_issued_at(&self, issued_at: Timestamp) -> Result<(), Rejection> {
        self.clock.check_issued_at(issued_at, Timestamp::now())
    }

    /// The alert to show now, if any: of the active, unexpired alerts
    /// addressed to us, the one of highest priority, then the newest.
    pub(super) fn shown_alert(&self, now: Timestamp) -> Option<&Alert> {
        self.alerts
            .values()
            .filter(|a| {
                a.active
                    && a.expires_at > now
                    && a.concerns(&self.config.device_id, &self.config.groups)
            })
            .max_by_key(|a| (a.priority, a.issued_at, a.version))
    }

    pub(super) fn on_command(&mut self, envelope: Envelope) {
        let now = self.now();
        let subject = self.topics.command(&self.config.device_id);
        let command = match self.trust.verify_command(&envelope, now) {
            Ok(command) => command,
            Err(rejection) => return self.reject(&subject, &rejection),
        };
        if let Err(rejection) = self.check_issued_at(command.issued_at) {
            return self.reject(&subject, &rejection);
        }
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
        let mut response = CommandResponse::to(&command.id, &command.action, now);
        if command.action == "screenshot" {
            return self.screenshot_later(&command, response);
        }
        if let Err(error) = self.execute(&command, &mut response) {
            response = response.failed(error);
        }
        self.send_response(&response);
    }

    /// Sends a command's response through the outbox.
    pub(super) fn send_response(&mut self, response: &CommandResponse) {
        let json = serde_json::to_vec(response).expect("responses always serialise");
        let topic = self.topics.response(&self.config.device_id);
        self.queue(&topic, &json, Importance::Error);
    }

    /// Encodes the thumbnail off the agent's task (it takes a fraction of a
    /// second) and answers when it is done. `args.format`: `png` (default)
    /// or `jpeg`.
    fn screenshot_later(&mut self, command: &Command, mut response: CommandResponse) {
        let format = match command.args.get("format").and_then(|f| f.as_str()) {
            None | Some("png") => ThumbnailFormat::Png,
            Some("jpeg") => ThumbnailFormat::Jpeg,
            Some(other) => {
                let response = response.failed(format!("args.format {other:?}: png or jpeg"));
                return self.send_response(&response);
            }
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

    /// Carries out a verified, first-seen command, adding what it did to
    /// `response`.
    pub(super) fn execute(
        &mut self,
        command: &Command,
        response: &mut CommandResponse,
    ) -> Result<(), String> {
        let done = Ok(());
        match command.action.as_str() {
            "report_now" => {
                self.publish_status();
                done
            }
            "purge_cache" => {
                let (files, bytes) = self.cache.purge();
                self.publish_status();
                response.purged_files = Some(files);
                response.purged_bytes = Some(bytes);
                done
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
                    Some(v) if phare_protocol::document::VOLUME.contains(&v) => {
                        self.renderer.set_volume(v);
                        done
                    }
                    _ => Err("args.volume must be a number from 0.0 to 4.0".into()),
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
                    Some(active) => active.schedule.plan(self.now()).display_on,
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

    /// Reports a refused document (within the rejection budget: past it,
    /// refusals are only counted, and the next report says how many).
    pub(super) fn reject(&mut self, subject: &str, rejection: &Rejection) {
        let suppressed = match self.rejections.admit(Instant::now()) {
            Admission::Report { suppressed } => suppressed,
            Admission::Suppress => {
                // A flood: a good document may be lost behind it.
                self.resubscribe_at
                    .get_or_insert_with(|| tokio::time::Instant::now() + FLOOD_RESUBSCRIBE);
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
            Event::new(Timestamp::now(), EventKind::Rejected, detail)
                .with_reason(rejection.code())
                .with_subject(subject),
        );
        self.publish_status();
    }
}
