//! `phare device <action>`: one signed command to one screen, and its
//! answer (docs/protocol.md §9).
//!
//! The exchange: subscribe to the device's status and response topics;
//! read its retained status (an offline screen is reported, not waited
//! for); sign the command with the keyring's operator keys (short-lived,
//! a fresh id); publish it, not retained; wait for the response bearing
//! that id. Subscribing first means the answer cannot slip past.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::{SignedDuration, Timestamp};
use phare_common::files::{Access, write_atomic};
use phare_common::mqtt::disconnect;
use phare_protocol::document::Action;
use phare_protocol::report::{CommandResponse, Status};
use phare_protocol::topics::Topics;
use ring::rand::{SecureRandom, SystemRandom};
use rumqttc::{Event, Packet, QoS, SubscribeReasonCode};
use serde_json::json;

use crate::connect::Endpoint;
use crate::keys::Keyring;

/// How long a command stays valid: long enough to cross a slow broker,
/// short enough that a captured one is soon useless.
const LIFETIME: SignedDuration = SignedDuration::from_mins(5);
/// How long the retained status may take to arrive after the subscription.
const STATUS_WAIT: Duration = Duration::from_secs(1);

/// One command to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub device: String,
    pub action: Action,
}

/// Sends `request` through `broker` and returns the device's response
/// (whether `ok` or not). Fails if the device is offline, never reported,
/// or does not answer within `timeout`. `waiting` is called now and then
/// while the answer is awaited, with the time spent.
pub async fn send(
    broker: &Endpoint,
    topics: &Topics,
    keyring: &Keyring,
    request: &Request,
    timeout: Duration,
    mut waiting: impl FnMut(Duration),
) -> anyhow::Result<CommandResponse> {
    let device = &request.device;
    let (client, mut eventloop) = broker.connect(broker.options("command")?).await?;
    let (status_topic, response_topic) = (topics.status(device), topics.response(device));
    for topic in [&status_topic, &response_topic] {
        client.subscribe(topic, QoS::AtLeastOnce).await?;
    }

    let started = Instant::now();
    let mut acks = 0;
    let mut status: Option<Status> = None;
    let mut command_id: Option<String> = None;
    let mut next_notice = Duration::from_secs(3);
    loop {
        // Phases: subscriptions confirmed, then the retained status (up to
        // STATUS_WAIT), then the answer.
        let deadline = match &command_id {
            None if acks < 2 => Duration::from_secs(10),
            None => STATUS_WAIT,
            Some(_) => next_notice.min(timeout).saturating_sub(started.elapsed()),
        };
        let event = match tokio::time::timeout(deadline, eventloop.poll()).await {
            Ok(event) => event.map_err(|e| broker.explain(e))?,
            Err(_) => match &command_id {
                None if acks < 2 => bail!(
                    "{} did not confirm the subscriptions within 10 s",
                    broker.url
                ),
                None => {
                    check_online(device, status.as_ref())?;
                    command_id = Some(publish_command(&client, topics, keyring, request).await?);
                    continue;
                }
                Some(_) if started.elapsed() >= timeout => {
                    bail!(no_answer(device, timeout, status.as_ref()))
                }
                Some(_) => {
                    waiting(started.elapsed());
                    next_notice += Duration::from_secs(10);
                    continue;
                }
            },
        };
        match event {
            Event::Incoming(Packet::SubAck(ack)) => {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    bail!(
                        "{} refused to let us watch {device}: not authorised",
                        broker.url
                    );
                }
                acks += 1;
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == status_topic => {
                status = serde_json::from_slice(&p.payload).ok();
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == response_topic => {
                let Ok(response) = serde_json::from_slice::<CommandResponse>(&p.payload) else {
                    continue;
                };
                if command_id.as_deref() == Some(response.id.as_str()) {
                    disconnect(&client, &mut eventloop).await;
                    return Ok(response);
                }
            }
            _ => {}
        }
        if command_id.is_none() && acks == 2 && status.is_some() {
            // The retained status is here: no need to wait any longer.
            check_online(device, status.as_ref())?;
            command_id = Some(publish_command(&client, topics, keyring, request).await?);
        }
    }
}

/// Refuses to command a screen that its retained status says is away.
fn check_online(device: &str, status: Option<&Status>) -> anyhow::Result<()> {
    match status {
        None => bail!(
            "{device} never reported (no retained status): is it enrolled and connected to this broker?"
        ),
        Some(status) if !status.online => bail!(
            "{device} is offline (last seen {})",
            seen(status, "at an unknown time")
        ),
        Some(_) => Ok(()),
    }
}

/// When a status was written, or `unknown` (the Last Will says no time).
fn seen(status: &Status, unknown: &str) -> String {
    status
        .at
        .map_or_else(|| unknown.to_string(), |at| at.to_string())
}

fn no_answer(device: &str, timeout: Duration, status: Option<&Status>) -> String {
    let mut message = format!("{device} did not answer within {} s", timeout.as_secs());
    if let Some(status) = status.filter(|s| !s.online) {
        message.push_str(&format!(
            " (it went offline at {})",
            seen(status, "an unknown time")
        ));
    }
    message
}

/// Signs and publishes the command; returns its id.
async fn publish_command(
    client: &rumqttc::AsyncClient,
    topics: &Topics,
    keyring: &Keyring,
    request: &Request,
) -> anyhow::Result<String> {
    let id = new_id()?;
    let now = Timestamp::now();
    let command = json!({
        "kind": "command", "fleet": keyring.root().fleet, "device": request.device, "id": id,
        "issued_at": now, "expires_at": now.checked_add(LIFETIME)?,
        "action": request.action.name(), "args": request.action.args(),
    });
    let envelope = keyring.sign("command", &command)?;
    client
        .publish(
            topics.command(&request.device),
            QoS::AtLeastOnce,
            false,
            envelope.to_json().into_bytes(),
        )
        .await?;
    Ok(id)
}

/// A random UUID (version 4): command ids are used once.
fn new_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Writes the image of a screenshot answer to `path`; returns its media
/// type and size.
pub fn save_screenshot(response: &CommandResponse, path: &Path) -> anyhow::Result<(String, usize)> {
    let image = response
        .image
        .as_deref()
        .context("the answer carries no image")?;
    let bytes = BASE64
        .decode(image)
        .context("the answer's image is not base64")?;
    write_atomic(path, &bytes, Access::Public)?;
    let media_type = response.media_type.as_deref().unwrap_or("image/png");
    Ok((media_type.to_string(), bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_uuids_and_differ() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]), "{a}");
    }

    #[test]
    fn an_offline_or_silent_screen_is_named_with_when_it_was_seen() {
        let offline: Status = serde_json::from_value(
            json!({"device": "lobby-1", "online": false, "at": "2026-11-29T10:00:00Z"}),
        )
        .unwrap();
        let err = check_online("lobby-1", Some(&offline)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lobby-1 is offline (last seen 2026-11-29T10:00:00Z)"
        );
        let err = check_online("lobby-1", None).unwrap_err();
        assert!(err.to_string().contains("never reported"), "{err}");
        let will: Status = serde_json::from_slice(&Status::offline_will("lobby-1")).unwrap();
        let err = check_online("lobby-1", Some(&will)).unwrap_err();
        assert!(err.to_string().contains("at an unknown time"), "{err}");
        let online: Status = serde_json::from_value(json!({"online": true})).unwrap();
        check_online("lobby-1", Some(&online)).unwrap();
    }

    #[test]
    fn a_screenshot_answer_is_written_as_its_image() {
        let dir = tempfile::tempdir().unwrap();
        let png = b"\x89PNG\r\n\x1a\nrest";
        let answer: CommandResponse = serde_json::from_value(json!({"id": "x", "ok": true,
            "action": "screenshot", "at": "2026-11-29T10:00:00Z",
            "media_type": "image/png", "image": BASE64.encode(png)}))
        .unwrap();
        let path = dir.path().join("shot.png");
        assert_eq!(
            save_screenshot(&answer, &path).unwrap(),
            ("image/png".into(), png.len())
        );
        assert_eq!(std::fs::read(&path).unwrap(), png);
    }
}
