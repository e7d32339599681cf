//! Renderer tests on real GStreamer pipelines, headless: a fakesink that
//! records every frame it renders (PTS, centre colour), media generated
//! here with videotestsrc, openh264enc, mp4mux and pngenc, live streams
//! sent over loopback UDP and SRT.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::*;
use crate::display::{DisplayConfig, Rotation, VideoSink};
use crate::overlay::{Canvas, OverlayConfig};

/// A small canvas keeps software conversion cheap in debug builds.
const WIDTH: u32 = 320;
const HEIGHT: u32 = 180;
const FPS: u32 = 25;
const FRAME: Duration = Duration::from_millis(1000 / FPS as u64);
/// Generous: a loaded machine is slow, and these are not benchmarks.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a `... ! filesink name=out` pipeline to completion, writing `path`.
fn generate(description: &str, path: &Path) -> PathBuf {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    pipeline
        .by_name("out")
        .unwrap()
        .set_property("location", path.to_str().unwrap());
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("media generation timed out");
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
    path.to_owned()
}

/// An H.264 MP4 of one solid colour (videotestsrc pattern `color`).
fn clip(dir: &Path, color: &str, (w, h): (u32, u32), fps: u32, frames: u32) -> PathBuf {
    generate(
        &format!(
            "videotestsrc num-buffers={frames} pattern={color} \
             ! video/x-raw,width={w},height={h},framerate={fps}/1 \
             ! videoconvert ! openh264enc ! h264parse ! mp4mux ! filesink name=out"
        ),
        &dir.join(format!("{color}-{w}x{h}-{fps}.mp4")),
    )
}

/// The same with an AAC sound track.
fn clip_with_sound(dir: &Path) -> PathBuf {
    generate(
        "videotestsrc num-buffers=25 pattern=green ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! videoconvert ! openh264enc ! h264parse ! mp4mux name=mux ! filesink name=out \
         audiotestsrc num-buffers=43 ! audioconvert ! avenc_aac ! mux.",
        &dir.join("av.mp4"),
    )
}

fn png(dir: &Path, color: &str, (w, h): (u32, u32)) -> PathBuf {
    generate(
        &format!(
            "videotestsrc num-buffers=1 pattern={color} ! video/x-raw,width={w},height={h} \
             ! videoconvert ! pngenc ! filesink name=out"
        ),
        &dir.join(format!("{color}-{w}x{h}.png")),
    )
}

fn item(index: usize, path: &Path, kind: MediaKind, duration_ms: Option<u64>) -> PlayItem {
    PlayItem {
        index,
        path: path.to_owned(),
        kind,
        duration: duration_ms.map(Duration::from_millis),
    }
}

/// Colours of the test media, by the luma (Y) videotestsrc gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Color {
    Black,
    Blue,
    Red,
    Green,
    White,
}

impl Color {
    fn of_luma(y: u8) -> Color {
        [
            (16_i32, Color::Black),
            (41, Color::Blue),
            (81, Color::Red),
            (145, Color::Green),
            (235, Color::White),
        ]
        .into_iter()
        .min_by_key(|(luma, _)| (luma - i32::from(y)).abs())
        .unwrap()
        .1
    }
}

/// One frame as the sink rendered it.
#[derive(Debug, Clone, Copy)]
struct Frame {
    pts: gst::ClockTime,
    color: Color,
}

/// A renderer on a recording fakesink.
struct Rig {
    renderer: Renderer,
    events: UnboundedReceiver<RenderEvent>,
    frames: Arc<Mutex<Vec<Frame>>>,
}

fn settings() -> RenderSettings {
    RenderSettings {
        sink: VideoSink::Fake,
        display: DisplayConfig {
            width: WIDTH,
            height: HEIGHT,
            fps: FPS,
            live_fallback_timeout_ms: 1000,
            ..DisplayConfig::default()
        },
        overlay: OverlayConfig::default(),
        status: StatusScreen {
            device_id: "lobby-1".into(),
            fleet: "acme".into(),
            broker: None,
            enrolment_code: crate::overlay::enrolment_code("acme", "lobby-1"),
            message: None,
        },
    }
}

impl Rig {
    fn start() -> Rig {
        Rig::with(settings())
    }

    fn with(settings: RenderSettings) -> Rig {
        gst::init().unwrap();
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", true)
            .property("signal-handoffs", true)
            .build()
            .unwrap();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&frames);
        sink.connect("handoff", false, move |args| {
            let buffer = args[1].get::<gst::Buffer>().unwrap();
            let pad = args[2].get::<gst::Pad>().unwrap();
            let info = gst_video::VideoInfo::from_caps(&pad.current_caps().unwrap()).unwrap();
            let frame = gst_video::VideoFrame::from_buffer_readable(buffer.clone(), &info).unwrap();
            let stride = frame.plane_stride()[0] as usize;
            let luma = frame.plane_data(0).unwrap()
                [(info.height() as usize / 2) * stride + info.width() as usize / 2];
            record.lock().unwrap().push(Frame {
                pts: buffer.pts().unwrap(),
                color: Color::of_luma(luma),
            });
            None
        });
        let (tx, events) = unbounded_channel();
        Rig {
            renderer: Renderer::start_with_sink(settings, sink, tx).unwrap(),
            events,
            frames,
        }
    }

    async fn next_event(&mut self) -> RenderEvent {
        tokio::time::timeout(TIMEOUT, self.events.recv())
            .await
            .expect("no render event in time")
            .expect("event channel closed")
    }

    /// Skips events until `wanted` comes.
    async fn wait_event(&mut self, wanted: RenderEvent) {
        loop {
            let event = self.next_event().await;
            if event == wanted {
                return;
            }
            // Shown only when the test fails.
            eprintln!("while waiting for {wanted:?}: {event:?}");
        }
    }

    fn frames(&self) -> Vec<Frame> {
        self.frames.lock().unwrap().clone()
    }

    /// Waits until the sink renders a frame of `color`.
    async fn wait_color(&self, color: Color) {
        self.wait_frame(|c| c == color, &format!("{color:?}")).await;
    }

    /// Waits until the sink renders a frame whose colour passes `test`.
    async fn wait_frame(&self, test: impl Fn(Color) -> bool, what: &str) {
        let begin = Instant::now();
        let seen = self.frames.lock().unwrap().len();
        while !self.frames.lock().unwrap()[seen..]
            .iter()
            .any(|f| test(f.color))
        {
            assert!(begin.elapsed() < TIMEOUT, "{what} never showed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A screenshot, decoded back to pixels.
    fn screenshot(&self) -> Canvas {
        let shot = self.renderer.screenshot().unwrap();
        assert!(shot.png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(shot.jpeg_thumbnail.starts_with(&[0xFF, 0xD8]));
        assert!(shot.jpeg_thumbnail.len() <= 512 * 1024);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &shot.png).unwrap();
        output::load_image(file.path()).unwrap()
    }
}

fn started(index: usize) -> RenderEvent {
    RenderEvent::ItemStarted { index }
}

fn ended(index: usize, completed: bool) -> RenderEvent {
    RenderEvent::ItemEnded { index, completed }
}

/// BGRA pixel → its colour class, by the same luma as the frames.
fn color_at(canvas: &Canvas, x: u32, y: u32) -> Color {
    let [b, g, r, _] = canvas.pixel(x, y);
    let luma =
        16.0 + (65.481 * f64::from(r) + 128.553 * f64::from(g) + 24.966 * f64::from(b)) / 255.0;
    Color::of_luma(luma.round() as u8)
}

#[tokio::test]
async fn playlist_plays_in_order_and_loops() {
    let dir = tempfile::tempdir().unwrap();
    let red = clip(dir.path(), "red", (320, 240), 25, 25);
    let blue = png(dir.path(), "blue", (320, 180));
    let mut rig = Rig::start();
    rig.renderer.play(vec![
        item(0, &red, MediaKind::Video, None),
        item(1, &blue, MediaKind::Image, Some(500)),
        item(2, &red, MediaKind::Video, Some(400)),
    ]);
    let expected = [
        started(0),
        ended(0, true),
        started(1),
        ended(1, true),
        started(2),
        ended(2, true),
        started(0),
    ];
    let begin = Instant::now();
    for want in expected {
        assert_eq!(rig.next_event().await, want);
    }
    // Real time: 1 s + 0.5 s + 0.4 s of content before item 0 returns.
    assert!(
        begin.elapsed() >= Duration::from_millis(1700),
        "{:?}",
        begin.elapsed()
    );
    rig.renderer.shutdown();
    assert_eq!(rig.events.recv().await, Some(ended(0, false)));
}

/// Different sizes, rates and kinds, twice round: every frame follows the
/// one before on the output timeline (no gap at any boundary), none is
/// black, each item keeps its duration to the frame, and items come in order.
#[tokio::test]
async fn boundaries_are_gapless_across_sizes_rates_and_stills() {
    let dir = tempfile::tempdir().unwrap();
    let playlist = [
        (
            clip(dir.path(), "red", (320, 240), 25, 25),
            MediaKind::Video,
            None,
            Color::Red,
            25,
        ),
        (
            clip(dir.path(), "green", (640, 360), 30, 30),
            MediaKind::Video,
            None,
            Color::Green,
            25,
        ),
        (
            png(dir.path(), "blue", (200, 300)),
            MediaKind::Image,
            Some(600),
            Color::Blue,
            15,
        ),
        (
            clip(dir.path(), "white", (160, 120), 15, 30),
            MediaKind::Video,
            Some(800),
            Color::White,
            20,
        ),
    ];
    let mut rig = Rig::start();
    rig.renderer.play(
        playlist
            .iter()
            .enumerate()
            .map(|(i, (path, kind, ms, _, _))| item(i, path, kind.clone(), *ms))
            .collect(),
    );
    // Two full rounds, then the first item again.
    for round in 0..2 {
        for i in 0..playlist.len() {
            rig.wait_event(ended(i, true)).await;
            eprintln!("round {round} item {i} done");
        }
    }
    rig.wait_event(started(0)).await;
    tokio::time::sleep(FRAME * 5).await;
    let frames = rig.frames();

    let frame_ns = gst::ClockTime::from_nseconds(FRAME.as_nanos() as u64);
    for pair in frames.windows(2) {
        let step = pair[1].pts.saturating_sub(pair[0].pts);
        assert!(
            step > gst::ClockTime::ZERO && step <= frame_ns * 2,
            "gap on the timeline: {pair:?}"
        );
    }
    assert!(
        frames.iter().all(|f| f.color != Color::Black),
        "a black frame showed"
    );

    // Runs of one colour: the playlist in order, each of its length.
    let mut runs: Vec<(Color, usize)> = Vec::new();
    for frame in &frames {
        match runs.last_mut() {
            Some((color, n)) if *color == frame.color => *n += 1,
            _ => runs.push((frame.color, 1)),
        }
    }
    let start = runs.iter().position(|(c, _)| *c == Color::Red).unwrap();
    let complete = &runs[start..start + 2 * playlist.len()];
    for (k, (color, length)) in complete.iter().enumerate() {
        let (_, _, _, want_color, want_frames) = &playlist[k % playlist.len()];
        assert_eq!(color, want_color, "runs: {runs:?}");
        assert!(
            length.abs_diff(*want_frames) <= 1,
            "{color:?} lasted {length} frames, not {want_frames}: {runs:?}"
        );
    }
}

#[tokio::test]
async fn a_single_item_loops_seamlessly() {
    let dir = tempfile::tempdir().unwrap();
    let red = clip(dir.path(), "red", (320, 180), 25, 10);
    let mut rig = Rig::start();
    rig.renderer
        .play(vec![item(0, &red, MediaKind::Video, None)]);
    for _ in 0..4 {
        rig.wait_event(started(0)).await;
    }
    let frames = rig.frames();
    let frame_ns = gst::ClockTime::from_nseconds(FRAME.as_nanos() as u64);
    for pair in frames.windows(2) {
        assert!(pair[1].pts - pair[0].pts <= frame_ns * 2, "gap: {pair:?}");
    }
    assert!(frames.len() >= 30);
}

/// A new playlist takes over from the one playing at the next frame: its
/// first frame follows the last one shown of the old (no gap, no black
/// frame), and none of the old one's queued frames shows after it.
#[tokio::test]
async fn a_new_playlist_takes_over_at_the_next_frame() {
    let dir = tempfile::tempdir().unwrap();
    let red = clip(dir.path(), "red", (320, 180), 25, 250);
    let green = png(dir.path(), "green", (200, 300));
    let mut rig = Rig::start();
    rig.renderer
        .play(vec![item(0, &red, MediaKind::Video, None)]);
    rig.wait_event(started(0)).await;
    tokio::time::sleep(FRAME * 10).await;

    let asked = Instant::now();
    rig.renderer
        .play(vec![item(0, &green, MediaKind::Image, Some(5000))]);
    rig.wait_event(ended(0, false)).await;
    rig.wait_event(started(0)).await;
    // Generous: the switch benchmark measures it (make bench-switch).
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    rig.wait_color(Color::Green).await;
    tokio::time::sleep(FRAME * 5).await;

    let frames = rig.frames();
    let switch = frames.iter().position(|f| f.color == Color::Green).unwrap();
    let (last_red, first_green) = (frames[switch - 1], frames[switch]);
    assert_eq!(last_red.color, Color::Red, "{frames:?}");
    let frame_ns = gst::ClockTime::from_nseconds(FRAME.as_nanos() as u64);
    let step = first_green.pts.saturating_sub(last_red.pts);
    assert!(
        step > gst::ClockTime::ZERO && step <= frame_ns * 2,
        "a gap at the switch: {last_red:?} then {first_green:?}"
    );
    assert!(
        frames[switch..].iter().all(|f| f.color == Color::Green),
        "an old frame after the switch: {frames:?}"
    );
    assert!(
        frames.iter().all(|f| f.color != Color::Black),
        "a black frame showed"
    );
}

#[tokio::test]
async fn vp9_in_webm_and_h265_in_matroska_play_too() {
    let dir = tempfile::tempdir().unwrap();
    let encode = |name: &str, encoder: &str| {
        generate(
            &format!(
                "videotestsrc num-buffers=10 pattern=red ! video/x-raw,width=320,height=180,framerate=25/1 \
                 ! videoconvert ! {encoder} ! filesink name=out"
            ),
            &dir.path().join(name),
        )
    };
    let webm = encode("clip.webm", "vp9enc deadline=1 ! webmmux");
    let mkv = encode(
        "clip.mkv",
        "x265enc speed-preset=ultrafast ! h265parse ! matroskamux",
    );
    let mut rig = Rig::start();
    rig.renderer.play(vec![
        item(0, &webm, MediaKind::Video, None),
        item(1, &mkv, MediaKind::Video, None),
    ]);
    for index in [0, 1] {
        assert_eq!(rig.next_event().await, started(index));
        assert_eq!(rig.next_event().await, ended(index, true));
    }
    assert_eq!(rig.next_event().await, started(0));
    assert!(rig.frames().iter().all(|f| f.color == Color::Red));
}

#[tokio::test]
async fn sound_plays_along_without_holding_up_the_video() {
    let dir = tempfile::tempdir().unwrap();
    let av = clip_with_sound(dir.path());
    let mut settings = settings();
    settings.display.audio = true;
    settings.display.volume = 0.5;
    let mut rig = Rig::with(settings);
    rig.renderer
        .play(vec![item(0, &av, MediaKind::Video, None)]);
    for _ in 0..2 {
        rig.wait_event(started(0)).await;
        rig.wait_event(ended(0, true)).await;
    }
    rig.renderer.set_volume(0.0);
    rig.wait_event(started(0)).await;
}

#[tokio::test]
async fn broken_items_fail_and_a_broken_playlist_shows_the_status_screen() {
    let dir = tempfile::tempdir().unwrap();
    let red = clip(dir.path(), "red", (320, 240), 25, 25);
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(
        &garbage,
        b"this is not a video file at all, just bytes".repeat(100),
    )
    .unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let truncated = dir.path().join("truncated.mp4");
    let whole = std::fs::read(&red).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() / 3]).unwrap();
    let bad_png = dir.path().join("bad.png");
    let mut png_bytes = std::fs::read(png(dir.path(), "blue", (64, 64))).unwrap();
    png_bytes.truncate(40);
    std::fs::write(&bad_png, png_bytes).unwrap();

    let mut rig = Rig::start();
    rig.renderer.play(vec![
        item(0, &garbage, MediaKind::Video, None),
        item(1, &red, MediaKind::Video, Some(400)),
        item(2, &empty, MediaKind::Video, None),
        item(3, &bad_png, MediaKind::Image, Some(500)),
    ]);
    let mut failed = Vec::new();
    let mut starts = 0;
    while starts < 2 {
        match rig.next_event().await {
            RenderEvent::ItemFailed { index, reason } => {
                assert!(!reason.is_empty());
                failed.push(index);
            }
            RenderEvent::ItemStarted { index } => {
                assert_eq!(index, 1);
                starts += 1;
            }
            RenderEvent::ItemEnded { index, completed } => assert!(index == 1 && completed),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(failed, [0, 2, 3, 0]);

    // A playlist where everything fails reports each failure once, then
    // shows the status screen (with a decodable QR code) instead of black.
    rig.renderer.play(vec![
        item(0, &garbage, MediaKind::Video, None),
        item(1, &truncated, MediaKind::Video, None),
    ]);
    assert_eq!(rig.next_event().await, ended(1, false));
    let mut failures = Vec::new();
    while failures.len() < 2 {
        match rig.next_event().await {
            RenderEvent::ItemFailed { index, .. } => failures.push(index),
            RenderEvent::ItemStarted { index: 1 } | RenderEvent::ItemEnded { index: 1, .. } => {
                // The truncated clip may show its first frames before failing.
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(failures, [0, 1]);
    let quiet = tokio::time::timeout(Duration::from_millis(700), rig.events.recv()).await;
    assert!(quiet.is_err(), "renderer kept going: {quiet:?}");
    tokio::time::sleep(FRAME * 5).await;
    assert_eq!(
        decode_qr(&rig.screenshot()),
        settings().status.enrolment_uri()
    );
}

/// The QR code in a screenshot, decoded.
fn decode_qr(canvas: &Canvas) -> String {
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(
        canvas.width() as usize,
        canvas.height() as usize,
        |x, y| {
            let [b, g, r, _] = canvas.pixel(x as u32, y as u32);
            ((u16::from(r) + u16::from(g) + u16::from(b)) / 3) as u8
        },
    );
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on screen");
    grids[0].decode().unwrap().1
}

#[tokio::test]
async fn the_status_screen_carries_a_qr_code_and_updates() {
    let mut settings = settings();
    // Large enough for the text beside the code.
    (settings.display.width, settings.display.height) = (640, 360);
    let rig = Rig::with(settings);
    let mut info = StatusScreen {
        device_id: "hall-2".into(),
        fleet: "acme".into(),
        broker: Some("mqtt://broker-a:1883".into()),
        enrolment_code: "ABCD-2345".into(),
        message: Some("Aucune programmation — en attente".into()),
    };
    rig.renderer.show_status_screen(info.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = rig.screenshot();
    assert_eq!(decode_qr(&first), info.enrolment_uri());

    info.device_id = "hall-3".into();
    rig.renderer.show_status_screen(info.clone());
    let begin = Instant::now();
    while decode_qr(&rig.screenshot()) != info.enrolment_uri() {
        assert!(
            begin.elapsed() < TIMEOUT,
            "the status screen was not updated"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn overlays_and_alerts_are_in_the_screenshot() {
    let dir = tempfile::tempdir().unwrap();
    let green = clip(dir.path(), "green", (320, 180), 25, 50);
    let logo = png(dir.path(), "white", (64, 32));
    let mut settings = settings();
    settings.overlay = OverlayConfig {
        clock: true,
        ticker: Some("Bienvenue à Zürich — ¿Qué tal?".into()),
        logo: Some(logo),
    };
    let mut rig = Rig::with(settings);
    rig.renderer
        .play(vec![item(0, &green, MediaKind::Video, None)]);
    rig.wait_event(started(0)).await;
    tokio::time::sleep(FRAME * 5).await;

    let shot = rig.screenshot();
    let (w, h) = (shot.width(), shot.height());
    assert_eq!(
        color_at(&shot, w / 2, h / 2),
        Color::Green,
        "the video shows"
    );
    // The ticker's band darkens the bottom; the logo whitens the top-left.
    assert_ne!(
        color_at(&shot, w / 2, h - 3),
        Color::Green,
        "no ticker band"
    );
    assert_eq!(color_at(&shot, 8, 8), Color::White, "no logo");
    // The clock: white digits on a shaded box in the top-right corner.
    let clock_lit = (h / 60..h / 6)
        .flat_map(|y| (w - w / 5..w - 4).map(move |x| (x, y)))
        .filter(|&(x, y)| color_at(&shot, x, y) == Color::White)
        .count();
    assert!(clock_lit > 10, "no clock digits");

    rig.renderer.set_alert(Some(AlertOverlay {
        message: "Exercice d'évacuation".into(),
        style: AlertStyle::Banner,
    }));
    tokio::time::sleep(FRAME * 5).await;
    let banner = rig.screenshot();
    assert_eq!(
        color_at(&banner, w / 2, h / 2),
        Color::Green,
        "a banner leaves the video"
    );
    let [b, g, r, _] = banner.pixel(2, 2);
    assert!(
        r > 150 && g < 60 && b < 60,
        "no red banner: {:?}",
        (r, g, b)
    );

    rig.renderer.set_alert(Some(AlertOverlay {
        message: "Évacuez le bâtiment".into(),
        style: AlertStyle::Fullscreen,
    }));
    rig.wait_frame(|c| c != Color::Green, "the alert").await;
    let full = rig.screenshot();
    assert_ne!(
        color_at(&full, w / 2, h / 4),
        Color::Green,
        "a full-screen alert hides the video"
    );
    assert_ne!(color_at(&full, w / 2, h - 3), Color::Green);

    rig.renderer.set_alert(None);
    rig.wait_color(Color::Green).await;
}

#[tokio::test]
async fn display_off_stops_everything_and_on_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let red = clip(dir.path(), "red", (320, 180), 25, 25);
    let blue = png(dir.path(), "blue", (320, 180));
    let mut rig = Rig::start();
    rig.renderer.play(vec![
        item(0, &red, MediaKind::Video, None),
        item(1, &blue, MediaKind::Image, Some(5000)),
    ]);
    rig.wait_event(started(1)).await;
    rig.renderer.set_display(false);
    rig.wait_event(ended(1, false)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let count = rig.frames().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rig.frames().len(),
        count,
        "frames still flow with the display off"
    );
    assert!(matches!(
        rig.renderer.screenshot(),
        Err(RenderError::NoFrame(_))
    ));

    rig.renderer.set_display(true);
    assert_eq!(
        rig.next_event().await,
        started(1),
        "the interrupted item resumes"
    );
    rig.wait_color(Color::Blue).await;
}

#[tokio::test]
async fn rotation_turns_the_canvas() {
    let dir = tempfile::tempdir().unwrap();
    let red = clip(dir.path(), "red", (320, 180), 25, 50);
    let mut rig = Rig::start();
    rig.renderer
        .play(vec![item(0, &red, MediaKind::Video, None)]);
    rig.wait_event(started(0)).await;
    tokio::time::sleep(FRAME * 3).await;
    // Landscape content fills the landscape panel...
    assert_eq!(color_at(&rig.screenshot(), 10, HEIGHT / 2), Color::Red);

    // ...and, turned a quarter, sits in a band down its middle.
    rig.renderer.set_rotation(Rotation::Quarter);
    rig.wait_event(started(0)).await;
    tokio::time::sleep(FRAME * 3).await;
    let turned = rig.screenshot();
    assert_eq!(
        (turned.width(), turned.height()),
        (WIDTH, HEIGHT),
        "the panel keeps its mode"
    );
    assert_eq!(color_at(&turned, 10, HEIGHT / 2), Color::Black);
    assert_eq!(color_at(&turned, WIDTH / 2, HEIGHT / 2), Color::Red);
}

/// A live stream sent to loopback, until dropped. Its encoder is asked
/// for a key frame every second, as a broadcast encoder does: openh264enc
/// fed live makes one key frame only, and a receiver that joins later (an
/// SRT caller, a restarted source) could never start decoding.
struct Sender {
    pipeline: gst::Pipeline,
    key_frames: Option<std::thread::JoinHandle<()>>,
    stop: std::sync::mpsc::Sender<()>,
}

impl Sender {
    fn start(description: &str) -> Sender {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(description)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let encoder = pipeline
            .by_name("encoder")
            .expect("the sender names its encoder `encoder`");
        pipeline.set_state(gst::State::Playing).unwrap();
        let (stop, stopped) = std::sync::mpsc::channel();
        let key_frames = std::thread::spawn(move || {
            let sink = encoder.static_pad("sink").unwrap();
            while stopped.recv_timeout(Duration::from_secs(1)).is_err() {
                let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                    .all_headers(true)
                    .build();
                sink.send_event(event);
            }
        });
        Sender {
            pipeline,
            key_frames: Some(key_frames),
            stop,
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.key_frames.take() {
            let _ = thread.join();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Plays `uri` fed by `sender` (green), with a blue still as fallback:
/// live, then the fallback when the sender stops, then live again.
async fn live_falls_back_and_returns(sender: &str, uri: &str) {
    let dir = tempfile::tempdir().unwrap();
    let blue = png(dir.path(), "blue", (320, 180));
    let mut stream = Some(Sender::start(sender));
    let mut rig = Rig::start();
    let live = |state| RenderEvent::LiveState { index: 0, state };
    rig.renderer.play(vec![item(
        0,
        Path::new(""),
        MediaKind::Live {
            uri: uri.into(),
            fallback: Some(blue),
        },
        None,
    )]);
    rig.wait_event(live(LiveState::Playing)).await;
    rig.wait_color(Color::Green).await;

    drop(stream.take());
    rig.wait_event(live(LiveState::Fallback)).await;
    rig.wait_color(Color::Blue).await;

    stream.replace(Sender::start(sender));
    rig.wait_event(live(LiveState::Playing)).await;
    rig.wait_color(Color::Green).await;
    drop(stream);
}

const LIVE_GREEN: &str = "videotestsrc is-live=true pattern=green \
    ! video/x-raw,width=320,height=180,framerate=25/1 ! videoconvert \
    ! openh264enc name=encoder ! h264parse config-interval=-1 \
    ! mpegtsmux alignment=7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_live_falls_back_and_returns() {
    let port = free_udp_port();
    let sender = format!("{LIVE_GREEN} ! udpsink host=127.0.0.1 port={port}");
    live_falls_back_and_returns(&sender, &format!("udp://127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_live_falls_back_and_returns() {
    let port = free_udp_port();
    let sender = format!("{LIVE_GREEN} ! rtpmp2tpay ! udpsink host=127.0.0.1 port={port}");
    live_falls_back_and_returns(
        &sender,
        &format!("rtp://127.0.0.1:{port}?encoding-name=MP2T"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_live_falls_back_and_returns() {
    let port = free_udp_port();
    // The sender listens, as an SRT gateway does; the player calls it.
    let sender = format!(
        "{LIVE_GREEN} ! srtsink uri=srt://127.0.0.1:{port}?mode=listener \
         wait-for-connection=false"
    );
    live_falls_back_and_returns(&sender, &format!("srt://127.0.0.1:{port}")).await;
}
