//! Screenshots: the last frame that reached the sink, encoded as a PNG and
//! as reduced PNG or JPEG thumbnails (docs/protocol.md §9: at most 512 KiB).
//!
//! Where the sink blends the overlays itself (GPU sinks), the frame carries
//! them as a composition meta; they are blended into a copy here, so the
//! screenshot shows what the panel shows.

use gstreamer as gst;
use gstreamer_video as gst_video;

use super::RenderError;

/// Largest thumbnail a command response may carry.
pub const MAX_THUMBNAIL_BYTES: usize = 512 * 1024;
/// Thumbnail widths tried in turn until one fits.
const THUMBNAIL_WIDTHS: &[u32] = &[640, 320, 160];
/// Encoding a frame is quick; this only bounds a wedged encoder.
const ENCODE_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screenshot {
    pub png: Vec<u8>,
    pub jpeg_thumbnail: Vec<u8>,
}

/// What a reduced screenshot is encoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbnailFormat {
    Png,
    Jpeg,
}

impl ThumbnailFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            ThumbnailFormat::Png => "image/png",
            ThumbnailFormat::Jpeg => "image/jpeg",
        }
    }
}

impl Screenshot {
    pub(super) fn of(frame: &gst::Sample) -> Result<Screenshot, RenderError> {
        let frame = with_overlays(frame)?;
        Ok(Screenshot {
            png: encode(&frame, gst::Caps::builder("image/png").build())?,
            jpeg_thumbnail: reduced(&frame, ThumbnailFormat::Jpeg)?,
        })
    }
}

/// The frame, overlays included, reduced until it fits a command response.
pub(super) fn thumbnail(
    frame: &gst::Sample,
    format: ThumbnailFormat,
) -> Result<Vec<u8>, RenderError> {
    reduced(&with_overlays(frame)?, format)
}

fn reduced(frame: &gst::Sample, format: ThumbnailFormat) -> Result<Vec<u8>, RenderError> {
    let (width, height) = size(frame)?;
    for &thumb_width in THUMBNAIL_WIDTHS {
        let thumb_width = thumb_width.min(width);
        // Even sizes keep every encoder's chroma subsampling happy.
        let thumb_height =
            ((u64::from(height) * u64::from(thumb_width) / u64::from(width)) as u32 & !1).max(2);
        let caps = gst::Caps::builder(format.media_type())
            .field("width", thumb_width as i32)
            .field("height", thumb_height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let thumbnail = encode(frame, caps)?;
        if thumbnail.len() <= MAX_THUMBNAIL_BYTES {
            return Ok(thumbnail);
        }
    }
    Err(RenderError::Encode(
        "the thumbnail does not fit in 512 KiB".into(),
    ))
}

fn size(frame: &gst::Sample) -> Result<(u32, u32), RenderError> {
    let info = frame
        .caps()
        .and_then(|caps| gst_video::VideoInfo::from_caps(caps).ok())
        .ok_or_else(|| RenderError::Encode("the frame has no video caps".into()))?;
    Ok((info.width(), info.height()))
}

fn encode(frame: &gst::Sample, caps: gst::Caps) -> Result<Vec<u8>, RenderError> {
    let encoded = gst_video::convert_sample(frame, &caps, Some(ENCODE_TIMEOUT))
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    let buffer = encoded
        .buffer()
        .ok_or_else(|| RenderError::Encode("the encoder gave nothing".into()))?;
    let map = buffer
        .map_readable()
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok(map.to_vec())
}

/// The frame with the overlays its meta carries blended in.
fn with_overlays(frame: &gst::Sample) -> Result<gst::Sample, RenderError> {
    let Some(buffer) = frame.buffer() else {
        return Err(RenderError::NoFrame("the frame has no buffer"));
    };
    let Some(meta) = buffer.meta::<gst_video::VideoOverlayCompositionMeta>() else {
        return Ok(frame.clone());
    };
    let composition = meta.overlay_owned();
    let caps = frame
        .caps()
        .ok_or_else(|| RenderError::Encode("the frame has no caps".into()))?;
    let info =
        gst_video::VideoInfo::from_caps(caps).map_err(|e| RenderError::Encode(e.to_string()))?;
    let mut copy = buffer
        .copy_deep()
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    {
        let copy = copy.make_mut();
        let mut pixels = gst_video::VideoFrameRef::from_buffer_ref_writable(copy, &info)
            .map_err(|e| RenderError::Encode(e.to_string()))?;
        composition
            .blend(&mut pixels)
            .map_err(|e| RenderError::Encode(e.to_string()))?;
    }
    Ok(gst::Sample::builder()
        .buffer(&copy)
        .caps(&caps.to_owned())
        .build())
}
