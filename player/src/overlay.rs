//! On-screen drawing with embedded-graphics: the clock, the ticker, the
//! logo and alerts (blended over the video by the output's
//! `overlaycomposition` element), and the status screen (drawn as a whole
//! frame when nothing plays).
//!
//! Everything is drawn on a small "logical" grid (the canvas divided by an
//! integer [`scale`]) with the 10x20 ISO-8859-1 mono font, which covers
//! French, German and Spanish, and is scaled up by GStreamer when blended.
//! Drawing is cheap, and only redone when a layer changes: the clock once a
//! minute, the ticker never (its strip only moves), alerts when set.

use std::sync::{Arc, Mutex};

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::iso_8859_1::FONT_10X20;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};
use gstreamer as gst;
use gstreamer_video as gst_video;

pub use phare_common::config::OverlayConfig;

/// Glyph cell of the font, in logical pixels.
const GLYPH_W: u32 = 10;
const GLYPH_H: u32 = 20;
/// Padding around text in boxes, in logical pixels.
const PAD: u32 = 4;
/// Logical lines on the shorter side of the canvas: sets [`scale`].
const LOGICAL_LINES: u32 = 360;
/// Ticker speed, in logical pixels per second.
const TICKER_SPEED: u32 = 60;

/// BGRA colours (the byte order overlay rectangles and our frames use).
type Bgra = [u8; 4];
const SHADE: Bgra = [0, 0, 0, 170];
const ALERT_RED: Bgra = [20, 20, 190, 235];
const ALERT_FULL: Bgra = [10, 10, 140, 255];
const STATUS_BG: Bgra = [60, 35, 20, 255];
const WHITE: Rgb888 = Rgb888::WHITE;
const YELLOW: Rgb888 = Rgb888::new(255, 220, 80);

/// An alert shown over everything until cleared (docs/protocol.md §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertOverlay {
    pub message: String,
    pub style: AlertStyle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStyle {
    /// Hides the video entirely.
    Fullscreen,
    /// A band across the top; the video goes on below.
    Banner,
}

/// What the screen says when there is nothing to play (ARCHITECTURE.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusScreen {
    pub device_id: String,
    pub fleet: String,
    /// The broker in use; `None` = not connected.
    pub broker: Option<String>,
    /// Short code an operator types (or scans) to enrol the device.
    pub enrolment_code: String,
    /// Why nothing plays, when there is a reason worth showing.
    pub message: Option<String>,
}

impl StatusScreen {
    /// What the QR code says: everything an enrolment tool needs.
    pub fn enrolment_uri(&self) -> String {
        format!(
            "phare:enrol?fleet={}&device={}&code={}",
            self.fleet, self.device_id, self.enrolment_code
        )
    }
}

/// The short enrolment code of a device: stable, derived from its fleet
/// and id, in an alphabet without look-alike characters.
pub fn enrolment_code(fleet: &str, device_id: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("phare-enrol\0{fleet}\0{device_id}").as_bytes(),
    );
    let chars: String = digest.as_ref()[..8]
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// Integer factor from the logical grid to the canvas.
pub fn scale(width: u32, height: u32) -> u32 {
    (width.min(height) / LOGICAL_LINES).max(1)
}

/// Replaces what the ISO-8859-1 font cannot show by its closest look-alike
/// (typographic dashes and quotes are common in alert messages), and
/// anything else by `?`, so no character silently vanishes.
fn latin1(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{2032}' => '\'',
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2033}' => '"',
            '\u{2026}' => '.',
            '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' => ' ',
            '\t' | '\n' | '\r' => ' ',
            c if (c as u32) < 0x20 || (0x7F..0xA0).contains(&(c as u32)) => '?',
            c if (c as u32) <= 0xFF => c,
            _ => '?',
        })
        .collect()
}

/// Splits `text` into lines of at most `columns` characters, at spaces
/// where possible.
fn wrap(text: &str, columns: usize) -> Vec<String> {
    let columns = columns.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = line.chars().count();
            let room = if used == 0 {
                columns
            } else {
                columns.saturating_sub(used + 1)
            };
            if word.len() <= room {
                if used > 0 {
                    line.push(' ');
                }
                line.extend(&word);
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than a line is cut.
            line.extend(&word[..columns]);
            lines.push(std::mem::take(&mut line));
            word.drain(..columns);
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A BGRA pixel buffer, transparent where nothing is drawn, that
/// embedded-graphics draws on (opaque).
pub struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32, fill: Bgra) -> Canvas {
        Canvas {
            width,
            height,
            pixels: fill.repeat((width * height) as usize),
        }
    }

    /// A canvas over BGRA pixels, rows packed.
    pub fn from_pixels(width: u32, height: u32, pixels: Vec<u8>) -> Canvas {
        debug_assert_eq!(pixels.len(), (width * height * 4) as usize);
        Canvas {
            width,
            height,
            pixels,
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, color: Bgra) {
        for row in y..(y + h).min(self.height) {
            for col in x..(x + w).min(self.width) {
                let at = ((row * self.width + col) * 4) as usize;
                self.pixels[at..at + 4].copy_from_slice(&color);
            }
        }
    }

    /// Draws one line of text with its top-left corner at (x, y).
    pub fn text(&mut self, text: &str, x: u32, y: u32, color: Rgb888) {
        let style = MonoTextStyle::new(&FONT_10X20, color);
        let at = Point::new(x as i32, y as i32);
        // Drawing on a Canvas cannot fail.
        let _ = Text::with_baseline(&latin1(text), at, style, Baseline::Top).draw(self);
    }

    /// This canvas with every pixel repeated `factor` times both ways:
    /// crisp text at any size, and nothing left for the blender to scale.
    pub fn upscale(self, factor: u32) -> Canvas {
        if factor == 1 {
            return self;
        }
        let (width, height) = (self.width * factor, self.height * factor);
        let mut pixels = Vec::with_capacity((width * height * 4) as usize);
        for row in self.pixels.chunks_exact((self.width * 4) as usize) {
            let wide: Vec<u8> = row
                .chunks_exact(4)
                .flat_map(|px| px.repeat(factor as usize))
                .collect();
            for _ in 0..factor {
                pixels.extend_from_slice(&wide);
            }
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// The pixels as a buffer with a video meta, as overlay rectangles
    /// and raw video caps want.
    pub fn into_buffer(self) -> gst::Buffer {
        let mut buffer = gst::Buffer::from_mut_slice(self.pixels);
        // Only fails for formats other than BGRA or empty sizes.
        let _ = gst_video::VideoMeta::add(
            buffer.get_mut().expect("a new buffer is writable"),
            gst_video::VideoFrameFlags::empty(),
            gst_video::VideoFormat::Bgra,
            self.width,
            self.height,
        );
        buffer
    }

    #[cfg(test)]
    pub fn pixel(&self, x: u32, y: u32) -> Bgra {
        let at = ((y * self.width + x) * 4) as usize;
        self.pixels[at..at + 4].try_into().unwrap()
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Rgb888>>,
    {
        for Pixel(point, color) in pixels {
            let (Ok(x), Ok(y)) = (u32::try_from(point.x), u32::try_from(point.y)) else {
                continue;
            };
            if x < self.width && y < self.height {
                let at = ((y * self.width + x) * 4) as usize;
                self.pixels[at..at + 4].copy_from_slice(&[color.b(), color.g(), color.r(), 255]);
            }
        }
        Ok(())
    }
}

/// A box of text lines on a background, sized to fit them.
fn text_box(lines: &[String], background: Bgra, color: Rgb888) -> Canvas {
    let columns = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    let mut canvas = Canvas::new(
        columns * GLYPH_W + 2 * PAD,
        lines.len() as u32 * GLYPH_H + 2 * PAD,
        background,
    );
    for (i, line) in lines.iter().enumerate() {
        canvas.text(line, PAD, PAD + i as u32 * GLYPH_H, color);
    }
    canvas
}

/// A drawn layer at its place on the canvas, in canvas pixels.
#[derive(Clone)]
struct Layer {
    pixels: gst::Buffer,
    x: i32,
    y: i32,
    width: u32,
    height: u32,
}

impl Layer {
    /// `canvas` (logical pixels) scaled by `scale`, its top-left corner at
    /// canvas pixel (x, y).
    fn new(canvas: Canvas, scale: u32, x: i32, y: i32) -> Layer {
        let canvas = canvas.upscale(scale);
        Layer {
            width: canvas.width(),
            height: canvas.height(),
            pixels: canvas.into_buffer(),
            x,
            y,
        }
    }

    fn rectangle(&self) -> gst_video::VideoOverlayRectangle {
        gst_video::VideoOverlayRectangle::new_raw(
            &self.pixels,
            self.x,
            self.y,
            self.width,
            self.height,
            gst_video::VideoOverlayFormatFlags::empty(),
        )
    }
}

/// Draws the overlays of each output frame, on the output's streaming
/// thread. Layers are kept between frames and redrawn only on change; the
/// composition too, so GPU sinks upload it only when it changed.
pub struct Painter {
    config: OverlayConfig,
    /// The decoded logo, at its own size.
    logo_image: Option<(gst::Buffer, u32, u32)>,
    /// Shared with the renderer API, which sets it from any thread.
    alert: Arc<Mutex<Option<AlertOverlay>>>,
    /// Canvas size, logical grid factor, frame rate.
    width: u32,
    height: u32,
    scale: u32,
    fps: u32,
    logo: Option<Layer>,
    clock: Option<(String, Layer)>,
    /// The ticker's shaded band and its text strip (at x = 0).
    ticker: Option<(Layer, Layer)>,
    ticker_frame: u64,
    alert_layer: Option<(AlertOverlay, Layer)>,
    composition: Option<gst_video::VideoOverlayComposition>,
}

impl Painter {
    /// `logo` is the decoded logo image (BGRA canvas), if one is configured.
    pub fn new(
        config: OverlayConfig,
        logo: Option<Canvas>,
        alert: Arc<Mutex<Option<AlertOverlay>>>,
    ) -> Painter {
        let logo_image = logo.map(|canvas| {
            let (width, height) = (canvas.width(), canvas.height());
            (canvas.into_buffer(), width, height)
        });
        Painter {
            config,
            logo_image,
            alert,
            width: 0,
            height: 0,
            scale: 1,
            fps: 1,
            logo: None,
            clock: None,
            ticker: None,
            ticker_frame: 0,
            alert_layer: None,
            composition: None,
        }
    }

    /// The canvas (re)negotiated: lay every layer out again.
    pub fn set_canvas(&mut self, width: u32, height: u32, fps: u32) {
        if (width, height, fps) == (self.width, self.height, self.fps) {
            return;
        }
        (self.width, self.height, self.fps) = (width, height, fps.max(1));
        self.scale = scale(width, height);
        self.clock = None;
        self.alert_layer = None;
        self.composition = None;
        self.logo = self.logo_image.as_ref().map(|(pixels, w, h)| {
            // At most a tenth of the canvas high, a third wide; aspect kept.
            let box_h = (height / 10).max(1);
            let box_w = (width / 3).max(1);
            let (w64, h64) = (u64::from(*w), u64::from(*h));
            let (lw, lh) = if w64 * u64::from(box_h) > h64 * u64::from(box_w) {
                (box_w, ((h64 * u64::from(box_w)) / w64).max(1) as u32)
            } else {
                (((w64 * u64::from(box_h)) / h64).max(1) as u32, box_h)
            };
            let margin = (PAD * self.scale) as i32;
            Layer {
                pixels: pixels.clone(),
                x: margin,
                y: margin,
                width: lw,
                height: lh,
            }
        });
        self.ticker = self.config.ticker.as_deref().map(|text| {
            let strip = text_box(&[latin1(text)], [0, 0, 0, 0], WHITE);
            let band_h = strip.height();
            let y = (self.height / self.scale).saturating_sub(band_h) as i32 * self.scale as i32;
            let band = Canvas::new(self.width.div_ceil(self.scale), band_h, SHADE);
            (
                Layer::new(band, self.scale, 0, y),
                Layer::new(strip, self.scale, 0, y),
            )
        });
    }

    /// The overlays for the next frame; `None` when there is nothing to draw.
    pub fn compose(&mut self) -> Option<gst_video::VideoOverlayComposition> {
        if self.width == 0 {
            return None;
        }
        let mut changed = self.update_alert();
        if let Some((alert, layer)) = &self.alert_layer
            && alert.style == AlertStyle::Fullscreen
        {
            if changed || self.composition.is_none() {
                self.composition =
                    gst_video::VideoOverlayComposition::new([&layer.rectangle()]).ok();
            }
            return self.composition.clone();
        }
        changed |= self.update_clock();
        let mut rectangles = Vec::new();
        if let Some(logo) = &self.logo {
            rectangles.push(logo.rectangle());
        }
        if let Some((band, strip)) = &self.ticker {
            // Enters on the right, leaves on the left, then again.
            let travel = u64::from(self.width + strip.width);
            let step =
                u64::from(TICKER_SPEED * self.scale) * self.ticker_frame / u64::from(self.fps);
            self.ticker_frame += 1;
            let x = i64::from(self.width) - (step % travel) as i64;
            rectangles.push(band.rectangle());
            rectangles.push(
                Layer {
                    x: x as i32,
                    ..strip.clone()
                }
                .rectangle(),
            );
            changed = true;
        }
        if let Some((_, layer)) = &self.clock {
            rectangles.push(layer.rectangle());
        }
        if let Some((_, layer)) = &self.alert_layer {
            rectangles.push(layer.rectangle());
        }
        if changed || self.composition.is_none() {
            self.composition = (!rectangles.is_empty())
                .then(|| gst_video::VideoOverlayComposition::new(&rectangles).ok())
                .flatten();
        }
        self.composition.clone()
    }

    /// Redraws the alert layer if the alert changed; true if it did.
    fn update_alert(&mut self) -> bool {
        let wanted = self
            .alert
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if wanted.as_ref() == self.alert_layer.as_ref().map(|(a, _)| a) {
            return false;
        }
        self.alert_layer = wanted.map(|alert| {
            let layer = self.draw_alert(&alert);
            (alert, layer)
        });
        true
    }

    fn draw_alert(&self, alert: &AlertOverlay) -> Layer {
        let (lw, lh) = (
            self.width.div_ceil(self.scale),
            self.height.div_ceil(self.scale),
        );
        let columns = (lw.saturating_sub(4 * PAD) / GLYPH_W) as usize;
        let lines = wrap(&latin1(&alert.message), columns);
        match alert.style {
            AlertStyle::Fullscreen => {
                let mut canvas = Canvas::new(lw, lh, ALERT_FULL);
                let rows = lines.len().min((lh / GLYPH_H) as usize);
                let top = lh.saturating_sub(rows as u32 * GLYPH_H) / 2;
                for (i, line) in lines.iter().take(rows).enumerate() {
                    let x = lw.saturating_sub(line.chars().count() as u32 * GLYPH_W) / 2;
                    canvas.text(line, x, top + i as u32 * GLYPH_H, WHITE);
                }
                Layer::new(canvas, self.scale, 0, 0)
            }
            AlertStyle::Banner => {
                let rows = lines.len().clamp(1, 3);
                let mut canvas = Canvas::new(lw, rows as u32 * GLYPH_H + 2 * PAD, ALERT_RED);
                for (i, line) in lines.iter().take(rows).enumerate() {
                    canvas.text(line, 2 * PAD, PAD + i as u32 * GLYPH_H, WHITE);
                }
                Layer::new(canvas, self.scale, 0, 0)
            }
        }
    }

    /// Redraws the clock when the minute changed; true if it did.
    fn update_clock(&mut self) -> bool {
        if !self.config.clock {
            return false;
        }
        let now = jiff::ZonedDateTime::now().strftime("%H:%M").to_string();
        if self.clock.as_ref().is_some_and(|(shown, _)| *shown == now) {
            return false;
        }
        let canvas = text_box(std::slice::from_ref(&now), SHADE, WHITE);
        let x = self.width as i32 - ((canvas.width() + PAD) * self.scale) as i32;
        let y = (PAD * self.scale) as i32;
        self.clock = Some((now, Layer::new(canvas, self.scale, x, y)));
        true
    }
}

/// The status screen as one opaque BGRA frame on the logical grid of a
/// `width` x `height` canvas: who the device is, whether it reaches its
/// broker, why nothing plays, and the enrolment QR code and short code.
pub fn status_screen(info: &StatusScreen, width: u32, height: u32) -> Canvas {
    let scale = scale(width, height);
    let (lw, lh) = (width.div_ceil(scale), height.div_ceil(scale));
    let mut canvas = Canvas::new(lw, lh, STATUS_BG);

    // The QR code on the right, as large as a third of the width allows.
    let qr = qrcode::QrCode::with_error_correction_level(
        info.enrolment_uri().as_bytes(),
        qrcode::EcLevel::M,
    );
    let mut text_right = lw;
    if let Ok(qr) = qr {
        let modules = qr.width() as u32;
        // A quiet zone of four modules around the code, as scanners need.
        let module = ((lw / 3).min(lh.saturating_sub(2 * PAD)) / (modules + 8)).max(1);
        let side = module * (modules + 8);
        let (qx, qy) = (
            lw.saturating_sub(side + 2 * PAD),
            lh.saturating_sub(side) / 2,
        );
        canvas.fill_rect(qx, qy, side, side, [255, 255, 255, 255]);
        for (i, color) in qr.to_colors().iter().enumerate() {
            if *color == qrcode::Color::Dark {
                let (mx, my) = (i as u32 % modules, i as u32 / modules);
                canvas.fill_rect(
                    qx + (mx + 4) * module,
                    qy + (my + 4) * module,
                    module,
                    module,
                    [0, 0, 0, 255],
                );
            }
        }
        text_right = qx.saturating_sub(2 * PAD);
    }

    let columns = (text_right.saturating_sub(4 * PAD) / GLYPH_W) as usize;
    let broker = match &info.broker {
        Some(broker) => format!("Broker: {broker}"),
        None => "Broker: not connected".to_string(),
    };
    let mut lines = vec![
        ("Phare".to_string(), YELLOW),
        (String::new(), WHITE),
        (format!("Device: {}", info.device_id), WHITE),
        (format!("Fleet: {}", info.fleet), WHITE),
        (broker, WHITE),
        (format!("Code: {}", info.enrolment_code), YELLOW),
        (String::new(), WHITE),
    ];
    if let Some(message) = &info.message {
        lines.extend(
            wrap(&latin1(message), columns)
                .into_iter()
                .map(|l| (l, YELLOW)),
        );
    }
    let mut y = 2 * PAD;
    for (line, color) in lines {
        for part in wrap(&line, columns) {
            if y + GLYPH_H > lh {
                break;
            }
            canvas.text(&part, 2 * PAD, y, color);
            y += GLYPH_H;
        }
        if line.is_empty() {
            y += GLYPH_H / 2;
        }
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lit pixels of `text` drawn alone, as a bitmap.
    fn glyphs(text: &str) -> Vec<bool> {
        let mut canvas = Canvas::new(GLYPH_W * 4, GLYPH_H, [0, 0, 0, 0]);
        canvas.text(text, 0, 0, WHITE);
        (0..canvas.height())
            .flat_map(|y| (0..canvas.width()).map(move |x| (x, y)))
            .map(|(x, y)| canvas.pixel(x, y)[3] == 255)
            .collect()
    }

    #[test]
    fn accented_latin_renders_as_its_own_glyphs() {
        let unknown = glyphs("?");
        for (accented, plain) in [
            ("é", "e"),
            ("è", "e"),
            ("à", "a"),
            ("ç", "c"),
            ("ô", "o"), // French
            ("ä", "a"),
            ("ö", "o"),
            ("ü", "u"),
            ("ß", "s"),
            ("Ä", "A"), // German
            ("ñ", "n"),
            ("á", "a"),
            ("¿", "?"),
            ("¡", "!"),
            ("Ñ", "N"), // Spanish
        ] {
            let drawn = glyphs(accented);
            assert!(drawn.iter().any(|&lit| lit), "{accented} drew nothing");
            assert_ne!(drawn, glyphs(plain), "{accented} looks like {plain}");
            if accented != "¿" {
                assert_ne!(drawn, unknown, "{accented} fell back to ?");
            }
        }
        // Typographic punctuation becomes its ASCII look-alike, not `?`.
        assert_eq!(
            latin1("évacuation — parking B’s “exit”…"),
            "évacuation - parking B's \"exit\"."
        );
        assert_eq!(latin1("北"), "?");
    }

    #[test]
    fn text_wraps_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh x", 3), ["abc", "def", "gh", "x"]);
        assert!(wrap("", 3).is_empty());
    }

    #[test]
    fn upscaling_repeats_pixels() {
        let mut canvas = Canvas::new(2, 1, [0, 0, 0, 0]);
        canvas.fill_rect(1, 0, 1, 1, [1, 2, 3, 4]);
        let big = canvas.upscale(3);
        assert_eq!((big.width(), big.height()), (6, 3));
        assert_eq!(big.pixel(2, 2), [0, 0, 0, 0]);
        assert_eq!(big.pixel(3, 0), [1, 2, 3, 4]);
        assert_eq!(big.pixel(5, 2), [1, 2, 3, 4]);
    }

    #[test]
    fn enrolment_codes_are_short_stable_and_distinct() {
        let code = enrolment_code("acme", "lobby-1");
        assert_eq!(code, enrolment_code("acme", "lobby-1"));
        assert_ne!(code, enrolment_code("acme", "lobby-2"));
        assert_eq!(code.len(), 9);
        assert!(
            code.chars()
                .all(|c| c == '-' || c.is_ascii_uppercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn the_painter_draws_only_what_is_configured() {
        gst::init().unwrap();
        let alert = Arc::new(Mutex::new(None));
        let mut idle = Painter::new(OverlayConfig::default(), None, Arc::clone(&alert));
        idle.set_canvas(640, 360, 25);
        assert!(
            idle.compose().is_none(),
            "nothing configured, nothing drawn"
        );
        *alert.lock().unwrap() = Some(AlertOverlay {
            message: "Exercice d'évacuation".into(),
            style: AlertStyle::Fullscreen,
        });
        let full = idle.compose().expect("the alert shows");
        let rect = full.rectangle(0).unwrap();
        assert_eq!(
            rect.render_rectangle(),
            (0, 0, 640, 360),
            "covers the canvas"
        );
        *alert.lock().unwrap() = None;
        assert!(idle.compose().is_none(), "cleared");

        let config = OverlayConfig {
            clock: true,
            ticker: Some("Bienvenue à Zürich".into()),
            logo: None,
        };
        let mut busy = Painter::new(config, None, alert);
        busy.set_canvas(640, 360, 25);
        let first = busy.compose().unwrap();
        // Band, strip and clock.
        assert_eq!(first.n_rectangles(), 3);
        let strip_x =
            |c: &gst_video::VideoOverlayComposition| c.rectangle(1).unwrap().render_rectangle().0;
        let x0 = strip_x(&first);
        let x1 = strip_x(&busy.compose().unwrap());
        assert!(x1 < x0, "the ticker scrolls left: {x0} then {x1}");
    }
}
