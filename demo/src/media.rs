//! Test and demo media, generated with GStreamer so `phare-demo` and the
//! end-to-end tests need no fixture files: H.264 MP4 clips and PNG stills
//! showing a `videotestsrc` pattern with a big label burnt in, so whoever
//! watches a demo screen can tell which item is playing.
//!
//! Only fixed, validated tokens go into the `gst::parse::launch` description;
//! the label and the output path are set as properties on named elements
//! afterwards, so no text needs escaping and none can inject pipeline syntax.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use gst::prelude::*;
use gstreamer as gst;

/// Frame rate of generated videos and streams, unless said otherwise.
const FPS: u32 = 25;

/// Writes an H.264 MP4 of `seconds` at width x height, 25 fps, showing
/// videotestsrc `pattern` (e.g. "smpte", "ball", "snow") with a big `label`
/// text burnt in (textoverlay, if available; pango is in plugins-base) so a
/// human watching the demo sees which item plays.
pub fn write_video(
    path: &Path,
    seconds: u32,
    width: u32,
    height: u32,
    pattern: &str,
    label: &str,
) -> anyhow::Result<()> {
    write_video_at(path, seconds, (width, height, FPS), pattern, label)
}

/// Like [`write_video`], at (width, height, frames per second).
pub fn write_video_at(
    path: &Path,
    seconds: u32,
    (width, height, fps): (u32, u32, u32),
    pattern: &str,
    label: &str,
) -> anyhow::Result<()> {
    ensure!(seconds > 0, "a video needs at least one second");
    ensure!((1..=120).contains(&fps), "invalid frame rate {fps}");
    let frames = seconds
        .checked_mul(fps)
        .context("video duration is too long")?;
    let description = format!(
        "{source} ! videoconvert ! video/x-raw,format=I420 ! openh264enc name=encoder \
         ! h264parse ! mp4mux ! filesink name=out",
        source = source(Some(frames), (width, height, fps), pattern)?,
    );
    // Encoding is slower than real time for large frames on small machines;
    // allow far more than that.
    let timeout = gst::ClockTime::from_seconds(60 + 10 * u64::from(seconds));
    let _quiet = encoder_drain::Quiet::begin();
    run(&description, path, label, timeout, |pipeline| {
        // openh264enc defaults to 128 kbit/s, which smears even test
        // patterns; about 2 bits per pixel per second looks clean.
        let bitrate = (u64::from(width) * u64::from(height) * 2).clamp(256_000, 20_000_000);
        element(pipeline, "encoder")?.set_property("bitrate", u32::try_from(bitrate)?);
        Ok(())
    })
    .with_context(|| format!("cannot write video {}", path.display()))
}

/// Writes a PNG still of width x height with the pattern and label.
pub fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    pattern: &str,
    label: &str,
) -> anyhow::Result<()> {
    let description = format!(
        "{source} ! videoconvert ! pngenc ! filesink name=out",
        source = source(Some(1), (width, height, FPS), pattern)?,
    );
    run(
        &description,
        path,
        label,
        gst::ClockTime::from_seconds(60),
        |_| Ok(()),
    )
    .with_context(|| format!("cannot write image {}", path.display()))
}

/// Runs a complete `... ! filesink name=out` launch description to its
/// end, writing `path`: for test and benchmark media that the functions
/// above do not make. The description must be the caller's own constant.
pub fn write_custom(description: &str, path: &Path, timeout: Duration) -> anyhow::Result<()> {
    gst::init()?;
    let timeout = gst::ClockTime::try_from(timeout)?;
    run(description, path, "", timeout, |_| Ok(()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A live HLS channel written into a directory (for an HTTP origin to
/// serve as `index.m3u8`), as an intranet WebTV encoder would: one-second
/// H.264 segments of a `videotestsrc` pattern, in real time, until dropped.
pub struct LiveHls {
    pipeline: gst::Pipeline,
}

impl LiveHls {
    pub fn start(dir: &Path, width: u32, height: u32, pattern: &str) -> anyhow::Result<LiveHls> {
        let dir = dir
            .to_str()
            .with_context(|| format!("path is not UTF-8: {}", dir.display()))?;
        let source = source(None, (width, height, FPS), pattern)?;
        // A keyframe every second, so that every segment starts with one.
        let description = format!(
            "{source} ! videoconvert ! video/x-raw,format=I420 ! openh264enc gop-size={FPS} \
             ! h264parse ! hlssink2 name=out target-duration=1 playlist-length=5 max-files=10"
        );
        let pipeline = gst::parse::launch(&description)
            .with_context(|| format!("cannot build pipeline `{description}`"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow::anyhow!("`{description}` is not a pipeline"))?;
        let sink = element(&pipeline, "out")?;
        sink.set_property("location", format!("{dir}/segment%05d.ts"));
        sink.set_property("playlist-location", format!("{dir}/index.m3u8"));
        if let Some(overlay) = pipeline.by_name("label") {
            overlay.set_property("text", "live");
        }
        let bus = pipeline.bus().context("pipeline has no bus")?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| anyhow::anyhow!("{}", pending_error(&bus)))?;
        Ok(LiveHls { pipeline })
    }
}

impl Drop for LiveHls {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The launch description of `frames` frames of `pattern` (endless, in
/// real time, for `None`), labelled by an element named `label` when
/// textoverlay exists.
fn source(
    frames: Option<u32>,
    (width, height, fps): (u32, u32, u32),
    pattern: &str,
) -> anyhow::Result<String> {
    gst::init()?;
    ensure!(
        width > 0 && height > 0 && width <= i32::MAX as u32 && height <= i32::MAX as u32,
        "invalid frame size {width}x{height}"
    );
    // The pattern is spliced into the description, so it must be a bare
    // token; GStreamer itself rejects unknown pattern names.
    ensure!(
        !pattern.is_empty()
            && pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "invalid videotestsrc pattern {pattern:?}"
    );
    let length = match frames {
        Some(frames) => format!("num-buffers={frames}"),
        None => "is-live=true".to_string(),
    };
    let mut description = format!(
        "videotestsrc {length} pattern={pattern} \
         ! video/x-raw,width={width},height={height},framerate={fps}/1"
    );
    if gst::ElementFactory::find("textoverlay").is_some() {
        // Readable from across a room, yet a short label fits on one or two
        // lines (36 points at 720 lines).
        description.push_str(&format!(
            " ! textoverlay name=label valignment=center halignment=center \
             shaded-background=true font-desc=\"Sans Bold {}\"",
            (height / 20).max(8)
        ));
    } else {
        tracing::warn!("textoverlay (pango) is not installed: media will carry no label");
    }
    Ok(description)
}

/// Runs `description` (with elements `out`, and `label` if present) to EOS,
/// writing `path`. `configure` sets extra properties before it starts.
fn run(
    description: &str,
    path: &Path,
    label: &str,
    timeout: gst::ClockTime,
    configure: impl FnOnce(&gst::Pipeline) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let pipeline = gst::parse::launch(description)
        .with_context(|| format!("cannot build pipeline `{description}`"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("`{description}` is not a pipeline"))?;
    let location = path
        .to_str()
        .with_context(|| format!("path is not UTF-8: {}", path.display()))?;
    element(&pipeline, "out")?.set_property("location", location);
    if let Some(overlay) = pipeline.by_name("label") {
        overlay.set_property("text", label);
    }
    configure(&pipeline)?;

    let result = play_to_eos(&pipeline, timeout);
    // mp4mux wrote its index at EOS; Null only releases the resources.
    let _ = pipeline.set_state(gst::State::Null);
    if result.is_err() {
        // Never leave a truncated file that looks like real media.
        let _ = std::fs::remove_file(path);
    }
    result
}

fn play_to_eos(pipeline: &gst::Pipeline, timeout: gst::ClockTime) -> anyhow::Result<()> {
    let bus = pipeline.bus().context("pipeline has no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| anyhow::anyhow!("{}", pending_error(&bus)))?;
    let msg = bus
        .timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error])
        .with_context(|| format!("no end of stream within {timeout}"))?;
    match msg.view() {
        gst::MessageView::Error(err) => bail!("{}", describe(err)),
        _ => Ok(()),
    }
}

/// The error an element posted when refusing to start, if any.
fn pending_error(bus: &gst::Bus) -> String {
    bus.pop_filtered(&[gst::MessageType::Error])
        .and_then(|msg| match msg.view() {
            gst::MessageView::Error(err) => Some(describe(err)),
            _ => None,
        })
        .unwrap_or_else(|| "pipeline failed to start".into())
}

fn describe(err: &gst::message::Error) -> String {
    let source = err.src().map(|s| s.name().to_string()).unwrap_or_default();
    match err.debug() {
        Some(debug) => format!("{source}: {} ({debug})", err.error()),
        None => format!("{source}: {}", err.error()),
    }
}

fn element(pipeline: &gst::Pipeline, name: &str) -> anyhow::Result<gst::Element> {
    pipeline
        .by_name(name)
        .with_context(|| format!("pipeline has no element `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_playable_looking_files() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("clip.mp4");
        let image = dir.path().join("still.png");
        write_video(&video, 1, 320, 240, "smpte", "Item \"1\" ! name=x").unwrap();
        write_png(&image, 320, 180, "ball", "Still ! \\ 2").unwrap();

        let mp4 = std::fs::read(&video).unwrap();
        assert!(mp4.len() > 1000, "mp4 is {} bytes", mp4.len());
        assert!(mp4[..64].windows(4).any(|w| w == b"ftyp"), "no ftyp box");
        let png = std::fs::read(&image).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "no PNG magic");
    }

    #[test]
    fn rejects_bad_input_with_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let err = write_png(&path, 64, 64, "ball ! fakesink", "x").unwrap_err();
        assert!(format!("{err:#}").contains("pattern"), "{err:#}");
        let err = write_png(&path, 64, 64, "no-such-pattern", "x").unwrap_err();
        assert!(format!("{err:#}").contains("no-such-pattern"), "{err:#}");
        assert!(!path.exists());
    }
}

/// openh264 prints `[OpenH264] this = 0x…, Error:CWelsH264SVCEncoder::
/// EncodeFrame(), cmInitParaError.` on stderr each time GStreamer's
/// `openh264enc` drains it at the end of a video: every frame was written
/// and the file is sound, but the line alarms whoever reads the output of
/// `phare-demo`. While videos are encoded, stderr passes through a filter
/// that drops that line and forwards everything else as it comes.
mod encoder_drain {
    use std::fs::File;
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::OwnedFd;
    use std::sync::Mutex;
    use std::sync::mpsc;
    use std::time::Duration;

    /// The filter in place: the real stderr, and how many encodings use
    /// the filter (tests encode on several threads at once).
    struct Installed {
        real_stderr: OwnedFd,
        users: usize,
        forwarder_done: mpsc::Receiver<()>,
    }

    static INSTALLED: Mutex<Option<Installed>> = Mutex::new(None);

    /// How long the last user waits for the filter to pass on what is left.
    const FLUSH_WAIT: Duration = Duration::from_secs(1);

    pub fn is_drain_noise(line: &[u8]) -> bool {
        line.starts_with(b"[OpenH264]") && line.windows(15).any(|w| w == b"cmInitParaError")
    }

    /// Holds the filter in place while alive; without one (stderr cannot
    /// be redirected), output is simply not filtered.
    pub struct Quiet(bool);

    impl Quiet {
        pub fn begin() -> Quiet {
            let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(filter) = installed.as_mut() {
                filter.users += 1;
                return Quiet(true);
            }
            match install() {
                Ok(filter) => {
                    *installed = Some(filter);
                    Quiet(true)
                }
                Err(_) => Quiet(false),
            }
        }
    }

    fn install() -> std::io::Result<Installed> {
        let (reader, writer) = std::io::pipe()?;
        let real_stderr = nix::unistd::dup(std::io::stderr())?;
        let mut out = File::from(real_stderr.try_clone()?);
        nix::unistd::dup2_stderr(&writer)?;
        drop(writer);
        let (done, forwarder_done) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).split(b'\n').map_while(Result::ok) {
                if !is_drain_noise(&line) {
                    let _ = out.write_all(&line).and_then(|()| out.write_all(b"\n"));
                }
            }
            let _ = done.send(());
        });
        Ok(Installed {
            real_stderr,
            users: 1,
            forwarder_done,
        })
    }

    impl Drop for Quiet {
        fn drop(&mut self) {
            if !self.0 {
                return;
            }
            let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
            let Some(filter) = installed.as_mut() else {
                return;
            };
            filter.users -= 1;
            if filter.users > 0 {
                return;
            }
            let filter = installed.take().expect("checked above");
            let _ = nix::unistd::dup2_stderr(&filter.real_stderr);
            // The pipe ends once nothing holds its writing end; a helper
            // process that inherited it (GStreamer's plugin scanner) must
            // not hold this thread up.
            let _ = filter.forwarder_done.recv_timeout(FLUSH_WAIT);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn only_the_drain_error_is_dropped() {
            let noise = b"[OpenH264] this = 0x0x7f55c800c6f0, Error:CWelsH264SVCEncoder::EncodeFrame(), cmInitParaError.";
            assert!(is_drain_noise(noise));
            assert!(!is_drain_noise(
                b"[OpenH264] this = 0x1, Error:CWelsH264SVCEncoder::Initialize(), invalid width"
            ));
            assert!(!is_drain_noise(b"error: cmInitParaError"));
        }
    }
}
