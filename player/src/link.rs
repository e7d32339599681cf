//! The MQTT link: one broker at a time, failover down the configured list,
//! exponential backoff with jitter (docs/protocol.md §3).
//!
//! The decision of which broker to try next and how long to wait lives in
//! the I/O-free [`Failover`]; the task around it only drives rumqttc. The
//! rumqttc event loop is polled continuously, also while we publish, since
//! it is what moves packets at all.
//!
//! While a less preferred broker serves us, the more preferred ones are
//! probed in the background (a separate, clean, short connection) and the
//! link moves back as soon as one accepts a session: the first broker in
//! the config is the one operators expect their screens on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use rand::Rng;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

use phare_common::mqtt::disconnect;
use phare_common::time::sleep_until_opt;
use phare_protocol::broker::BrokerAddr;

use crate::tls::{MqttAuth, mqtt_options};

/// Incoming packets up to this size are read; the envelope cap (1 MiB) is
/// enforced above, so a document somewhat over it is reported and dropped
/// instead of tearing down the connection (rumqttc's default limit is
/// 10 KiB). Together with [`EVENT_QUEUE`] it bounds what a hostile broker
/// can make the device hold.
/// How long a shutdown waits for the link to publish the last status and
/// leave: a broker that does not answer must not hold up a systemd stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

const MAX_INCOMING_PACKET: usize = 2 * 1024 * 1024;
/// rumqttc refuses to encode a larger packet, and a refused publish would
/// fail the connection: [`fits_in_packet`] keeps such messages out.
const MAX_OUTGOING_PACKET: usize = 1024 * 1024;
/// Events waiting for the agent. When it is full the link waits, and so
/// stops reading from the broker: a flood is held back by TCP, not by
/// memory.
pub const EVENT_QUEUE: usize = 16;

/// Whether a publish of `payload` on `topic` fits the outgoing packet cap
/// (with room for the MQTT header and packet id).
pub fn fits_in_packet(topic: &str, payload: &[u8]) -> bool {
    topic.len() + payload.len() + 16 <= MAX_OUTGOING_PACKET
}
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// How long a probe of a preferred broker may take to get a session.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the link tells the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    Connected {
        broker: String,
    },
    Disconnected {
        broker: String,
        reason: String,
    },
    Message {
        topic: String,
        payload: Vec<u8>,
    },
    /// The broker acknowledged the publish made with this token.
    Acked {
        token: AckToken,
    },
    /// No session could be had with this broker (refused, TLS, auth…).
    Unreachable {
        broker: String,
        reason: String,
    },
}

/// What an acknowledged publish carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckToken {
    /// A message of the outbox, by its sequence number.
    Outbox(i64),
    /// A proof-of-play batch, by its number.
    Plays(u64),
}

/// Matches the broker's acknowledgements to the publishes that asked for
/// one. rumqttc assigns packet ids as it sends, in request order, so each
/// publish queues an optional token that the next sent packet id claims.
#[derive(Debug, Default)]
struct Acks {
    queued: VecDeque<Option<AckToken>>,
    sent: HashMap<u16, AckToken>,
}

impl Acks {
    fn queued(&mut self, token: Option<AckToken>) {
        self.queued.push_back(token);
    }

    fn sent(&mut self, pkid: u16) {
        if let Some(Some(token)) = self.queued.pop_front() {
            self.sent.insert(pkid, token);
        }
    }

    fn acked(&mut self, pkid: u16) -> Option<AckToken> {
        self.sent.remove(&pkid)
    }
}

/// Everything the link needs to know to connect.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub client_id: String,
    pub brokers: Vec<BrokerAddr>,
    pub subscriptions: Vec<String>,
    /// Retained Last Will: (topic, payload).
    pub will: (String, Vec<u8>),
    /// TLS and credentials for every broker.
    pub auth: MqttAuth,
    /// How often more preferred brokers are probed while a less preferred
    /// one serves us.
    pub primary_retry: Duration,
}

/// Which broker to try next and after how long. Pure.
#[derive(Debug)]
pub struct Failover {
    brokers: usize,
    next: usize,
    failed_rounds: u32,
}

/// Why a session ended, as the failover policy needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// No session was ever established on this broker.
    NeverUp,
    /// A session was up, then the connection broke.
    Lost,
    /// A more preferred broker (this index) accepted a probe.
    Preferred(usize),
}

impl Failover {
    pub fn new(brokers: usize) -> Failover {
        assert!(brokers > 0, "config validation requires a broker");
        Failover {
            brokers,
            next: 0,
            failed_rounds: 0,
        }
    }

    /// The broker to try now, and how long to wait before trying it.
    /// `jitter` in [0, 1) spreads a fleet's reconnections after an outage.
    pub fn next_attempt(&mut self, jitter: f64) -> (usize, Duration) {
        let broker = self.next;
        let delay = if broker == 0 && self.failed_rounds > 0 {
            let exp = BACKOFF_BASE.saturating_mul(1 << (self.failed_rounds - 1).min(16));
            let full = exp.min(BACKOFF_CAP);
            // "Equal jitter": at least half the delay, so backoff still grows.
            full / 2 + full.mul_f64(jitter / 2.0)
        } else {
            Duration::ZERO
        };
        (broker, delay)
    }

    /// The session on the broker last attempted ended.
    pub fn ended(&mut self, how: Ended) {
        match how {
            // Next broker; a whole failed round means backing off.
            Ended::NeverUp => {
                self.next = (self.next + 1) % self.brokers;
                if self.next == 0 {
                    self.failed_rounds += 1;
                }
            }
            // Start over from the most preferred broker, without waiting.
            Ended::Lost => {
                self.next = 0;
                self.failed_rounds = 0;
            }
            Ended::Preferred(index) => {
                self.next = index.min(self.brokers - 1);
                self.failed_rounds = 0;
            }
        }
    }

    /// The brokers worth probing while `serving` serves us: every more
    /// preferred one, best first.
    pub fn preferred_to(serving: usize) -> std::ops::Range<usize> {
        0..serving
    }
}

enum Request {
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        /// Report [`LinkEvent::Acked`] with this token once acknowledged.
        ack: Option<AckToken>,
    },
    /// Subscribe again: the broker sends the retained documents anew.
    Resubscribe,
    Shutdown {
        last: Option<(String, Vec<u8>)>,
        done: oneshot::Sender<()>,
    },
}

/// Handle to the link task.
#[derive(Clone)]
pub struct Link {
    requests: mpsc::UnboundedSender<Request>,
}

impl Link {
    pub fn spawn(config: LinkConfig, events: mpsc::Sender<LinkEvent>) -> Link {
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(config, rx, events));
        Link { requests }
    }

    /// Publishes a retained message with QoS 1 (the status). While no
    /// broker is connected, the newest payload per topic is kept and sent
    /// on the next connection. Messages that must not be lost go through
    /// the agent's durable outbox and [`Link::publish_acked`] instead.
    pub fn publish_retained(&self, topic: String, payload: Vec<u8>) {
        let _ = self.requests.send(Request::Publish {
            topic,
            payload,
            retain: true,
            ack: None,
        });
    }

    /// Publishes (QoS 1, not retained) only if a broker is connected, and
    /// reports [`LinkEvent::Acked`] with `token` when the broker has it. If
    /// the connection is lost first, no ack comes: send it again later.
    pub fn publish_acked(&self, topic: String, payload: Vec<u8>, token: AckToken) {
        let _ = self.requests.send(Request::Publish {
            topic,
            payload,
            retain: false,
            ack: Some(token),
        });
    }

    /// Asks the broker for the retained documents again (by subscribing
    /// anew), e.g. once the clock was set: some may have been refused as
    /// issued in the future of a clock that was wrong.
    pub fn resubscribe(&self) {
        let _ = self.requests.send(Request::Resubscribe);
    }

    /// Publishes `last` (retained) if connected, disconnects cleanly so the
    /// Last Will is not sent, and stops the task.
    pub async fn shutdown(&self, last: Option<(String, Vec<u8>)>) {
        let (done, wait) = oneshot::channel();
        if self.requests.send(Request::Shutdown { last, done }).is_ok() {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, wait).await;
        }
    }
}

async fn run(
    config: LinkConfig,
    mut requests: mpsc::UnboundedReceiver<Request>,
    events: mpsc::Sender<LinkEvent>,
) {
    let mut failover = Failover::new(config.brokers.len());
    let mut retained: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    loop {
        let (index, delay) = failover.next_attempt(rand::rng().random());
        let broker = &config.brokers[index];
        if !delay.is_zero() {
            tracing::info!(%broker, ?delay, "waiting before reconnecting");
        }
        // Requests are still served while waiting, so shutdown is prompt.
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                request = requests.recv() => match request {
                    Some(Request::Publish { topic, payload, retain: true, .. }) => { retained.insert(topic, payload); }
                    // Acked publishes are the outbox's: it sends them again.
                    // The next session subscribes anyway.
                    Some(Request::Publish { .. } | Request::Resubscribe) => {}
                    Some(Request::Shutdown { done, .. }) => { let _ = done.send(()); return; }
                    None => return,
                },
            }
        }
        match session(&config, index, &mut requests, &events, &mut retained).await {
            SessionEnd::Ended(Ended::NeverUp, reason) => {
                tracing::warn!(%broker, %reason, "broker unreachable");
                let _ = events
                    .send(LinkEvent::Unreachable {
                        broker: broker.to_string(),
                        reason,
                    })
                    .await;
                failover.ended(Ended::NeverUp);
            }
            SessionEnd::Ended(how, reason) => {
                tracing::warn!(%broker, %reason, "broker connection ended");
                let _ = events
                    .send(LinkEvent::Disconnected {
                        broker: broker.to_string(),
                        reason,
                    })
                    .await;
                failover.ended(how);
            }
            SessionEnd::Shutdown => return,
        }
    }
}

enum SessionEnd {
    Ended(Ended, String),
    Shutdown,
}

fn options(config: &LinkConfig, broker: &BrokerAddr) -> Result<MqttOptions, String> {
    let mut options = mqtt_options(&config.client_id, broker, &config.auth)
        .map_err(|e| format!("credentials: {e}"))?;
    options.set_keep_alive(KEEP_ALIVE);
    // A persistent session keeps QoS 1 messages for us while we are away.
    options.set_clean_session(false);
    options.set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
    options.set_last_will(LastWill::new(
        &config.will.0,
        config.will.1.clone(),
        QoS::AtLeastOnce,
        true,
    ));
    Ok(options)
}

/// Whether `broker` accepts a session now: a separate clean connection
/// (its own client id, no will, nothing subscribed), closed at once.
async fn probe(config: &LinkConfig, broker: &BrokerAddr) -> bool {
    let Ok(mut options) =
        mqtt_options(&format!("{}.probe", config.client_id), broker, &config.auth)
    else {
        return false;
    };
    options.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(options, 1);
    let connack = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    };
    let up = tokio::time::timeout(PROBE_TIMEOUT, connack)
        .await
        .unwrap_or(false);
    if up {
        disconnect(&client, &mut eventloop).await;
    }
    up
}

/// Probes the brokers more preferred than `serving`, best first, and
/// returns the first that accepts a session.
async fn find_preferred(config: &LinkConfig, serving: usize) -> Option<usize> {
    for index in Failover::preferred_to(serving) {
        if probe(config, &config.brokers[index]).await {
            return Some(index);
        }
    }
    None
}

async fn session(
    config: &LinkConfig,
    index: usize,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    events: &mpsc::Sender<LinkEvent>,
    retained: &mut BTreeMap<String, Vec<u8>>,
) -> SessionEnd {
    let broker = &config.brokers[index];
    let options = match options(config, broker) {
        Ok(options) => options,
        Err(reason) => return SessionEnd::Ended(Ended::NeverUp, reason),
    };
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let mut up = false;
    let mut acks = Acks::default();
    // Probing starts once a session is up on a less preferred broker.
    let mut next_probe = None;
    let mut probing = None;
    let ended = |how, reason: String| SessionEnd::Ended(how, reason);
    loop {
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    up = true;
                    tracing::info!(%broker, session_present = ack.session_present, "connected");
                    // Subscribe on every new connection, not only when the
                    // broker says it forgot us (session_present=false): some
                    // brokers (rumqttd) claim a session they do not have.
                    // Subscribing again is idempotent, and the retained
                    // documents it re-delivers are recognised as known.
                    if let Err(e) = subscribe(&client, config) {
                        return ended(Ended::Lost, format!("subscribe: {e}"));
                    }
                    for (topic, payload) in std::mem::take(retained) {
                        if client.try_publish(topic, QoS::AtLeastOnce, true, payload).is_ok() {
                            acks.queued(None);
                        }
                    }
                    if index > 0 {
                        next_probe = Some(tokio::time::Instant::now() + jittered(config.primary_retry));
                    }
                    let _ = events.send(LinkEvent::Connected { broker: broker.to_string() }).await;
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => acks.sent(pkid),
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(token) = acks.acked(ack.pkid) {
                        let _ = events.send(LinkEvent::Acked { token }).await;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let _ = events.send(LinkEvent::Message { topic: publish.topic, payload: publish.payload.to_vec() }).await;
                }
                Ok(_) => {}
                Err(e) if up => return ended(Ended::Lost, e.to_string()),
                Err(e) => return ended(Ended::NeverUp, e.to_string()),
            },
            _ = sleep_until_opt(next_probe), if probing.is_none() => {
                next_probe = None;
                probing = Some(Box::pin(find_preferred(config, index)));
            }
            found = async { probing.as_mut().expect("guarded").await }, if probing.is_some() => {
                probing = None;
                match found {
                    Some(preferred) => {
                        let to = &config.brokers[preferred];
                        tracing::info!(from = %broker, %to, "a preferred broker is back: moving");
                        disconnect(&client, &mut eventloop).await;
                        return ended(Ended::Preferred(preferred), format!("moving to {to}"));
                    }
                    None => next_probe = Some(tokio::time::Instant::now() + jittered(config.primary_retry)),
                }
            }
            request = requests.recv() => match request {
                Some(Request::Publish { topic, payload, .. }) if !fits_in_packet(&topic, &payload) => {
                    tracing::error!(%topic, bytes = payload.len(), "message over the packet cap dropped");
                }
                Some(Request::Publish { topic, payload, retain, ack }) => {
                    if !up {
                        if retain { retained.insert(topic, payload); }
                    } else {
                        match client.try_publish(topic, QoS::AtLeastOnce, retain, payload) {
                            Ok(()) => acks.queued(ack),
                            Err(e) => tracing::warn!(error = %e, "publish queue full, message dropped"),
                        }
                    }
                }
                Some(Request::Resubscribe) => {
                    if up && let Err(e) = subscribe(&client, config) {
                        return ended(Ended::Lost, format!("subscribe: {e}"));
                    }
                }
                Some(Request::Shutdown { last, done }) => {
                    if up {
                        if let Some((topic, payload)) = last {
                            let _ = client.try_publish(topic, QoS::AtLeastOnce, true, payload);
                        }
                        // The broker gets our last words before we go.
                        disconnect(&client, &mut eventloop).await;
                    }
                    let _ = done.send(());
                    return SessionEnd::Shutdown;
                }
                None => return SessionEnd::Shutdown,
            },
        }
    }
}

fn subscribe(client: &AsyncClient, config: &LinkConfig) -> Result<(), rumqttc::ClientError> {
    let filters = config
        .subscriptions
        .iter()
        .map(|t| rumqttc::SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
    client.try_subscribe_many(filters)
}

/// `period` give or take a quarter, so a fleet's probes spread out.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(0.75 + rand::rng().random::<f64>() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_reach_the_publish_that_asked_for_them() {
        let mut acks = Acks::default();
        acks.queued(None); // a status
        acks.queued(Some(AckToken::Plays(7))); // a proof-of-play batch
        acks.sent(1);
        acks.sent(2);
        assert_eq!(acks.acked(1), None);
        assert_eq!(acks.acked(2), Some(AckToken::Plays(7)));
        assert_eq!(acks.acked(2), None, "acknowledged once");
    }

    #[test]
    fn tries_every_broker_in_order_then_backs_off() {
        let mut f = Failover::new(3);
        assert_eq!(f.next_attempt(0.0), (0, Duration::ZERO));
        f.ended(Ended::NeverUp);
        assert_eq!(f.next_attempt(0.0), (1, Duration::ZERO));
        f.ended(Ended::NeverUp);
        assert_eq!(f.next_attempt(0.0), (2, Duration::ZERO));
        f.ended(Ended::NeverUp);
        // A whole round failed: wait, at least half the base delay.
        let (broker, delay) = f.next_attempt(0.0);
        assert_eq!(broker, 0);
        assert_eq!(delay, BACKOFF_BASE / 2);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut f = Failover::new(1);
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            f.ended(Ended::NeverUp);
            let (_, delay) = f.next_attempt(0.999);
            assert!(delay >= last, "{delay:?} < {last:?}");
            assert!(delay <= BACKOFF_CAP);
            last = delay;
        }
        assert!(last > BACKOFF_CAP / 2);
    }

    #[test]
    fn a_lost_session_goes_back_to_the_primary_at_once() {
        let mut f = Failover::new(2);
        f.ended(Ended::NeverUp);
        f.ended(Ended::NeverUp);
        f.ended(Ended::NeverUp);
        assert_eq!(f.next_attempt(0.5).0, 1);
        f.ended(Ended::Lost);
        assert_eq!(f.next_attempt(0.5), (0, Duration::ZERO));
    }

    #[test]
    fn a_preferred_broker_back_is_used_next_without_waiting() {
        let mut f = Failover::new(3);
        f.ended(Ended::NeverUp);
        f.ended(Ended::NeverUp);
        assert_eq!(f.next_attempt(0.5).0, 2);
        assert_eq!(Failover::preferred_to(2), 0..2);
        f.ended(Ended::Preferred(1));
        assert_eq!(f.next_attempt(0.5), (1, Duration::ZERO));
        assert!(
            Failover::preferred_to(0).is_empty(),
            "the primary probes nothing"
        );
    }
}
