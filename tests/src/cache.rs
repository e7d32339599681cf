//! For the cache tests and benchmark: content of any size, assignments that
//! carry it, and [`FaultyOrigin`], an HTTP origin on loopback that serves
//! a directory honouring `Range` and `If-Range` and misbehaves as scripted:
//! corrupted bytes, a connection dropped after N bytes, Range ignored, a
//! body longer than the file, a slow trickle, a redirect. It records every
//! request and counts the body bytes it sent.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use phare_provisioning::asset::entry_for;
use rand::RngCore;
use serde_json::Value;
use tokio::task::JoinHandle;

/// Writes `size` bytes of random content named `name` into `dir`.
pub fn blob(dir: &Path, name: &str, size: usize) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut chunk = vec![0; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        rand::rng().fill_bytes(&mut chunk[..n]);
        file.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    file.flush().unwrap();
    path
}

/// `assignment` with `files` added as assets that no playlist plays (so
/// any bytes do), fetched by their name from the device's origins.
pub fn with_blobs(mut assignment: Value, files: &[&Path]) -> Value {
    for file in files {
        let (id, entry) = entry_for(file, &[], Some("application/octet-stream")).unwrap();
        assignment["assets"][id.to_string()] = serde_json::to_value(entry).unwrap();
    }
    assignment
}

/// How the origin answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Correctly, with Range support.
    Good,
    /// With the right length but one byte flipped in every 4 KiB.
    Corrupt,
    /// Closes the connection after sending this many body bytes.
    DropAt(u64),
    /// Always the whole file with `200`, whatever the Range.
    IgnoreRange,
    /// The whole file and then this many more bytes, with no length given.
    Overflow(u64),
    /// Correctly, but at this many bytes per second.
    Throttle(u64),
    /// `302 Found` to the same file on this origin (a URL of its own each
    /// time, so a client cannot take it for a loop).
    Redirect,
}

/// One request as the origin saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub path: String,
    /// The first byte asked for with `Range`, if any.
    pub range_start: Option<u64>,
    pub status: u16,
    /// Body bytes handed to the connection.
    pub bytes: u64,
}

struct Log {
    path: String,
    range_start: Option<u64>,
    status: u16,
    bytes: Arc<AtomicU64>,
}

struct Shared {
    dir: PathBuf,
    /// Fault of request N; the last one applies to every later request.
    script: Vec<Fault>,
    log: Mutex<Vec<Log>>,
}

/// A running faulty origin; stops when dropped.
pub struct FaultyOrigin {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultyOrigin {
    /// Serves `dir`, answering the n-th request with `script[n]` (the last
    /// entry for all later ones).
    pub async fn serve(dir: &Path, script: &[Fault]) -> FaultyOrigin {
        assert!(!script.is_empty(), "a script needs at least one fault");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            script: script.to_vec(),
            log: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultyOrigin { addr, shared, task }
    }

    /// The base URL, with a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Served> {
        let log = self.shared.log.lock().unwrap();
        log.iter()
            .map(|l| Served {
                path: l.path.clone(),
                range_start: l.range_start,
                status: l.status,
                bytes: l.bytes.load(Ordering::SeqCst),
            })
            .collect()
    }

    /// Requests for one file (by name).
    pub fn requests_for(&self, file: &Path) -> Vec<Served> {
        let name = file.file_name().unwrap().to_str().unwrap();
        self.requests()
            .into_iter()
            .filter(|r| r.path == name)
            .collect()
    }
}

impl Drop for FaultyOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An origin URL where nothing listens: connections are refused.
pub fn refusing_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/")
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/').to_string();
    let range_start = range_start(request.headers());
    let (n, fault) = {
        let log = shared.log.lock().unwrap();
        (
            log.len(),
            shared.script[log.len().min(shared.script.len() - 1)],
        )
    };
    let bytes = Arc::new(AtomicU64::new(0));
    let file = (!path.contains(".."))
        .then(|| std::fs::read(shared.dir.join(&path)).ok())
        .flatten();
    let response = match file {
        None => empty(StatusCode::NOT_FOUND),
        Some(_) if fault == Fault::Redirect => Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, format!("/{path}?hop={n}"))
            .body(Body::empty())
            .unwrap(),
        Some(file) => respond(fault, file, range_start, request.headers(), bytes.clone()),
    };
    shared.log.lock().unwrap().push(Log {
        path,
        range_start,
        status: response.status().as_u16(),
        bytes,
    });
    response
}

fn range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::RANGE)?.to_str().ok()?;
    value
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap()
}

fn respond(
    fault: Fault,
    mut file: Vec<u8>,
    range_start: Option<u64>,
    headers: &HeaderMap,
    counter: Arc<AtomicU64>,
) -> Response {
    let len = file.len() as u64;
    let etag = format!("\"len-{len}\"");
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().ok() == Some(etag.as_str()));
    let start = range_start.filter(|_| if_range_ok && fault != Fault::IgnoreRange);
    if fault == Fault::Corrupt {
        for byte in file.iter_mut().step_by(4096) {
            *byte ^= 0xff;
        }
    }
    let mut response = Response::builder().header(header::ETAG, &etag);
    let body = match start {
        Some(start) if start >= len => {
            return response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap();
        }
        Some(start) => {
            response = response.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{len}", len - 1),
            );
            Bytes::from(file).slice(start as usize..)
        }
        None => {
            response = response.status(StatusCode::OK);
            Bytes::from(file)
        }
    };
    let extra = match fault {
        Fault::Overflow(extra) => extra,
        _ => {
            response = response.header(header::CONTENT_LENGTH, body.len());
            0
        }
    };
    let stream = Stream {
        body,
        extra,
        drop_at: match fault {
            Fault::DropAt(n) => Some(n),
            _ => None,
        },
        rate: match fault {
            Fault::Throttle(rate) => Some(rate),
            _ => None,
        },
        sent: counter,
        done: false,
    };
    response
        .body(Body::from_stream(futures_util::stream::unfold(
            stream,
            Stream::next,
        )))
        .unwrap()
}

/// The body as it goes out, chunk by chunk.
struct Stream {
    body: Bytes,
    extra: u64,
    drop_at: Option<u64>,
    rate: Option<u64>,
    sent: Arc<AtomicU64>,
    done: bool,
}

impl Stream {
    async fn next(mut self) -> Option<(std::io::Result<Bytes>, Stream)> {
        const TICK: Duration = Duration::from_millis(100);
        if self.done {
            return None;
        }
        let sent = self.sent.load(Ordering::SeqCst);
        if self.drop_at.is_some_and(|at| sent >= at) {
            // Let what was sent reach the client before the connection goes.
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.done = true;
            return Some((Err(std::io::Error::other("dropped on purpose")), self));
        }
        let mut chunk = 64 << 10;
        if let Some(rate) = self.rate {
            tokio::time::sleep(TICK).await;
            chunk = (rate / 10).max(1);
        }
        if let Some(at) = self.drop_at {
            chunk = chunk.min(at - sent);
        }
        let pos = sent as usize;
        let bytes = if pos < self.body.len() {
            let end = (pos + chunk as usize).min(self.body.len());
            self.body.slice(pos..end)
        } else if sent < self.body.len() as u64 + self.extra {
            let left = self.body.len() as u64 + self.extra - sent;
            Bytes::from(vec![0; chunk.min(left) as usize])
        } else {
            return None;
        };
        self.sent.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        Some((Ok(bytes), self))
    }
}
