//! An embedded MQTT broker (rumqttd) for `phare-demo`, so the demo needs
//! nothing installed. Fleets use a real broker (Mosquitto, EMQX, …).

use std::net::{SocketAddr, TcpListener};

use anyhow::Context;

/// Starts rumqttd on a free loopback port, in background threads that live
/// as long as the process. Returns its address.
pub fn start_embedded() -> anyhow::Result<SocketAddr> {
    // Ask the OS for a free port, then hand it to rumqttd.
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let config = serde_json::json!({
        "id": 0,
        "router": {
            "id": 0,
            "max_connections": 64,
            "max_outgoing_packet_count": 200,
            "max_segment_size": 16 * 1024 * 1024,
            "max_segment_count": 10,
        },
        "v4": {"1": {
            "name": "v4-1",
            "listen": addr.to_string(),
            "next_connection_delay_ms": 1,
            "connections": {
                "connection_timeout_ms": 60000,
                "max_payload_size": 2 * 1024 * 1024,
                "max_inflight_count": 100,
                "dynamic_filters": true,
            },
        }},
    });
    let config: rumqttd::Config =
        serde_json::from_value(config).context("embedded broker configuration")?;
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })?;
    // Wait until it accepts connections.
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(addr);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    anyhow::bail!("the embedded broker did not start on {addr}")
}
