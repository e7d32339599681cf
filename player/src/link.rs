//! The MQTT link: one broker at a time, failover down the configured list,
//! exponential backoff with jitter (DESIGN.md §4).
//!
//! The decision of which broker to try next and how long to wait lives in
//! the I/O-free [`Failover`]; the task around it only drives rumqttc. The
//! rumqttc event loop is polled continuously, also while we publish, since
//! it is what moves packets at all.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use rand::Rng;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

use phare_protocol::broker::BrokerAddr;

/// Incoming packets up to this size are read; the envelope cap (1 MiB) is
/// enforced above, so an oversize document is reported and dropped instead
/// of tearing down the connection (rumqttc's default limit is 10 KiB).
const MAX_INCOMING_PACKET: usize = 8 * 1024 * 1024;
const MAX_OUTGOING_PACKET: usize = 1024 * 1024;
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

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
        token: u64,
    },
}

/// Matches the broker's acknowledgements to the publishes that asked for
/// one. rumqttc assigns packet ids as it sends, in request order, so each
/// publish queues an optional token that the next sent packet id claims.
#[derive(Debug, Default)]
struct Acks {
    queued: VecDeque<Option<u64>>,
    sent: HashMap<u16, u64>,
}

impl Acks {
    fn queued(&mut self, token: Option<u64>) {
        self.queued.push_back(token);
    }

    fn sent(&mut self, pkid: u16) {
        if let Some(Some(token)) = self.queued.pop_front() {
            self.sent.insert(pkid, token);
        }
    }

    fn acked(&mut self, pkid: u16) -> Option<u64> {
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
}

/// Which broker to try next and after how long. Pure.
#[derive(Debug)]
pub struct Failover {
    brokers: usize,
    next: usize,
    failed_rounds: u32,
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

    /// The attempt on the current broker failed before a session was up.
    pub fn failed(&mut self) {
        self.next = (self.next + 1) % self.brokers;
        if self.next == 0 {
            self.failed_rounds += 1;
        }
    }

    /// A session was established, then lost: start over from the most
    /// preferred broker, without waiting.
    pub fn lost(&mut self) {
        self.next = 0;
        self.failed_rounds = 0;
    }
}

enum Request {
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        /// Report [`LinkEvent::Acked`] with this token once acknowledged.
        ack: Option<u64>,
    },
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
    pub fn spawn(config: LinkConfig, events: mpsc::UnboundedSender<LinkEvent>) -> Link {
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(config, rx, events));
        Link { requests }
    }

    /// Publishes with QoS 1. While no broker is connected, the newest
    /// retained payload per topic is kept and sent on the next connection;
    /// other messages are dropped (a durable outbox is future work).
    pub fn publish(&self, topic: String, payload: Vec<u8>, retain: bool) {
        let _ = self.requests.send(Request::Publish {
            topic,
            payload,
            retain,
            ack: None,
        });
    }

    /// Publishes (QoS 1, not retained) only if a broker is connected, and
    /// reports [`LinkEvent::Acked`] with `token` when the broker has it. If
    /// the connection is lost first, no ack comes: send it again later.
    pub fn publish_acked(&self, topic: String, payload: Vec<u8>, token: u64) {
        let _ = self.requests.send(Request::Publish {
            topic,
            payload,
            retain: false,
            ack: Some(token),
        });
    }

    /// Publishes `last` (retained) if connected, disconnects cleanly so the
    /// Last Will is not sent, and stops the task.
    pub async fn shutdown(&self, last: Option<(String, Vec<u8>)>) {
        let (done, wait) = oneshot::channel();
        if self.requests.send(Request::Shutdown { last, done }).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), wait).await;
        }
    }
}

async fn run(
    config: LinkConfig,
    mut requests: mpsc::UnboundedReceiver<Request>,
    events: mpsc::UnboundedSender<LinkEvent>,
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
                    Some(Request::Publish { .. }) => {}
                    Some(Request::Shutdown { done, .. }) => { let _ = done.send(()); return; }
                    None => return,
                },
            }
        }
        match session(&config, broker, &mut requests, &events, &mut retained).await {
            SessionEnd::NeverUp(reason) => {
                tracing::warn!(%broker, %reason, "broker unreachable");
                failover.failed();
            }
            SessionEnd::Lost(reason) => {
                tracing::warn!(%broker, %reason, "broker connection lost");
                let _ = events.send(LinkEvent::Disconnected {
                    broker: broker.to_string(),
                    reason,
                });
                failover.lost();
            }
            SessionEnd::Shutdown => return,
        }
    }
}

enum SessionEnd {
    NeverUp(String),
    Lost(String),
    Shutdown,
}

fn options(config: &LinkConfig, broker: &BrokerAddr) -> MqttOptions {
    let mut options = MqttOptions::new(&config.client_id, &broker.host, broker.port);
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
    options
}

async fn session(
    config: &LinkConfig,
    broker: &BrokerAddr,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    events: &mpsc::UnboundedSender<LinkEvent>,
    retained: &mut BTreeMap<String, Vec<u8>>,
) -> SessionEnd {
    let (client, mut eventloop) = AsyncClient::new(options(config, broker), 256);
    let mut up = false;
    let mut acks = Acks::default();
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
                    let filters = config.subscriptions.iter().map(|t| rumqttc::SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                    if let Err(e) = client.try_subscribe_many(filters) {
                        return SessionEnd::Lost(format!("subscribe: {e}"));
                    }
                    for (topic, payload) in std::mem::take(retained) {
                        if client.try_publish(topic, QoS::AtLeastOnce, true, payload).is_ok() {
                            acks.queued(None);
                        }
                    }
                    let _ = events.send(LinkEvent::Connected { broker: broker.to_string() });
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => acks.sent(pkid),
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(token) = acks.acked(ack.pkid) {
                        let _ = events.send(LinkEvent::Acked { token });
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let _ = events.send(LinkEvent::Message { topic: publish.topic, payload: publish.payload.to_vec() });
                }
                Ok(_) => {}
                Err(e) if up => return SessionEnd::Lost(e.to_string()),
                Err(e) => return SessionEnd::NeverUp(e.to_string()),
            },
            request = requests.recv() => match request {
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
                Some(Request::Shutdown { last, done }) => {
                    if up {
                        if let Some((topic, payload)) = last {
                            let _ = client.try_publish(topic, QoS::AtLeastOnce, true, payload);
                        }
                        let _ = client.try_disconnect();
                        // Drive the loop until the broker has our last words.
                        let flush = async { while eventloop.poll().await.is_ok() {} };
                        let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
                    }
                    let _ = done.send(());
                    return SessionEnd::Shutdown;
                }
                None => return SessionEnd::Shutdown,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_reach_the_publish_that_asked_for_them() {
        let mut acks = Acks::default();
        acks.queued(None); // a status
        acks.queued(Some(7)); // a proof-of-play batch
        acks.sent(1);
        acks.sent(2);
        assert_eq!(acks.acked(1), None);
        assert_eq!(acks.acked(2), Some(7));
        assert_eq!(acks.acked(2), None, "acknowledged once");
    }

    #[test]
    fn tries_every_broker_in_order_then_backs_off() {
        let mut f = Failover::new(3);
        assert_eq!(f.next_attempt(0.0), (0, Duration::ZERO));
        f.failed();
        assert_eq!(f.next_attempt(0.0), (1, Duration::ZERO));
        f.failed();
        assert_eq!(f.next_attempt(0.0), (2, Duration::ZERO));
        f.failed();
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
            f.failed();
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
        f.failed();
        f.failed();
        f.failed();
        assert_eq!(f.next_attempt(0.5).0, 1);
        f.lost();
        assert_eq!(f.next_attempt(0.5), (0, Duration::ZERO));
    }
}
