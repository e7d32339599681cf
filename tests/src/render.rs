//! For the rendering tests and benchmarks: a player whose screenshots are
//! taken over SIGUSR1, QR codes read back from them, an HTTP origin that
//! can be killed outright (for live channels), HLS channels made by
//! GStreamer or by ffmpeg, and a process's CPU time and peak memory read
//! from `/proc`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Origin, Player, Scene, TIMEOUT};

impl Scene {
    /// Starts the player with `extra` TOML appended to its config (e.g. a
    /// `[display]` section).
    pub fn start_player_with(&self, extra: &str) -> Player {
        let origin = self.origin.as_ref().expect("the origin is up").url();
        Player::start_with(
            self.work.path(),
            &self.fleet.root_path(),
            &[self.broker.url()],
            &[origin],
            extra,
        )
    }
}

/// A `[display]` section that writes screenshots into `dir` on SIGUSR1.
pub fn screenshot_config(dir: &Path) -> String {
    format!(
        "[display]\nwidth = 640\nheight = 360\nfps = 25\nscreenshot_dir = {:?}\n",
        dir.display().to_string()
    )
}

impl Player {
    /// Asks for a screenshot (SIGUSR1) and returns the PNG written into
    /// `dir`, the player's screenshot directory.
    pub fn screenshot(&self, dir: &Path) -> Vec<u8> {
        let pngs = || -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "png"))
                        .collect()
                })
                .unwrap_or_default()
        };
        let before = pngs();
        let pid = self.pid().expect("the player runs");
        let ask = || {
            Command::new("kill")
                .arg("-USR1")
                .arg(pid.to_string())
                .status()
                .unwrap()
        };
        let deadline = Instant::now() + TIMEOUT;
        // Until a first frame reached the sink the player has nothing to
        // write (it says so in its log): ask again each second.
        let mut asked = Instant::now();
        ask();
        loop {
            if let Some(new) = pngs().into_iter().find(|p| !before.contains(p)) {
                return std::fs::read(new).unwrap();
            }
            if asked.elapsed() >= Duration::from_secs(1) {
                asked = Instant::now();
                ask();
            }
            assert!(
                Instant::now() < deadline,
                "no screenshot written\nplayer log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Takes screenshots until one passes `test`.
    pub fn wait_screenshot(&self, dir: &Path, what: &str, mut test: impl FnMut(&[u8]) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !test(&self.screenshot(dir)) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\nplayer log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The text of the QR code in a PNG, if there is exactly one.
pub fn decode_qr(png: &[u8]) -> Option<String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().ok()?;
    let mut pixels = vec![0; reader.output_buffer_size()?];
    let info = reader.next_frame(&mut pixels).ok()?;
    let channels = info.color_type.samples();
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(
        info.width as usize,
        info.height as usize,
        |x, y| {
            let at = (y * info.width as usize + x) * channels;
            let rgb = &pixels[at..at + channels.min(3)];
            (rgb.iter().map(|&c| u16::from(c)).sum::<u16>() / rgb.len() as u16) as u8
        },
    );
    match image.detect_grids().as_slice() {
        [grid] => grid.decode().ok().map(|(_, text)| text),
        _ => None,
    }
}

/// A live source a test can kill and bring back on the same address.
pub trait Killable {
    fn stop(&mut self);
    fn restart(&mut self);
}

impl Killable for KillableOrigin {
    fn stop(&mut self) {
        KillableOrigin::stop(self)
    }

    fn restart(&mut self) {
        KillableOrigin::restart(self)
    }
}

impl Killable for RtspServer {
    fn stop(&mut self) {
        RtspServer::stop(self)
    }

    fn restart(&mut self) {
        RtspServer::restart(self)
    }
}

/// An HTTP origin on a thread and runtime of its own: stopping it closes
/// every connection at once, as a crashed server would (dropping an
/// [`Origin`] stops accepting, but open keep-alive connections live on).
pub struct KillableOrigin {
    pub addr: SocketAddr,
    dir: PathBuf,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

impl KillableOrigin {
    /// Serves `dir` on a free loopback port.
    pub fn start(dir: &Path) -> KillableOrigin {
        let mut origin = KillableOrigin {
            addr: "127.0.0.1:0".parse().unwrap(),
            dir: dir.to_owned(),
            running: None,
        };
        origin.restart();
        origin
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves again, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (dir, addr) = (self.dir.clone(), self.addr);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let origin = Origin::serve(&dir, addr).await.unwrap();
                ready_tx.send(origin.addr).unwrap();
                let _ = stop_rx.await;
            });
            // Dropping the runtime cancels every connection it serves.
        });
        self.addr = ready_rx.recv().unwrap();
        self.running = Some((stop_tx, thread));
    }

    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            thread.join().unwrap();
        }
    }
}

impl Drop for KillableOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What makes a live HLS channel: the company's encoder will not be
/// GStreamer, so the tests play ffmpeg's segments too.
#[derive(Debug, Clone, Copy)]
pub enum HlsEncoder {
    /// `hlssink2`: H.264 in MPEG-TS segments.
    GStreamer,
    /// `ffmpeg -f hls`: H.264 in MPEG-TS segments.
    FfmpegTs,
    /// `ffmpeg -f hls -hls_segment_type fmp4`: H.264 in fragmented MP4.
    FfmpegFmp4,
}

/// A live HLS channel of one-second segments, served as `index.m3u8` by a
/// [`KillableOrigin`] of its own, encoding in real time until dropped.
pub struct HlsChannel {
    pub server: KillableOrigin,
    /// Dropped before the directory it writes into.
    _encoder: HlsEncoding,
    _dir: tempfile::TempDir,
}

enum HlsEncoding {
    /// Encodes as long as it is kept.
    GStreamer {
        _pipeline: phare_demo::media::LiveHls,
    },
    Ffmpeg(std::process::Child),
}

impl Drop for HlsEncoding {
    fn drop(&mut self) {
        if let HlsEncoding::Ffmpeg(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl HlsChannel {
    /// A 320x180, 25 fps channel of `pattern` (a `videotestsrc` pattern
    /// for GStreamer; ffmpeg draws its own test card, `testsrc2`), once it
    /// has two segments.
    pub fn start(encoder: HlsEncoder, pattern: &str) -> HlsChannel {
        let dir = tempfile::tempdir().unwrap();
        let encoding = match encoder {
            HlsEncoder::GStreamer => HlsEncoding::GStreamer {
                _pipeline: phare_demo::media::LiveHls::start(dir.path(), 320, 180, pattern)
                    .unwrap(),
            },
            HlsEncoder::FfmpegTs | HlsEncoder::FfmpegFmp4 => {
                let mut ffmpeg = Command::new("ffmpeg");
                ffmpeg
                    .args(["-nostdin", "-loglevel", "error", "-re", "-f", "lavfi"])
                    .args(["-i", "testsrc2=size=320x180:rate=25"])
                    .args([
                        "-c:v",
                        "libx264",
                        "-preset",
                        "ultrafast",
                        "-pix_fmt",
                        "yuv420p",
                    ])
                    // A keyframe every second, so that every segment starts with one.
                    .args([
                        "-g",
                        "25",
                        "-f",
                        "hls",
                        "-hls_time",
                        "1",
                        "-hls_list_size",
                        "5",
                    ])
                    .args(["-hls_flags", "delete_segments"]);
                if matches!(encoder, HlsEncoder::FfmpegFmp4) {
                    ffmpeg.args(["-hls_segment_type", "fmp4"]);
                }
                let child = ffmpeg
                    .arg(dir.path().join("index.m3u8"))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("the live channels need ffmpeg");
                HlsEncoding::Ffmpeg(child)
            }
        };
        let playlist = dir.path().join("index.m3u8");
        crate::wait_for(
            || {
                std::fs::read_to_string(&playlist).is_ok_and(|text| {
                    text.lines()
                        .filter(|line| line.ends_with(".ts") || line.ends_with(".m4s"))
                        .count()
                        >= 2
                })
            },
            "the HLS channel to have segments",
        );
        HlsChannel {
            server: KillableOrigin::start(dir.path()),
            _encoder: encoding,
            _dir: dir,
        }
    }

    pub fn uri(&self) -> String {
        format!("{}index.m3u8", self.server.url())
    }
}

/// A live RTSP channel (`tests/scripts/rtsp-server.py`, GStreamer's RTSP
/// server) on a loopback port, in a process of its own: stopping it kills
/// the server and its stream at once, as a dead camera or encoder would.
pub struct RtspServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RtspServer {
    pub fn start() -> RtspServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = RtspServer { port, child: None };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/live", self.port)
    }

    /// Serves again, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rtsp-server.py");
        let child = Command::new(script)
            .arg(self.port.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the RTSP server needs python3-gi and gir1.2-gst-rtsp-server-1.0");
        self.child = Some(child);
        crate::wait_for(
            || std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            "the RTSP server to listen",
        );
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU seconds (user + system) and peak resident memory of a process, from
/// `/proc`; `None` once it has exited.
pub fn cpu_and_peak_rss(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let peak_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((ticks / clock_ticks_per_second(), peak_kb / 1024.0))
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
