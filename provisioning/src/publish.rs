//! Publishing signed documents to a broker on the topic their content calls
//! for (docs/protocol.md §3): retained for roots, assignments and alerts (a device
//! that connects later must find them), not for commands (used once).

use std::time::Duration;

use anyhow::{Context, bail};
use phare_common::mqtt::disconnect;
use phare_protocol::Envelope;
use phare_protocol::topics::Topics;
use rumqttc::{Event, Packet, QoS};

use crate::connect::Endpoint;

/// Where an envelope goes: its topic, and whether the broker retains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub topic: String,
    pub retain: bool,
}

/// The route of an envelope, read from its (unverified) payload: routing
/// only, devices verify everything.
pub fn route_for(envelope: &Envelope, prefix: Option<&str>) -> anyhow::Result<Route> {
    let payload: serde_json::Value =
        serde_json::from_slice(&envelope.payload_bytes()?).context("the payload is not JSON")?;
    route_of(&payload, prefix)
}

/// The route of a document (signed or not yet).
pub fn route_of(payload: &serde_json::Value, prefix: Option<&str>) -> anyhow::Result<Route> {
    let field = |name: &str| {
        payload
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let fleet = field("fleet").context("the payload has no fleet")?;
    let topics = match prefix {
        Some(prefix) => Topics::new(prefix),
        None => Topics::for_fleet(&fleet),
    };
    let retained = |topic| {
        Ok(Route {
            topic,
            retain: true,
        })
    };
    match field("kind").as_deref() {
        Some("root") => {
            let version = payload
                .get("version")
                .and_then(|v| v.as_u64())
                .context("the root has no version")?;
            retained(topics.root(version))
        }
        Some("assignment") => {
            let target = field("target").context("the assignment has no target")?;
            retained(
                topics
                    .assignment_for_target(&target)
                    .with_context(|| format!("bad target {target:?}"))?,
            )
        }
        Some("alert") => {
            let id = field("id").context("the alert has no id")?;
            anyhow::ensure!(
                phare_protocol::document::is_valid_alert_id(&id),
                "alert id {id:?} is not 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'"
            );
            retained(topics.alert(&id))
        }
        Some("command") => {
            let device = field("device").context("the command names no device")?;
            Ok(Route {
                topic: topics.command(&device),
                retain: false,
            })
        }
        other => bail!("cannot route a document of kind {other:?}"),
    }
}

/// Publishes `payload` with QoS 1 and waits for the broker's ack.
pub async fn publish(
    broker: impl Into<Endpoint>,
    topic: &str,
    payload: Vec<u8>,
    retain: bool,
) -> anyhow::Result<()> {
    let broker: Endpoint = broker.into();
    let url = &broker.url;
    let (client, mut eventloop) = broker.connect(broker.options("op")?).await?;
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload)
        .await?;
    let acked = broker.poll_until(&mut eventloop, |event| {
        matches!(event, Event::Incoming(Packet::PubAck(_)))
    });
    tokio::time::timeout(Duration::from_secs(10), acked)
        .await
        .with_context(|| format!("no acknowledgement from {url} within 10 s"))??;
    disconnect(&client, &mut eventloop).await;
    Ok(())
}
