//! Placeholders: a [ThumbHash](https://evanw.github.io/thumbhash/) of the upright image, about
//! 25 bytes with its colours, rough shapes, alpha and aspect ratio, stored with the photo and
//! shown (as a tiny PNG) until the real image has loaded.
//!
//! The hash is made from the decode that verification already does, downscaled with our own
//! resizer to at most [`PLACEHOLDER_EDGE`] pixels a side: the `thumbhash` encoder asserts on
//! anything larger (and would be slow on it for no gain), so [`placeholder_hash`] checks the size
//! first and refuses instead of panicking.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::error::ImagingError;
use super::image_type::OutputFormat;
use super::pixels::{Layout, Pixels};
use super::{ColourPlan, ImageInfo, Recipe, encode, finish_alpha, orient, resize};

/// The longest side, in pixels, of the image a placeholder is computed from: the encoder's
/// own limit.
pub const PLACEHOLDER_EDGE: u32 = 100;

/// The ThumbHash of `width`×`height` RGBA pixels (not premultiplied), row by row. Refuses,
/// rather than panics, on an image larger than [`PLACEHOLDER_EDGE`] a side, an empty one, or
/// pixels that are not `width × height × 4` bytes.
pub fn placeholder_hash(width: u32, height: u32, rgba: &[u8]) -> Result<Vec<u8>, ImagingError> {
    let (w, h) = (width as usize, height as usize);
    if width == 0 || height == 0 || width > PLACEHOLDER_EDGE || height > PLACEHOLDER_EDGE {
        return Err(ImagingError::InvalidRecipe(format!(
            "a placeholder is made from at most {PLACEHOLDER_EDGE}×{PLACEHOLDER_EDGE} pixels, not {width}×{height}"
        )));
    }
    if rgba.len() != w * h * 4 {
        return Err(ImagingError::InvalidRecipe(format!(
            "{width}×{height} RGBA pixels are {} bytes, not {}",
            w * h * 4,
            rgba.len()
        )));
    }
    Ok(::thumbhash::rgba_to_thumb_hash(w, h, rgba))
}

/// The placeholder a hash stands for, as a small PNG (about 32 pixels on its longer side, in
/// the image's aspect ratio) for a page to stretch under the real image. `None` for bytes that
/// are not a ThumbHash.
pub fn placeholder_png(hash: &[u8]) -> Option<Vec<u8>> {
    // The decoder indexes into the hash as its header says; stored bytes are ours, but a
    // damaged row must not take a page down with it.
    let (w, h, rgba) = catch_unwind(AssertUnwindSafe(|| ::thumbhash::thumb_hash_to_rgba(hash))).ok()?.ok()?;
    let (width, height) = (u32::try_from(w).ok()?, u32::try_from(h).ok()?);
    if width == 0 || height == 0 || rgba.len() != w * h * 4 {
        return None;
    }
    let pixels = Pixels::new(width, height, Layout::Rgba, rgba);
    // An opaque placeholder (every JPEG's) needs no alpha channel: a quarter fewer bytes.
    let pixels = if pixels.is_opaque() { pixels.drop_alpha() } else { pixels };
    encode::encode(&pixels, &Recipe::fit(width, height).with_format(OutputFormat::Png), None).ok()
}

/// The stored-orientation size to downscale a `info.width`×`info.height` (upright) image to
/// for its placeholder.
pub(super) fn stored_size(info: &ImageInfo) -> (u32, u32) {
    let (w, h) = super::fit_within(info.width, info.height, PLACEHOLDER_EDGE, PLACEHOLDER_EDGE);
    info.orientation.display_size(w, h)
}

/// The placeholder of a decoded image: `source` as the render pipeline holds it (alpha
/// premultiplied, or dropped when opaque), downscaled to `(width, height)` in stored
/// orientation, then turned to sRGB and upright as every rendition is.
pub(super) fn from_decoded(
    source: &Pixels,
    (width, height): (u32, u32),
    colour: &ColourPlan,
    info: ImageInfo,
) -> Result<Vec<u8>, ImagingError> {
    let small = resize::resize(source, width, height)?;
    let small = finish_alpha(small, OutputFormat::Png)?;
    let (small, _) = colour.to_srgb(small);
    let channels = small.layout.channels();
    let layout = small.layout;
    let (data, w, h) = orient::apply(info.orientation, small.data, small.width, small.height, channels);
    placeholder_hash(w, h, &to_rgba(layout, &data))
}

/// Pixels of any layout as RGBA.
fn to_rgba(layout: Layout, data: &[u8]) -> Vec<u8> {
    match layout {
        Layout::Rgba => data.to_vec(),
        Layout::Rgb => data.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], u8::MAX]).collect(),
        Layout::Gray => data.iter().flat_map(|&g| [g, g, g, u8::MAX]).collect(),
        Layout::GrayAlpha => data.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(width: u32, height: u32, rgba: [u8; 4]) -> Vec<u8> {
        rgba.repeat(width as usize * height as usize)
    }

    #[test]
    fn the_encoder_is_never_given_more_than_100_pixels_a_side() {
        for (w, h) in [(101, 1), (1, 101), (640, 480), (0, 10), (10, 0)] {
            let err = placeholder_hash(w, h, &flat(w, h, [10, 20, 30, 255])).expect_err("refused, not a panic");
            assert!(matches!(err, ImagingError::InvalidRecipe(_)), "{w}x{h}: {err}");
        }
        let err = placeholder_hash(10, 10, &[0; 399]).expect_err("short pixels refused");
        assert!(matches!(err, ImagingError::InvalidRecipe(_)));
        for (w, h) in [(100, 100), (100, 1), (1, 1), (100, 67)] {
            let hash = placeholder_hash(w, h, &flat(w, h, [10, 20, 30, 255])).expect("hash");
            assert!((5..=30).contains(&hash.len()), "{w}x{h}: {} bytes", hash.len());
        }
    }

    #[test]
    fn a_placeholder_keeps_the_colour_and_the_aspect_ratio() {
        let hash = placeholder_hash(100, 50, &flat(100, 50, [200, 40, 40, 255])).expect("hash");
        let png = placeholder_png(&hash).expect("png");
        let image = image::load_from_memory(&png).expect("a PNG").to_rgba8();
        let (w, h) = image.dimensions();
        assert!(w > h && (w as f32 / h as f32 - 2.0).abs() < 0.4, "about 2:1, got {w}x{h}");
        let centre = image.get_pixel(w / 2, h / 2).0;
        assert!(centre[0] > 150 && centre[1] < 90 && centre[2] < 90 && centre[3] == 255, "red: {centre:?}");
        // Opaque: no alpha channel written (colour type 2, RGB).
        assert_eq!(png[25], 2);
    }

    #[test]
    fn a_transparent_image_keeps_its_alpha() {
        let hash = placeholder_hash(40, 40, &flat(40, 40, [0, 0, 200, 0])).expect("hash");
        let png = placeholder_png(&hash).expect("png");
        assert_eq!(png[25], 6, "RGBA");
        let image = image::load_from_memory(&png).expect("a PNG").to_rgba8();
        assert!(image.pixels().all(|p| p.0[3] < 40), "transparent");
    }

    #[test]
    fn bytes_that_are_not_a_hash_make_no_placeholder() {
        assert_eq!(placeholder_png(&[]), None);
        assert_eq!(placeholder_png(&[1, 2]), None);
    }
}
