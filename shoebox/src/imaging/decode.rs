//! Decoding whole images to 8-bit pixels, within the limits, with shrink-on-load for JPEG.
//!
//! Most JPEGs never come here: `jpeg_bands` decodes them a band of rows at a time. This is
//! the path for the JPEGs it declines (CMYK, and damaged files, which it leaves to this
//! decoder's verdict) and for every other format. JPEG goes through `jpeg-decoder`, whose
//! IDCT scaling decodes a 22 MP photo straight to 1/2, 1/4 or 1/8 of its size: the
//! full-size pixels are never allocated. It is strict: a truncated file or damaged entropy
//! data is refused, at every scale, so all renditions of an upload agree. PNG, WebP and GIF go through the `image` crate (an animation gives
//! its first frame, drawn on the canvas).

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{DynamicImage, ImageDecoder, ImageError};

use super::colour;
use super::error::ImagingError;
use super::geometry::{jpeg_scale_eighths, scaled_by_eighths};
use super::image_type::ImageType;
use super::jpeg_encode::encoder_bytes_per_pixel;
use super::jpeg_strips;
use super::limits::Limits;
use super::pixels::{Layout, Pixels};
use super::probe::{Detail, Header, JpegHeader};

/// Decoded pixels and the embedded ICC profile, if any.
pub(crate) struct Decoded {
    pub pixels: Pixels,
    pub icc_profile: Option<Vec<u8>>,
}

/// Decodes `bytes` (whose header is `header`) for renditions of `sizes` (stored
/// orientation): JPEG to the smallest scale that covers them all, other formats to full
/// size.
///
/// The memory check covers the decode and the making of the renditions afterwards.
pub(crate) fn decode(
    bytes: &[u8],
    header: &Header,
    sizes: &[(u32, u32)],
    limits: &Limits,
) -> Result<Decoded, ImagingError> {
    let image_type = header.info.image_type;
    let target = (sizes.iter().map(|s| s.0).max().unwrap_or(1), sizes.iter().map(|s| s.1).max().unwrap_or(1));
    // Decoders are fuzzed, but a panic on hostile input must still become an error.
    let outcome = catch_unwind(AssertUnwindSafe(|| match &header.detail {
        Detail::Jpeg(jpeg) => decode_jpeg(bytes, header, jpeg, target, sizes, limits),
        Detail::Png { .. } | Detail::Webp { .. } | Detail::Gif => decode_with_image_crate(bytes, header, sizes, limits),
    }));
    outcome.unwrap_or_else(|_panic| {
        Err(ImagingError::Corrupt { image_type, reason: "the decoder failed on malformed data".to_owned() })
    })
}

fn decode_jpeg(
    bytes: &[u8],
    header: &Header,
    jpeg: &JpegHeader,
    target: (u32, u32),
    sizes: &[(u32, u32)],
    limits: &Limits,
) -> Result<Decoded, ImagingError> {
    let (width, height) = (header.info.stored_width, header.info.stored_height);
    let eighths = jpeg_scale_eighths(width, height, target.0, target.1);
    let (out_w, out_h) = (scaled_by_eighths(width, eighths), scaled_by_eighths(height, eighths));
    let channels = if jpeg.sampling.len() == 1 { 1 } else { 3 };
    let decoding = jpeg_peak_bytes(width, height, jpeg, out_w, out_h);
    limits.check_memory(decoding.max(making_bytes(sizes, out_w, out_h, channels)))?;

    let max_buffer = usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX);
    let strips = jpeg_strips::plan(bytes, jpeg, width, height)
        .and_then(|cut| jpeg_strips::decode(bytes, jpeg, &cut, (width, height), eighths, max_buffer));
    let (data, info, icc_profile) = match strips {
        Some(strips) => (strips.data, strips.info, strips.icc_profile),
        None => {
            let mut decoder = jpeg_decoder::Decoder::new(bytes);
            decoder.set_max_decoding_buffer_size(max_buffer);
            if eighths < 8 {
                // Asking for exactly the scaled size makes the decoder pick `eighths`;
                // JPEG dimensions are 16-bit, so the scaled ones are too.
                let request = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
                decoder.scale(request(out_w), request(out_h)).map_err(jpeg_error)?;
            }
            let data = decoder.decode().map_err(jpeg_error)?;
            let info = decoder.info().ok_or_else(|| ImagingError::Corrupt {
                image_type: ImageType::Jpeg,
                reason: "the decoder returned no frame information".to_owned(),
            })?;
            (data, info, decoder.icc_profile())
        }
    };
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let pixels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => Pixels::new(w, h, Layout::Gray, data),
        jpeg_decoder::PixelFormat::L16 => {
            let narrowed = data.chunks_exact(2).map(|v| narrow_u16(u16::from_ne_bytes([v[0], v[1]]))).collect();
            Pixels::new(w, h, Layout::Gray, narrowed)
        }
        jpeg_decoder::PixelFormat::RGB24 => Pixels::new(w, h, Layout::Rgb, data),
        jpeg_decoder::PixelFormat::CMYK32 => {
            // The CMYK profile is used up here; the result is sRGB.
            let rgb = colour::cmyk_to_srgb(&data, icc_profile.as_deref());
            return Ok(Decoded { pixels: Pixels::new(w, h, Layout::Rgb, rgb), icc_profile: None });
        }
    };
    Ok(Decoded { pixels, icc_profile })
}

/// Peak bytes of a JPEG decode to `out_w`×`out_h`: the component planes and the
/// interleaved output (in strips: the strips and the stacked copy) and, for progressive
/// files, the full-size coefficients (2 bytes a sample), which `jpeg-decoder` keeps
/// whatever the scale.
fn jpeg_peak_bytes(width: u32, height: u32, jpeg: &JpegHeader, out_w: u32, out_h: u32) -> u64 {
    let components = jpeg.sampling.len().max(1) as u64;
    let out = u64::from(out_w + 16) * u64::from(out_h + 16);
    2 * out * components + progressive_coefficient_bytes(width, height, jpeg)
}

/// The coefficients of a whole progressive JPEG of `width`×`height` (2 bytes a sample, each
/// component at its own sampling), which a decoder keeps until the last scan whatever the
/// scale it decodes at; 0 for a sequential file. Both JPEG decoders (jpeg-decoder here,
/// libjpeg in `jpeg_bands`) do.
pub(crate) fn progressive_coefficient_bytes(width: u32, height: u32, jpeg: &JpegHeader) -> u64 {
    if !jpeg.progressive {
        return 0;
    }
    let h_max = u64::from(jpeg.sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1));
    let v_max = u64::from(jpeg.sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1));
    jpeg.sampling
        .iter()
        .map(|&(h, v)| {
            let comp_w = (u64::from(width) * u64::from(h)).div_ceil(h_max);
            let comp_h = (u64::from(height) * u64::from(v)).div_ceil(v_max);
            comp_w.div_ceil(8) * comp_h.div_ceil(8) * 64 * 2
        })
        .sum()
}

/// Peak bytes while the renditions are made from a decoded image of `source_w`×`source_h`
/// with `channels` bytes a pixel. Variants are made one after
/// another, so the largest counts. Resizing holds the source, the resizer's intermediate
/// image (the rendition's width by the source's height, or the other way round) and the
/// result; then orientation makes a copy and the encoder its buffers. The last rendition
/// frees the source before that; a rendition the size of the source is not resized.
fn making_bytes(sizes: &[(u32, u32)], source_w: u32, source_h: u32, channels: u64) -> u64 {
    let held = u64::from(source_w) * u64::from(source_h) * channels;
    let still_held = if sizes.len() > 1 { held } else { 0 };
    sizes
        .iter()
        .map(|&(w, h)| {
            let pixels = u64::from(w) * u64::from(h);
            let resizing = if (w, h) == (source_w, source_h) {
                held
            } else {
                let intermediate = (u64::from(w) * u64::from(source_h)).max(u64::from(h) * u64::from(source_w));
                held + channels * (intermediate + pixels)
            };
            // Which renditions are progressive is not known here, so the larger figure counts.
            let encoding = still_held + pixels * (channels + channels.max(encoder_bytes_per_pixel(true)));
            resizing.max(encoding)
        })
        .max()
        .unwrap_or(held)
}

fn jpeg_error(err: jpeg_decoder::Error) -> ImagingError {
    let image_type = ImageType::Jpeg;
    match err {
        jpeg_decoder::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImagingError::Truncated(image_type)
        }
        jpeg_decoder::Error::Unsupported(feature) => {
            ImagingError::UnsupportedEncoding { image_type, reason: format!("{feature:?}") }
        }
        other => ImagingError::Corrupt { image_type, reason: other.to_string() },
    }
}

fn decode_with_image_crate(
    bytes: &[u8],
    header: &Header,
    sizes: &[(u32, u32)],
    limits: &Limits,
) -> Result<Decoded, ImagingError> {
    let image_type = header.info.image_type;
    let to_error = |err| image_error(err, image_type);
    let reader = Cursor::new(bytes);
    match header.detail {
        Detail::Png { .. } => {
            let decoder = image::codecs::png::PngDecoder::new(reader).map_err(to_error)?;
            decode_image(decoder, header, 1, sizes, limits)
        }
        Detail::Webp { animated, .. } => {
            let decoder = image::codecs::webp::WebPDecoder::new(reader).map_err(to_error)?;
            // An animation is decoded through a canvas plus a frame buffer.
            decode_image(decoder, header, if animated { 2 } else { 1 }, sizes, limits)
        }
        Detail::Gif => {
            let decoder = image::codecs::gif::GifDecoder::new(reader).map_err(to_error)?;
            decode_image(decoder, header, 2, sizes, limits)
        }
        Detail::Jpeg(_) => {
            Err(ImagingError::Corrupt { image_type, reason: "internal: JPEG sent to the wrong decoder".to_owned() })
        }
    }
}

fn decode_image(
    mut decoder: impl ImageDecoder,
    header: &Header,
    buffers: u64,
    sizes: &[(u32, u32)],
    limits: &Limits,
) -> Result<Decoded, ImagingError> {
    let image_type = header.info.image_type;
    let to_error = |err| image_error(err, image_type);
    if decoder.dimensions() != (header.info.stored_width, header.info.stored_height) {
        return Err(ImagingError::Corrupt {
            image_type,
            reason: "the image data does not match the header".to_owned(),
        });
    }
    let decoded_bytes = decoder.total_bytes();
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    // Anything but 8 bits per channel is narrowed to 8 in a second buffer.
    let narrowing = if color.bytes_per_pixel() == color.channel_count() {
        0
    } else {
        u64::from(width) * u64::from(height) * u64::from(color.channel_count())
    };
    let channels = u64::from(color.channel_count());
    let needed =
        (decoded_bytes * buffers).max(decoded_bytes + narrowing).max(making_bytes(sizes, width, height, channels));
    limits.check_memory(needed)?;
    decoder.set_limits(limits.for_image_crate()).map_err(to_error)?;
    let icc_profile = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(|err| match err {
        ImageError::Limits(_) => ImagingError::TooMuchMemory {
            needed_bytes: needed.max(limits.max_alloc_bytes + 1),
            max_bytes: limits.max_alloc_bytes,
        },
        other => to_error(other),
    })?;
    Ok(Decoded { pixels: into_pixels(image), icc_profile })
}

fn image_error(err: ImageError, image_type: ImageType) -> ImagingError {
    match err {
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImagingError::Truncated(image_type)
        }
        ImageError::Unsupported(unsupported) => {
            ImagingError::UnsupportedEncoding { image_type, reason: unsupported.to_string() }
        }
        other => {
            let reason = other.to_string();
            // The PNG and GIF decoders report a cut-off stream as a decoding error.
            let lower = reason.to_ascii_lowercase();
            if lower.contains("eof") || lower.contains("unexpected end") {
                ImagingError::Truncated(image_type)
            } else {
                ImagingError::Corrupt { image_type, reason }
            }
        }
    }
}

/// Narrows to 8-bit grey, grey+alpha, RGB or RGBA, keeping alpha when there is one.
fn into_pixels(image: DynamicImage) -> Pixels {
    let (width, height) = (image.width(), image.height());
    let color = image.color();
    match (color.has_alpha(), color.has_color()) {
        (false, false) => Pixels::new(width, height, Layout::Gray, image.into_luma8().into_raw()),
        (true, false) => Pixels::new(width, height, Layout::GrayAlpha, image.into_luma_alpha8().into_raw()),
        (false, true) => Pixels::new(width, height, Layout::Rgb, image.into_rgb8().into_raw()),
        (true, true) => Pixels::new(width, height, Layout::Rgba, image.into_rgba8().into_raw()),
    }
}

fn narrow_u16(value: u16) -> u8 {
    // Rounds to the nearest 8-bit value: 65535 -> 255, 128 -> 0.
    u8::try_from((u32::from(value) * 255 + 32_767) / 65_535).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_samples_round_to_the_nearest_eight_bit_value() {
        assert_eq!(narrow_u16(0), 0);
        assert_eq!(narrow_u16(65_535), 255);
        assert_eq!(narrow_u16(257 * 128), 128);
        assert_eq!(narrow_u16(128), 0);
    }

    #[test]
    fn making_a_variant_counts_the_resizer_buffers_unless_there_is_no_resize() {
        let (held, variant) = (720 * 480 * 3, 320 * 213);
        // Resizing 720x480 RGB to 320x213: the source, 320x480 intermediate rows, the result.
        assert_eq!(making_bytes(&[(320, 213)], 720, 480, 3), held + 3 * (320 * 480 + variant));
        // The same size: no resize, then an orientation copy or the encoder's buffers.
        assert_eq!(making_bytes(&[(720, 480)], 720, 480, 3), 720 * 480 * (3 + encoder_bytes_per_pixel(true)));
        // Several renditions: the largest counts, and the source stays while encoding.
        assert_eq!(
            making_bytes(&[(10, 10), (720, 480)], 720, 480, 3),
            held + 720 * 480 * (3 + encoder_bytes_per_pixel(true))
        );
    }

    #[test]
    fn a_progressive_jpeg_needs_its_full_size_coefficients() {
        let baseline = JpegHeader { sampling: vec![(2, 2), (1, 1), (1, 1)], ..JpegHeader::default() };
        let progressive = JpegHeader { progressive: true, ..baseline.clone() };
        let small = jpeg_peak_bytes(5760, 3840, &baseline, 720, 480);
        let big = jpeg_peak_bytes(5760, 3840, &progressive, 720, 480);
        assert!(small < 4 << 20, "{small}");
        // 22 MP luma + two quarter-size chroma planes, 2 bytes per sample.
        assert!(big > 60 << 20 && big < 70 << 20, "{big}");
    }
}
