//! Writing the rendition: JPEG, PNG, WebP or AVIF, with no metadata at all.
//!
//! JPEG goes through libjpeg-turbo (`jpeg_encode`, whose settings are described there),
//! PNG and lossless WebP through the `image` crate, lossy WebP through libwebp, AVIF
//! through ravif.
//!
//! No encoder here is given EXIF, XMP, GPS or a thumbnail, so none can leak from the
//! upload. The only thing ever embedded is an ICC profile the colour step could not
//! convert (see `colour`).

use super::Recipe;
use super::error::ImagingError;
use super::image_type::OutputFormat;
use super::jpeg_encode;
use super::pixels::{Layout, Pixels};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder};

/// The largest side each format can store.
pub(crate) fn max_side(format: OutputFormat) -> u32 {
    match format {
        // libjpeg's own limit (JPEG_MAX_DIMENSION).
        OutputFormat::Jpeg => 65_500,
        OutputFormat::Png => i32::MAX.unsigned_abs(),
        OutputFormat::Webp | OutputFormat::LossyWebp => 16_383,
        // AV1's frame header stores each side in at most 16 bits.
        OutputFormat::Avif => u32::from(u16::MAX),
    }
}

/// Encodes `pixels` (already without alpha for JPEG) in `format`.
pub(crate) fn encode(pixels: &Pixels, recipe: &Recipe, icc_profile: Option<&[u8]>) -> Result<Vec<u8>, ImagingError> {
    let format = recipe.format;
    let failed = |reason: String| ImagingError::Encode { format: format.image_type(), reason };
    match format {
        OutputFormat::Jpeg => encode_jpeg(pixels, recipe.quality, recipe.progressive, icc_profile).map_err(failed),
        OutputFormat::Png => {
            let mut out = Vec::new();
            let encoder = PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive);
            write_image(encoder, pixels, icc_profile).map_err(failed)?;
            Ok(out)
        }
        OutputFormat::Webp => {
            let mut out = Vec::new();
            write_image(WebPEncoder::new_lossless(&mut out), pixels, icc_profile).map_err(failed)?;
            Ok(out)
        }
        OutputFormat::LossyWebp => encode_lossy_webp(pixels, recipe.quality, icc_profile).map_err(failed),
        OutputFormat::Avif => encode_avif(pixels, recipe.quality, icc_profile).map_err(failed),
    }
}

/// ravif's speed (1 slowest, 10 fastest): 6, as scripts/bench-formats measured the qualities
/// with (1.6 to 3.2 s a 1280 px photo there, with rav1e's assembly).
const AVIF_SPEED: u8 = 6;

/// AVIF through ravif, on the calling thread only (the crate is built without `threading`:
/// one encode holds one image-work permit and uses one core).
fn encode_avif(pixels: &Pixels, quality: u8, icc_profile: Option<&[u8]>) -> Result<Vec<u8>, String> {
    if icc_profile.is_some() {
        // ravif writes no colour profile, and without it the colours would be wrong; the
        // twin fails and pages keep offering the WebP and JPEG, which carry it.
        return Err("AVIF twins cannot carry the ICC profile this image keeps".to_owned());
    }
    let encoder =
        ravif::Encoder::new().with_quality(f32::from(quality)).with_speed(AVIF_SPEED).with_num_threads(Some(1));
    let (w, h) = (pixels.width as usize, pixels.height as usize);
    let d = &pixels.data;
    let encoded = match pixels.layout {
        Layout::Rgb => {
            let px: Vec<ravif::RGB8> = d.chunks_exact(3).map(|c| ravif::RGB8::new(c[0], c[1], c[2])).collect();
            encoder.encode_rgb(ravif::Img::new(&px[..], w, h))
        }
        Layout::Gray => {
            let px: Vec<ravif::RGB8> = d.iter().map(|&g| ravif::RGB8::new(g, g, g)).collect();
            encoder.encode_rgb(ravif::Img::new(&px[..], w, h))
        }
        Layout::Rgba => {
            let px: Vec<ravif::RGBA8> = d.chunks_exact(4).map(|c| ravif::RGBA8::new(c[0], c[1], c[2], c[3])).collect();
            encoder.encode_rgba(ravif::Img::new(&px[..], w, h))
        }
        Layout::GrayAlpha => {
            let px: Vec<ravif::RGBA8> = d.chunks_exact(2).map(|c| ravif::RGBA8::new(c[0], c[0], c[0], c[1])).collect();
            encoder.encode_rgba(ravif::Img::new(&px[..], w, h))
        }
    };
    encoded.map(|e| e.avif_file).map_err(|e| format!("ravif: {e}"))
}

/// How hard libwebp works (0 fastest to 6 smallest). 4 is libwebp's own default and what
/// scripts/bench-formats measured the qualities with.
const WEBP_METHOD: i32 = 4;

/// Lossy WebP through libwebp, which takes RGB or RGBA only: grey is widened first.
fn encode_lossy_webp(pixels: &Pixels, quality: u8, icc_profile: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let widened;
    let (data, has_alpha) = match pixels.layout {
        Layout::Rgb => (&pixels.data, false),
        Layout::Rgba => (&pixels.data, true),
        Layout::Gray => {
            widened = pixels.data.iter().flat_map(|&g| [g, g, g]).collect::<Vec<u8>>();
            (&widened, false)
        }
        Layout::GrayAlpha => {
            widened = pixels.data.chunks_exact(2).flat_map(|ga| [ga[0], ga[0], ga[0], ga[1]]).collect::<Vec<u8>>();
            (&widened, true)
        }
    };
    let encoder = if has_alpha {
        webp::Encoder::from_rgba(data, pixels.width, pixels.height)
    } else {
        webp::Encoder::from_rgb(data, pixels.width, pixels.height)
    };
    let mut config = webp::WebPConfig::new().map_err(|()| "libwebp refused its own default settings".to_owned())?;
    config.quality = f32::from(quality);
    config.method = WEBP_METHOD;
    let encoded = encoder.encode_advanced(&config).map_err(|e| format!("libwebp: {e:?}"))?;
    let bytes = encoded.to_vec();
    match icc_profile {
        None => Ok(bytes),
        // libwebp's simple API writes no ICC chunk; the container takes one afterwards.
        Some(icc) => {
            use img_parts::ImageICC as _;
            let mut riff = img_parts::webp::WebP::from_bytes(bytes.into()).map_err(|e| e.to_string())?;
            riff.set_icc_profile(Some(icc.to_vec().into()));
            Ok(Vec::from(riff.encoder().bytes()))
        }
    }
}

/// PNG and WebP through the image crate's common encoder interface.
fn write_image(mut encoder: impl ImageEncoder, pixels: &Pixels, icc_profile: Option<&[u8]>) -> Result<(), String> {
    if let Some(icc) = icc_profile {
        encoder.set_icc_profile(icc.to_vec()).map_err(|e| e.to_string())?;
    }
    encoder.write_image(&pixels.data, pixels.width, pixels.height, color_type(pixels.layout)).map_err(|e| e.to_string())
}

fn encode_jpeg(pixels: &Pixels, quality: u8, progressive: bool, icc_profile: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let size = (pixels.width, pixels.height);
    jpeg_encode::encode(&pixels.data, size, pixels.layout, quality, progressive, icc_profile)
}

fn color_type(layout: Layout) -> ExtendedColorType {
    match layout {
        Layout::Gray => ExtendedColorType::L8,
        Layout::GrayAlpha => ExtendedColorType::La8,
        Layout::Rgb => ExtendedColorType::Rgb8,
        Layout::Rgba => ExtendedColorType::Rgba8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_output_starts_with_jfif_and_has_no_exif() {
        let pixels = Pixels::new(16, 8, Layout::Rgb, vec![90; 16 * 8 * 3]);
        let jpeg = encode(&pixels, &Recipe::fit(16, 8), None).expect("encode");
        assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(!jpeg.windows(6).any(|w| w == b"Exif\0\0"));
    }

    #[test]
    fn jpeg_refuses_pixels_that_still_have_alpha() {
        let pixels = Pixels::new(1, 1, Layout::Rgba, vec![0; 4]);
        assert!(matches!(encode(&pixels, &Recipe::fit(1, 1), None), Err(ImagingError::Encode { .. })));
    }

    #[test]
    fn lossy_webp_is_a_riff_webp_file_with_vp8_data() {
        let pixels = Pixels::new(16, 8, Layout::Rgb, [200u8, 40, 90].repeat(16 * 8));
        let recipe = Recipe::fit(16, 8).with_format(OutputFormat::LossyWebp).with_quality(75);
        let webp = encode(&pixels, &recipe, None).expect("encode");
        assert_eq!(&webp[..4], b"RIFF");
        assert_eq!(&webp[8..12], b"WEBP");
        assert!(webp.windows(4).any(|w| w == b"VP8 "), "lossy, not VP8L");
        let decoded = image::load_from_memory(&webp).expect("decode").to_rgb8();
        assert_eq!(decoded.dimensions(), (16, 8));
        let px = decoded.get_pixel(8, 4).0;
        assert!(px.iter().zip([200u8, 40, 90]).all(|(a, b)| a.abs_diff(b) < 8), "{px:?}");
    }

    #[test]
    fn lossy_webp_can_carry_an_unconverted_icc_profile() {
        let pixels = Pixels::new(4, 4, Layout::Rgb, vec![90; 4 * 4 * 3]);
        let recipe = Recipe::fit(4, 4).with_format(OutputFormat::LossyWebp);
        let webp = encode(&pixels, &recipe, Some(b"not really a profile")).expect("encode");
        assert!(webp.windows(4).any(|w| w == b"ICCP"));
        assert!(image::load_from_memory(&webp).is_ok());
    }

    #[test]
    fn png_and_webp_keep_grey_and_alpha_layouts() {
        let pixels = Pixels::new(2, 2, Layout::GrayAlpha, vec![10, 0, 20, 255, 30, 128, 40, 255]);
        for format in [OutputFormat::Png, OutputFormat::Webp, OutputFormat::LossyWebp] {
            let bytes = encode(&pixels, &Recipe::fit(2, 2).with_format(format), None).expect("encode");
            let decoded = image::load_from_memory(&bytes).expect("decode");
            assert!(decoded.color().has_alpha(), "{format:?}");
        }
    }

    #[test]
    fn avif_is_an_avif_file_of_every_layout_and_refuses_a_profile_it_cannot_carry() {
        let layouts = [
            Pixels::new(16, 8, Layout::Rgb, [200u8, 40, 90].repeat(16 * 8)),
            Pixels::new(2, 2, Layout::Gray, vec![10, 20, 30, 40]),
            Pixels::new(2, 2, Layout::GrayAlpha, vec![10, 0, 20, 255, 30, 128, 40, 255]),
            Pixels::new(1, 1, Layout::Rgba, vec![1, 2, 3, 4]),
        ];
        let recipe = |p: &Pixels| Recipe::fit(p.width, p.height).with_format(OutputFormat::Avif).with_quality(80);
        for pixels in &layouts {
            let avif = encode(pixels, &recipe(pixels), None).expect("encode");
            // An ISO-BMFF file whose brand is AVIF's.
            assert_eq!(&avif[4..12], b"ftypavif", "{:?}", pixels.layout);
        }
        assert!(encode(&layouts[0], &recipe(&layouts[0]), Some(b"a profile")).is_err());
    }
}
