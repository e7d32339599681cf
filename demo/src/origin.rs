//! A static HTTP origin for the demo and the tests: serves a directory on
//! loopback, with Range support (tower-http's `ServeDir`).

use std::net::SocketAddr;
use std::path::Path;

use tokio::task::JoinHandle;

/// A running origin; stops when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Origin {
    /// Serves `dir` at `http://<addr>/`. Pass port 0 for any free port.
    pub async fn serve(dir: &Path, addr: SocketAddr) -> std::io::Result<Origin> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(dir));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "origin stopped");
            }
        });
        Ok(Origin { addr, task })
    }

    /// The base URL, with a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
