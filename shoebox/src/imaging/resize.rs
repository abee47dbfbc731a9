//! Resampling with `fast_image_resize` (SIMD Lanczos3).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};

use super::error::ImagingError;
use super::image_type::ImageType;
use super::pixels::Pixels;

/// Like [`resize`], but takes the source, so that it is freed as soon as possible and not
/// copied when no resize is needed.
pub(crate) fn resize_owned(source: Pixels, width: u32, height: u32) -> Result<Pixels, ImagingError> {
    if (source.width, source.height) == (width, height) {
        return Ok(source);
    }
    resize(&source, width, height)
}

/// Resamples `source` to exactly `width`×`height` with Lanczos3.
///
/// Alpha must already be premultiplied (see [`Pixels::premultiply`]); the resizer is told
/// not to do it again, which would copy the whole source.
pub(crate) fn resize(source: &Pixels, width: u32, height: u32) -> Result<Pixels, ImagingError> {
    if (source.width, source.height) == (width, height) {
        return Ok(source.clone());
    }
    let failed =
        |reason: String| ImagingError::Encode { format: ImageType::Png, reason: format!("resize failed: {reason}") };
    let pixel_type = source.layout.pixel_type();
    let src =
        ImageRef::new(source.width, source.height, &source.data, pixel_type).map_err(|e| failed(e.to_string()))?;
    let mut dst = Image::new(width, height, pixel_type);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).use_alpha(false);
    Resizer::new().resize(&src, &mut dst, &options).map_err(|e| failed(e.to_string()))?;
    Ok(Pixels::new(width, height, source.layout, dst.into_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::pixels::Layout;

    #[test]
    fn a_flat_colour_stays_flat_at_any_size() {
        let source = Pixels::new(40, 30, Layout::Rgb, [12u8, 150, 240].repeat(40 * 30));
        for (w, h) in [(1, 1), (7, 3), (39, 29), (40, 30)] {
            let out = resize(&source, w, h).expect("resize");
            assert_eq!((out.width, out.height), (w, h));
            assert!(out.data.chunks_exact(3).all(|px| px == [12, 150, 240]), "{w}x{h}");
        }
    }
}
