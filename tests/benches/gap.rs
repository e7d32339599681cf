//! `gap`: what the screen shows between two items (docs/protocol.md §15). A
//! 20-item playlist (same-format clips, clips of other sizes and rates,
//! stills; one second each) played once round and into its first item
//! again by Phare's renderer, and in the same run the naive way (a new
//! `playbin` per item, as Anthias does), both on a `fakesink` with
//! `sync=true` that timestamps every frame it renders.
//!
//! The gap at a boundary is the wall-clock time from the last frame of an
//! item to the first frame of the next: one frame period when seamless.
//! Also counted for Phare: frames dropped or repeated on the output
//! timeline. Writes target/bench/gap.json.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use phare_demo::media::{write_png, write_video_at};
use phare_player::display::{DisplayConfig, VideoSink};
use phare_player::render::{
    MediaKind, OverlayConfig, PlayItem, RenderEvent, RenderSettings, Renderer, StatusScreen,
};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 25;
const FRAME_MS: f64 = 1000.0 / FPS as f64;
/// Every item lasts this long.
const ITEM: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(120);

/// (width, height, fps) of the clips: same-format ones, then mixed ones.
const SAME: &[(u32, u32, u32)] = &[(WIDTH, HEIGHT, FPS); 8];
const MIXED: &[(u32, u32, u32)] = &[
    (640, 360, 30),
    (1920, 1080, 25),
    (320, 240, 15),
    (854, 480, 30),
    (1080, 1920, 25),
    (720, 576, 25),
];
const STILLS: &[(u32, u32)] = &[
    (1280, 720),
    (1920, 1080),
    (800, 600),
    (400, 400),
    (1080, 1920),
    (640, 480),
];
const PATTERNS: &[&str] = &[
    "smpte", "ball", "pinwheel", "spokes", "gradient", "circular",
];

/// The playlist, kinds interleaved: (file, is a still).
fn media(dir: &Path) -> Vec<(PathBuf, bool)> {
    let clip = |i: usize, &(w, h, fps): &(u32, u32, u32)| {
        let path = dir.join(format!("clip-{i}-{w}x{h}-{fps}.mp4"));
        let pattern = PATTERNS[i % PATTERNS.len()];
        write_video_at(&path, 1, (w, h, fps), pattern, &format!("clip {i}")).unwrap();
        (path, false)
    };
    let still = |i: usize, &(w, h): &(u32, u32)| {
        let path = dir.join(format!("still-{i}-{w}x{h}.png"));
        write_png(
            &path,
            w,
            h,
            PATTERNS[i % PATTERNS.len()],
            &format!("still {i}"),
        )
        .unwrap();
        (path, true)
    };
    let same: Vec<_> = SAME.iter().enumerate().map(|(i, f)| clip(i, f)).collect();
    let mixed: Vec<_> = MIXED
        .iter()
        .enumerate()
        .map(|(i, f)| clip(i + 8, f))
        .collect();
    let stills: Vec<_> = STILLS
        .iter()
        .enumerate()
        .map(|(i, f)| still(i, f))
        .collect();
    let mut playlist = Vec::new();
    for i in 0..8 {
        playlist.push(same[i].clone());
        if i < 6 {
            playlist.push(mixed[i].clone());
            playlist.push(stills[i].clone());
        }
    }
    playlist
}

/// When (wall clock) and what (PTS) a sink rendered, frame by frame.
type Rendered = Arc<Mutex<Vec<(Instant, Option<gst::ClockTime>)>>>;

/// A fakesink that renders in real time and records each frame.
fn timed_sink(frames: &Rendered) -> gst::Element {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", true)
        .property("signal-handoffs", true)
        .build()
        .unwrap();
    let frames = Arc::clone(frames);
    sink.connect("handoff", false, move |args| {
        let pts = args[1].get::<gst::Buffer>().ok().and_then(|b| b.pts());
        frames.lock().unwrap().push((Instant::now(), pts));
        None
    });
    sink
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Run {
    /// Gap at each boundary, ms.
    gaps: Vec<f64>,
    dropped: u64,
    duplicated: u64,
}

/// Phare: one output pipeline, a producer per item, the next prepared.
fn phare(playlist: &[(PathBuf, bool)]) -> Run {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let settings = RenderSettings {
        sink: VideoSink::Fake,
        display: DisplayConfig {
            width: WIDTH,
            height: HEIGHT,
            fps: FPS,
            ..DisplayConfig::default()
        },
        overlay: OverlayConfig::default(),
        status: StatusScreen::default(),
    };
    let renderer = Renderer::start_with_sink(settings, timed_sink(&frames), tx).unwrap();
    renderer.play(
        playlist
            .iter()
            .enumerate()
            .map(|(index, (path, still))| PlayItem {
                index,
                path: path.clone(),
                kind: if *still {
                    MediaKind::Image
                } else {
                    MediaKind::Video
                },
                duration: Some(ITEM),
            })
            .collect(),
    );
    // Each start, as the count of frames rendered when it was announced:
    // the probe announces a frame just before the sink renders it.
    let mut starts = Vec::new();
    let begin = Instant::now();
    while starts.len() <= playlist.len() {
        assert!(begin.elapsed() < TIMEOUT, "the playlist did not play round");
        match events.try_recv() {
            Ok(RenderEvent::ItemStarted { .. }) => starts.push(frames.lock().unwrap().len()),
            Ok(RenderEvent::ItemFailed { index, reason }) => panic!("item {index}: {reason}"),
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    std::thread::sleep(ITEM / 2);
    renderer.shutdown();
    let frames = frames.lock().unwrap().clone();

    // The boundary's interval, give or take a frame of announcement jitter.
    let interval = |i: usize| (frames[i].0 - frames[i - 1].0).as_secs_f64() * 1000.0;
    let gaps = starts[1..]
        .iter()
        .map(|&at| {
            (at.saturating_sub(1).max(1)..(at + 2).min(frames.len()))
                .map(interval)
                .fold(0.0, f64::max)
        })
        .collect();
    let frame = gst::ClockTime::from_nseconds(1_000_000_000 / u64::from(FPS));
    let (mut dropped, mut duplicated) = (0, 0);
    for pair in frames.windows(2) {
        let (Some(a), Some(b)) = (pair[0].1, pair[1].1) else {
            continue;
        };
        let step = b.saturating_sub(a);
        if step.is_zero() {
            duplicated += 1;
        } else if step > frame + frame / 2 {
            dropped += step.nseconds() / frame.nseconds() - 1;
        }
    }
    Run {
        gaps,
        dropped,
        duplicated,
    }
}

/// The naive way: a new playbin per item, torn down at its end.
fn naive(playlist: &[(PathBuf, bool)]) -> Run {
    // (first frame, last frame) of each item, wall clock.
    let mut spans = Vec::new();
    for (path, still) in playlist.iter().chain(playlist.first()) {
        let frames = Arc::new(Mutex::new(Vec::new()));
        let audio = gst::ElementFactory::make("fakesink").build().unwrap();
        let playbin = gst::ElementFactory::make("playbin")
            .property(
                "uri",
                gst::glib::filename_to_uri(path, None).unwrap().as_str(),
            )
            .property("video-sink", timed_sink(&frames))
            .property("audio-sink", audio)
            .build()
            .unwrap();
        playbin.set_state(gst::State::Playing).unwrap();
        let bus = playbin.bus().unwrap();
        if *still {
            // A still is one frame: shown, held for the item's duration.
            while frames.lock().unwrap().is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
            let first = frames.lock().unwrap()[0].0;
            std::thread::sleep((first + ITEM).saturating_duration_since(Instant::now()));
            let last = first + ITEM - Duration::from_secs_f64(FRAME_MS / 1000.0);
            spans.push((first, last));
        } else {
            let msg = bus
                .timed_pop_filtered(
                    gst::ClockTime::from_seconds(30),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                )
                .expect("the clip did not end");
            assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
            let frames = frames.lock().unwrap();
            spans.push((frames[0].0, frames[frames.len() - 1].0));
        }
        playbin.set_state(gst::State::Null).unwrap();
    }
    let gaps = spans
        .windows(2)
        .map(|pair| (pair[1].0 - pair[0].1).as_secs_f64() * 1000.0)
        .collect();
    Run {
        gaps,
        dropped: 0,
        duplicated: 0,
    }
}

fn main() {
    gst::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    println!("gap: generating a 20-item playlist...");
    let playlist = media(dir.path());
    assert_eq!(playlist.len(), 20);

    let ours = phare(&playlist);
    let theirs = naive(&playlist);
    let stats = |r: &Run| {
        let mut sorted = r.gaps.clone();
        sorted.sort_by(f64::total_cmp);
        (sorted[sorted.len() - 1], percentile(&sorted, 0.95))
    };
    let (max, p95) = stats(&ours);
    let (base_max, base_p95) = stats(&theirs);
    let ratio = base_max / max;

    println!(
        "gap: 20 items (8 same-format clips, 6 of other sizes/rates, 6 stills), 1 s each, \
         {WIDTH}x{HEIGHT}@{FPS}, fakesink sync=true; {} boundaries",
        ours.gaps.len()
    );
    println!(
        "{:<28} {:>12} {:>12} {:>9} {:>11}",
        "", "max gap ms", "p95 gap ms", "dropped", "duplicated"
    );
    println!(
        "{:<28} {max:>12.1} {p95:>12.1} {:>9} {:>11}",
        "phare (one output)", ours.dropped, ours.duplicated
    );
    println!(
        "{:<28} {base_max:>12.1} {base_p95:>12.1} {:>9} {:>11}",
        "naive (a playbin per item)", "-", "-"
    );
    println!("frame period {FRAME_MS:.1} ms (a seamless boundary); naive/phare max: {ratio:.1}x");

    let report = serde_json::json!({
        "max_gap_ms": max,
        "p95_gap_ms": p95,
        "frame_ms": FRAME_MS,
        "dropped_frames": ours.dropped,
        "duplicated_frames": ours.duplicated,
        "baseline_max_gap_ms": base_max,
        "baseline_p95_gap_ms": base_p95,
        "ratio": ratio,
        "items": playlist.len(),
        "gaps_ms": ours.gaps,
        "baseline_gaps_ms": theirs.gaps,
    });
    phare_tests::write_bench_report("gap", &report);
}
