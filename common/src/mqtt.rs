//! Leaving a broker: the one way both programs end an MQTT connection.

use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop};

/// The longest a goodbye takes: the broker is answering, or as good as
/// gone.
const GOODBYE_WITHIN: Duration = Duration::from_secs(2);

/// Leaves politely, within [`GOODBYE_WITHIN`]: asks for a DISCONNECT and
/// drives the event loop until the broker, having read it, closes the
/// connection. So the broker has whatever was queued before it (a last
/// retained status) and sees a DISCONNECT (and a TLS close) rather than a
/// dropped connection, which would publish the Last Will. A connection
/// already gone is no failure.
pub async fn disconnect(client: &AsyncClient, eventloop: &mut EventLoop) {
    // The request is queued while the loop runs: with the request queue
    // full, asking alone would wait for the very loop that drains it.
    let ask = async {
        let _ = client.disconnect().await;
        // Asked (or the loop is gone): the rest is the loop's to do.
        std::future::pending::<()>().await
    };
    // The first error is the end of the connection (polling again would
    // reconnect).
    let closed = async { while eventloop.poll().await.is_ok() {} };
    let _ = tokio::time::timeout(GOODBYE_WITHIN, async {
        tokio::select! {
            () = closed => {}
            () = ask => {}
        }
    })
    .await;
}
