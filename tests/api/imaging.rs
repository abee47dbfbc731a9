//! The imaging engine against the shared photo set: geometry, orientation, metadata,
//! alpha, colour, animation, hostile files, and the header-only probe.

use std::path::PathBuf;

use image::{AnimationDecoder, ExtendedColorType, ImageEncoder};
use shoebox::imaging::{
    self, ImageType, ImagingError, Limits, NotImage, Orientation, OutputFormat, Recipe, fit_within, probe, render,
    render_all, render_all_then, render_with_limits, sniff,
};
use shoebox_app::cli::resize::{ResizeArgs, run};

const PHOTOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/photos");

fn photo(name: &str) -> Vec<u8> {
    let path = format!("{PHOTOS}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every file in the set that the engine decodes.
const DECODABLE: &[&str] = &[
    "camera/canon-eos-5d-mark-iii_5760x3840.jpg",
    "camera/canon-eos-5d_2912x4368_portrait.jpg",
    "camera/leica-t-typ701_4928x3264_orient8.jpg",
    "camera/nikon-d3100_4608x3072.jpg",
    "camera/oppo-r7-plus_3120x4160_420.jpg",
    "camera/samsung-galaxy-s7-edge_4032x3024.jpg",
    "formats/plum-blossom_2048x2048_rgba.png",
    "formats/scanned-photo_1412x2077_rgb.png",
    "formats/nikon-p7000_3648x2736_orient6_badxmp.webp",
    "formats/alpha-lossy_400x301.webp",
    "formats/animation-lossy_320x240.webp",
    "formats/star_animated.gif",
    "formats/pbar-animated-invalid-xmp.gif",
];

const REFUSED_FORMATS: &[(&str, ImageType)] = &[
    ("formats/iphone8_4032x3024.heic", ImageType::Heic),
    ("formats/samsung-s10plus_4032x3024_orient6.heic", ImageType::Heic),
    ("formats/canon-eos-70d_5472x3648.avif", ImageType::Avif),
    ("formats/hato_3082x2048_8bpc.avif", ImageType::Avif),
    ("formats/plum-blossom_2048_alpha.avif", ImageType::Avif),
    ("formats/star_animated_alpha.avifs", ImageType::Avif),
];

/// Decoded output pixels as RGBA8, with the width and height.
struct Rgba {
    width: u32,
    height: u32,
    data: Vec<u8>,
    has_alpha: bool,
}

fn decode(bytes: &[u8]) -> Rgba {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // The engine's image build has no JPEG decoder; jpeg-decoder is independent of it.
        let mut decoder = jpeg_decoder::Decoder::new(bytes);
        let pixels = decoder.decode().expect("output JPEG decodes");
        let info = decoder.info().expect("info after decode");
        let data = match info.pixel_format {
            jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l, 255]).collect(),
            jpeg_decoder::PixelFormat::RGB24 => pixels.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
            other => panic!("unexpected JPEG output {other:?}"),
        };
        return Rgba { width: u32::from(info.width), height: u32::from(info.height), data, has_alpha: false };
    }
    let image = image::load_from_memory(bytes).expect("output decodes");
    Rgba {
        width: image.width(),
        height: image.height(),
        has_alpha: image.color().has_alpha(),
        data: image.into_rgba8().into_raw(),
    }
}

/// Mean absolute difference per RGB sample, ignoring alpha.
fn mean_abs_diff(a: &Rgba, b: &Rgba) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let total: u64 = a
        .data
        .chunks_exact(4)
        .zip(b.data.chunks_exact(4))
        .flat_map(|(p, q)| (0..3).map(move |i| u64::from(p[i].abs_diff(q[i]))))
        .sum();
    total as f64 / (f64::from(a.width) * f64::from(a.height) * 3.0)
}

fn png_bytes(width: u32, height: u32, color: ExtendedColorType, data: &[u8], icc: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut out);
    if let Some(icc) = icc {
        encoder.set_icc_profile(icc).expect("PNG takes ICC");
    }
    encoder.write_image(data, width, height, color).expect("PNG encodes");
    out
}

fn refusal(name: &str) -> ImagingError {
    render(&photo(name), &Recipe::fit(320, 320)).expect_err("must be refused")
}

// --- Geometry ---

#[test]
fn a_camera_jpeg_fits_the_box_by_its_longer_side() {
    let variant = render(&photo("camera/canon-eos-5d-mark-iii_5760x3840.jpg"), &Recipe::fit(320, 320)).expect("resize");
    assert_eq!((variant.width, variant.height), (320, 213));
    assert_eq!(variant.image_type, ImageType::Jpeg);
    let out = decode(&variant.bytes);
    assert_eq!((out.width, out.height), (320, 213));
    assert_eq!(variant.source.image_type, ImageType::Jpeg);
    assert_eq!((variant.source.width, variant.source.height), (5760, 3840));
}

#[test]
fn an_image_smaller_than_the_box_is_never_upscaled() {
    let variant =
        render(&photo("formats/alpha-lossy_400x301.webp"), &Recipe::fit(1280, 1280).with_format(OutputFormat::Png))
            .expect("resize");
    assert_eq!((variant.width, variant.height), (400, 301));
}

#[test]
fn one_pixel_and_odd_boxes_are_met_exactly() {
    let bytes = photo("orientation/Landscape_1.jpg");
    // Landscape_1 is stored as 1800x1200.
    for ((box_w, box_h), expected) in [((1, 1), (1, 1)), ((333, 77), (116, 77)), ((101, 99), (101, 67))] {
        let variant = render(&bytes, &Recipe::fit(box_w, box_h)).expect("resize");
        let out = decode(&variant.bytes);
        assert_eq!((out.width, out.height), expected, "box {box_w}x{box_h}");
        assert_eq!((variant.width, variant.height), expected);
    }
}

#[test]
fn extreme_aspect_ratios_within_the_limits_keep_at_least_one_pixel() {
    let line: Vec<u8> = (0..10_000u32).map(|i| (i % 256) as u8).collect();
    for (width, height, expected) in [(10_000, 1, (320, 1)), (1, 10_000, (1, 320))] {
        let png = png_bytes(width, height, ExtendedColorType::L8, &line, None);
        for format in [OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::Webp] {
            let variant = render(&png, &Recipe::fit(320, 320).with_format(format)).expect("resize");
            assert_eq!((variant.width, variant.height), expected, "{format:?}");
            let out = decode(&variant.bytes);
            assert_eq!((out.width, out.height), expected, "{format:?}");
        }
    }
}

#[test]
fn several_variants_come_from_one_upload() {
    let recipes = [
        Recipe::fit(320, 320),
        Recipe::fit(1280, 1280).with_format(OutputFormat::Webp),
        Recipe::fit(64, 64).with_format(OutputFormat::Png),
    ];
    let variants = render_all(&photo("camera/leica-t-typ701_4928x3264_orient8.jpg"), &recipes, &Limits::default())
        .expect("resize");
    let summary: Vec<_> = variants.iter().map(|v| (v.width, v.height, v.image_type)).collect();
    assert_eq!(summary, vec![(212, 320, ImageType::Jpeg), (848, 1280, ImageType::Webp), (42, 64, ImageType::Png)]);
    for variant in &variants {
        let out = decode(&variant.bytes);
        assert_eq!((out.width, out.height), (variant.width, variant.height));
    }
}

/// The reference for a JPEG rendition: the whole image decoded at full size by another
/// decoder, turned upright and resized in one go by the `image` crate (Lanczos3).
fn whole_image_reference(bytes: &[u8], width: u32, height: u32) -> Rgba {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    let pixels = decoder.decode().expect("the photo decodes");
    let info = decoder.info().expect("info");
    let rgb = image::RgbImage::from_raw(u32::from(info.width), u32::from(info.height), pixels).expect("RGB");
    let mut whole = image::DynamicImage::ImageRgb8(rgb);
    let orientation = probe(bytes).expect("probe").orientation.exif_value();
    whole.apply_orientation(image::metadata::Orientation::from_exif(orientation).expect("1 to 8"));
    let small = whole.resize_exact(width, height, image::imageops::FilterType::Lanczos3);
    Rgba { width, height, has_alpha: false, data: small.into_rgba8().into_raw() }
}

#[test]
fn camera_jpegs_made_in_bands_look_like_a_whole_image_resize() {
    // JPEGs are decoded a band of rows at a time and resized as the rows come: a misplaced
    // band, a seam or a lost row would show against the same photo resized whole.
    let recipes = [Recipe::fit(1280, 1280).with_quality(95), Recipe::fit(320, 320).with_quality(95)];
    for name in DECODABLE.iter().filter(|n| n.starts_with("camera/")) {
        let bytes = photo(name);
        let made = render_all(&bytes, &recipes, &Limits::default()).expect("resize");
        for variant in &made {
            let out = decode(&variant.bytes);
            let reference = whole_image_reference(&bytes, variant.width, variant.height);
            let diff = mean_abs_diff(&out, &reference);
            assert!(diff < 2.0, "{name} at {}x{}: mean difference {diff:.2}", variant.width, variant.height);
            // The worst row too, so one bad band cannot hide in the mean.
            let row = out.width as usize * 4;
            let worst = out
                .data
                .chunks_exact(row)
                .zip(reference.data.chunks_exact(row))
                .map(|(a, b)| a.iter().zip(b).map(|(p, q)| u64::from(p.abs_diff(*q))).sum::<u64>() as f64 / row as f64)
                .fold(0.0, f64::max);
            assert!(worst < 8.0, "{name} at {}x{}: worst row differs by {worst:.2}", variant.width, variant.height);
        }
    }
}

#[test]
fn a_cmyk_jpeg_which_the_banded_path_declines_is_still_made_whole() {
    // libjpeg gives CMYK JPEGs as CMYK; the banded path hands them to the whole-image decoder.
    let (w, h) = (64u16, 48u16);
    let cmyk = [20u8, 200, 120, 10].repeat(usize::from(w) * usize::from(h));
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 95).encode(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk).expect("encode");
    let made = render(&bytes, &Recipe::fit(32, 32)).expect("a CMYK JPEG is resized");
    assert_eq!((made.width, made.height), (32, 24));
    let out = decode(&made.bytes);
    let first = &out.data[..3];
    let flat = out.data.chunks_exact(4).all(|p| p[..3].iter().zip(first).all(|(a, b)| a.abs_diff(*b) <= 3));
    assert!(flat, "a flat CMYK colour stays one colour, first {first:?}");
}

#[test]
fn the_decoded_callback_comes_once_for_a_sound_file_and_never_for_a_damaged_one() {
    // Verification answers on this callback and lets the variants finish after it.
    let recipes = [Recipe::fit(320, 320), Recipe::fit(1280, 1280)];
    let mut calls = 0;
    let made = render_all_then(&photo("camera/nikon-d3100_4608x3072.jpg"), &recipes, &Limits::default(), || calls += 1)
        .expect("resize");
    assert_eq!((calls, made.len()), (1, 2));
    for damaged in ["hostile/truncated-35pct_nikon-d3100.jpg", "hostile/svg-with-script.jpg"] {
        let mut calls = 0;
        let result = render_all_then(&photo(damaged), &recipes, &Limits::default(), || calls += 1);
        assert!(result.is_err(), "{damaged}");
        assert_eq!(calls, 0, "{damaged}");
    }
}

#[test]
fn jpeg_output_is_quality_82_unless_the_recipe_says_otherwise() {
    assert_eq!(Recipe::fit(10, 10).quality, 82);
    let bytes = photo("orientation/Landscape_1.jpg");
    let first_luma_quantiser = |jpeg: &[u8]| {
        let at = jpeg.windows(2).position(|w| w == [0xFF, 0xDB]).expect("a DQT segment");
        jpeg[at + 5]
    };
    let default = render(&bytes, &Recipe::fit(300, 300)).expect("resize");
    // IJG scaling of the Annex K table: DC 16 at quality 82 is 16 × 36% ≈ 6.
    assert_eq!(first_luma_quantiser(&default.bytes), 6);
    let fine = render(&bytes, &Recipe::fit(300, 300).with_quality(95)).expect("resize");
    assert_eq!(first_luma_quantiser(&fine.bytes), 2);
    assert!(fine.bytes.len() > default.bytes.len());
}

#[test]
fn a_progressive_recipe_writes_a_progressive_jpeg_that_decodes_to_the_same_size() {
    let bytes = photo("camera/samsung-galaxy-s7-edge_4032x3024.jpg");
    let baseline = render(&bytes, &Recipe::fit(320, 320)).expect("resize");
    let progressive = render(&bytes, &Recipe::fit(320, 320).with_progressive(true)).expect("resize");
    // SOF0 is a baseline frame, SOF2 a progressive one.
    assert!(jpeg_segments(&baseline.bytes).contains(&0xC0), "baseline by default");
    assert!(!jpeg_segments(&baseline.bytes).contains(&0xC2));
    assert!(jpeg_segments(&progressive.bytes).contains(&0xC2), "a progressive frame");
    assert!(!jpeg_segments(&progressive.bytes).contains(&0xC0));
    let (a, b) = (decode(&baseline.bytes), decode(&progressive.bytes));
    assert_eq!((b.width, b.height), (progressive.width, progressive.height));
    assert_eq!((a.width, a.height), (b.width, b.height));
    // The same quantised coefficients in another order: the same pixels.
    assert_eq!(mean_abs_diff(&a, &b), 0.0);
}

#[test]
fn an_empty_box_or_a_quality_of_zero_is_a_caller_error() {
    let bytes = photo("orientation/Landscape_1.jpg");
    for recipe in [Recipe::fit(0, 10), Recipe::fit(10, 0), Recipe::fit(10, 10).with_quality(0)] {
        let err = render(&bytes, &recipe).expect_err("invalid");
        assert!(matches!(err, ImagingError::InvalidRecipe(_)), "{err:?}");
        assert!(!err.is_caused_by_input());
    }
}

// --- Orientation ---

#[test]
fn every_orientation_file_comes_out_looking_like_orientation_1() {
    for shape in ["Landscape", "Portrait"] {
        let recipe = Recipe::fit(240, 240).with_format(OutputFormat::Png);
        let upright = render(&photo(&format!("orientation/{shape}_1.jpg")), &recipe).expect("resize _1");
        let reference = decode(&upright.bytes);
        for n in 1..=8u32 {
            let bytes = photo(&format!("orientation/{shape}_{n}.jpg"));
            let info = probe(&bytes).expect("probe");
            assert_eq!(info.orientation, Orientation::from_exif(n), "{shape}_{n}");
            assert_eq!(info.orientation.swaps_dimensions(), n >= 5, "{shape}_{n}");
            let variant = render(&bytes, &recipe).expect("resize");
            let out = decode(&variant.bytes);
            assert_eq!((out.width, out.height), (reference.width, reference.height), "{shape}_{n}");
            let diff = mean_abs_diff(&out, &reference);
            assert!(diff < 4.0, "{shape}_{n} differs from {shape}_1 by {diff:.2} on average");
        }
        // The comparison can tell orientations apart: _1 against itself mirrored is far off.
        let mirrored = render(&photo(&format!("orientation/{shape}_1.jpg")), &recipe)
            .map(|v| decode(&v.bytes))
            .map(|mut rgba| {
                let row = rgba.width as usize * 4;
                for line in rgba.data.chunks_exact_mut(row) {
                    let pixels: Vec<[u8; 4]> = line.chunks_exact(4).rev().map(|p| [p[0], p[1], p[2], p[3]]).collect();
                    line.copy_from_slice(&pixels.concat());
                }
                rgba
            })
            .expect("resize");
        assert!(mean_abs_diff(&mirrored, &reference) > 20.0);
    }
}

#[test]
fn a_camera_orientation_tag_turns_the_photo_upright() {
    let variant =
        render(&photo("camera/leica-t-typ701_4928x3264_orient8.jpg"), &Recipe::fit(320, 320)).expect("resize");
    assert_eq!((variant.width, variant.height), (212, 320));
    let webp =
        render(&photo("formats/nikon-p7000_3648x2736_orient6_badxmp.webp"), &Recipe::fit(320, 320)).expect("resize");
    assert_eq!((webp.width, webp.height), (240, 320));
}

// --- Metadata ---

#[test]
fn no_exif_gps_xmp_or_thumbnail_survives_in_any_output_format() {
    let read_exif = |bytes: &[u8]| exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes));
    let source = photo("camera/oppo-r7-plus_3120x4160_420.jpg");
    let source_exif = read_exif(&source).expect("the source has EXIF");
    assert!(source_exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY).is_some());
    for format in [OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::Webp] {
        let variant = render(&source, &Recipe::fit(640, 640).with_format(format)).expect("resize");
        let out = &variant.bytes;
        assert!(read_exif(out).is_err(), "{format:?} output has EXIF");
        for needle in [&b"Exif\0\0"[..], b"eXIf", b"EXIF", b"http://ns.adobe.com", b"XMP"] {
            assert!(!contains(out, needle), "{format:?} output contains {needle:?}");
        }
        // One image only: no embedded thumbnail (a second SOI).
        let sois = out.windows(3).filter(|w| *w == [0xFF, 0xD8, 0xFF]).count();
        assert!(sois <= 1, "{format:?}: {sois} JPEG images inside");
    }
    let jpeg = render(&source, &Recipe::fit(640, 640)).expect("resize").bytes;
    assert!(jpeg_segments(&jpeg).iter().all(|&m| m != 0xE1), "an APP1 segment");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The marker codes of a JPEG's header segments, up to SOS.
fn jpeg_segments(jpeg: &[u8]) -> Vec<u8> {
    let mut markers = Vec::new();
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        markers.push(marker);
        if marker == 0xDA {
            break;
        }
        at += 2 + usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
    }
    markers
}

// --- Alpha ---

#[test]
fn a_transparent_png_keeps_its_alpha_in_png_and_webp() {
    let source = photo("formats/plum-blossom_2048x2048_rgba.png");
    let original = decode(&source);
    let clear = |rgba: &Rgba| {
        rgba.data.chunks_exact(4).filter(|p| p[3] == 0).count() as f64
            / (f64::from(rgba.width) * f64::from(rgba.height))
    };
    assert!(clear(&original) > 0.1);
    for format in [OutputFormat::Png, OutputFormat::Webp] {
        let variant = render(&source, &Recipe::fit(256, 256).with_format(format)).expect("resize");
        let out = decode(&variant.bytes);
        assert!(out.has_alpha, "{format:?}");
        let (want, got) = (clear(&original), clear(&out));
        assert!((want - got).abs() < 0.05, "{format:?}: {got:.3} clear, source {want:.3}");
        // No dark fringes: opaque pixels are not darker on average than the source's.
        let mean_opaque = |rgba: &Rgba| {
            let opaque: Vec<_> = rgba.data.chunks_exact(4).filter(|p| p[3] == 255).collect();
            opaque.iter().map(|p| u64::from(p[0]) + u64::from(p[1]) + u64::from(p[2])).sum::<u64>() as f64
                / opaque.len() as f64
        };
        assert!(mean_opaque(&out) > mean_opaque(&original) - 12.0, "{format:?}");
    }
}

#[test]
fn transparent_areas_turn_white_not_black_in_jpeg() {
    for name in ["formats/alpha-lossy_400x301.webp", "formats/plum-blossom_2048x2048_rgba.png"] {
        let source = photo(name);
        let original = decode(&source);
        let variant = render(&source, &Recipe::fit(original.width, original.height)).expect("resize");
        let out = decode(&variant.bytes);
        assert_eq!((out.width, out.height), (original.width, original.height));
        let clear: Vec<usize> =
            original.data.chunks_exact(4).enumerate().filter(|(_, p)| p[3] == 0).map(|(i, _)| i).collect();
        assert!(!clear.is_empty(), "{name}");
        let whiteish = clear.iter().filter(|&&i| out.data[i * 4..i * 4 + 3].iter().all(|&c| c > 230)).count();
        assert!(whiteish * 100 > clear.len() * 95, "{name}: {whiteish} of {}", clear.len());
    }
}

#[test]
fn a_webp_with_alpha_keeps_it_in_webp_and_png() {
    let source = photo("formats/alpha-lossy_400x301.webp");
    for format in [OutputFormat::Png, OutputFormat::Webp] {
        let variant = render(&source, &Recipe::fit(200, 200).with_format(format)).expect("resize");
        let out = decode(&variant.bytes);
        assert!(out.has_alpha && out.data.chunks_exact(4).any(|p| p[3] < 255), "{format:?}");
    }
}

#[test]
fn an_alpha_channel_that_is_fully_opaque_is_dropped() {
    let rgba: Vec<u8> = (0..16 * 16).flat_map(|i| [i as u8, 50, 100, 255]).collect();
    let png = png_bytes(16, 16, ExtendedColorType::Rgba8, &rgba, None);
    let variant = render(&png, &Recipe::fit(8, 8).with_format(OutputFormat::Png)).expect("resize");
    assert!(!decode(&variant.bytes).has_alpha);
}

// --- Colour ---

/// Display P3 to sRGB for one 8-bit colour, with the published D65 matrix (both spaces
/// use the sRGB transfer curve). Independent of the engine's colour code.
fn p3_to_srgb(rgb: [u8; 3]) -> [u8; 3] {
    let linear = |v: u8| {
        let v = f64::from(v) / 255.0;
        if v <= 0.04045 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
    };
    let encode = |v: f64| {
        let v = v.clamp(0.0, 1.0);
        let e = if v <= 0.003_130_8 { v * 12.92 } else { 1.055 * v.powf(1.0 / 2.4) - 0.055 };
        (e * 255.0).round() as u8
    };
    let [r, g, b] = rgb.map(linear);
    [
        encode(1.224_940_2 * r - 0.224_940_4 * g),
        encode(-0.042_056_9 * r + 1.042_057_1 * g),
        encode(-0.019_637_6 * r - 0.078_636_1 * g + 1.098_273_5 * b),
    ]
}

fn assert_close(got: &[u8], want: [u8; 3], tolerance: u8, what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!(g.abs_diff(w) <= tolerance, "{what}: got {got:?}, want {want:?}");
    }
}

#[test]
fn a_display_p3_png_is_converted_to_srgb() {
    let colour = [200u8, 120, 80];
    let p3 = moxcms::ColorProfile::new_display_p3().encode().expect("P3 profile");
    let png = png_bytes(64, 64, ExtendedColorType::Rgb8, &colour.repeat(64 * 64), Some(p3));
    let expected = p3_to_srgb(colour);
    assert!(expected[0] > colour[0] + 8, "the test colour must move: {expected:?}");
    for format in [OutputFormat::Png, OutputFormat::Webp] {
        let variant = render(&png, &Recipe::fit(32, 32).with_format(format)).expect("resize");
        assert!(!contains(&variant.bytes, b"iCCP") && !contains(&variant.bytes, b"ICCP"));
        let out = decode(&variant.bytes);
        assert_close(&out.data[..3], expected, 2, &format!("{format:?}"));
    }
}

#[test]
fn a_display_p3_jpeg_is_converted_to_srgb() {
    let colour = [60u8, 170, 90];
    let p3 = moxcms::ColorProfile::new_display_p3().encode().expect("P3 profile");
    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 100);
    encoder.add_icc_profile(&p3).expect("ICC fits");
    encoder.encode(&colour.repeat(64 * 64), 64, 64, jpeg_encoder::ColorType::Rgb).expect("JPEG encodes");
    let variant = render(&jpeg, &Recipe::fit(32, 32).with_quality(100)).expect("resize");
    assert!(!contains(&variant.bytes, b"ICC_PROFILE"));
    let out = decode(&variant.bytes);
    assert_close(&out.data[..3], p3_to_srgb(colour), 4, "JPEG");
}

#[test]
fn colours_without_a_profile_or_with_srgb_are_left_alone() {
    let colour = [200u8, 120, 80];
    let srgb = moxcms::ColorProfile::new_srgb().encode().expect("sRGB profile");
    for icc in [None, Some(srgb)] {
        let png = png_bytes(8, 8, ExtendedColorType::Rgb8, &colour.repeat(64), icc);
        let variant = render(&png, &Recipe::fit(8, 8).with_format(OutputFormat::Png)).expect("resize");
        assert_eq!(&decode(&variant.bytes).data[..3], &colour[..]);
    }
}

// --- Animation ---

#[test]
fn animated_gif_and_webp_give_their_first_frame() {
    for (name, is_gif) in [
        ("formats/star_animated.gif", true),
        ("formats/animation-lossy_320x240.webp", false),
        ("formats/pbar-animated-invalid-xmp.gif", true),
    ] {
        let bytes = photo(name);
        let reader = std::io::Cursor::new(&bytes[..]);
        let frames = if is_gif {
            image::codecs::gif::GifDecoder::new(reader).expect("gif").into_frames()
        } else {
            image::codecs::webp::WebPDecoder::new(reader).expect("webp").into_frames()
        };
        let first = frames.take(1).collect::<Result<Vec<_>, _>>().expect("frames").remove(0).into_buffer();
        let info = probe(&bytes).expect("probe");
        let recipe = Recipe::fit(info.width, info.height).with_format(OutputFormat::Png);
        let out = decode(&render(&bytes, &recipe).expect("resize").bytes);
        assert_eq!((out.width, out.height), first.dimensions(), "{name}");
        let first = Rgba { width: first.width(), height: first.height(), data: first.into_raw(), has_alpha: true };
        // Transparent pixels may differ in colour; compare the visible ones.
        let visible_diff: u64 = out
            .data
            .chunks_exact(4)
            .zip(first.data.chunks_exact(4))
            .filter(|(_, f)| f[3] == 255)
            .map(|(o, f)| (0..3).map(|i| u64::from(o[i].abs_diff(f[i]))).sum::<u64>())
            .sum();
        assert!(visible_diff == 0, "{name}: first frame differs by {visible_diff}");
    }
}

// --- Hostile files ---

#[test]
fn a_png_bomb_is_refused_from_its_header_for_its_pixel_count() {
    let err = refusal("hostile/png-bomb_16000x16000_gray.png");
    assert!(matches!(err, ImagingError::TooManyPixels { width: 16_000, height: 16_000, .. }), "{err:?}");
    assert_eq!(err.code(), "too_many_pixels");
}

#[test]
fn a_jpeg_declaring_65500_pixels_a_side_is_refused_before_decoding() {
    let err = refusal("hostile/jpeg-huge-dims_65500x65500_truncated.jpg");
    assert!(matches!(err, ImagingError::DimensionsTooLarge { width: 65_500, height: 65_500, .. }), "{err:?}");
}

#[test]
fn a_png_declaring_100000_pixels_a_side_is_refused_before_decoding() {
    let err = refusal("hostile/png-huge-dims_100000x100000_truncated.png");
    assert!(matches!(err, ImagingError::DimensionsTooLarge { width: 100_000, .. }), "{err:?}");
}

#[test]
fn a_truncated_jpeg_is_refused_as_incomplete() {
    let err = refusal("hostile/truncated-35pct_nikon-d3100.jpg");
    assert!(matches!(err, ImagingError::Truncated(ImageType::Jpeg)), "{err:?}");
    assert!(err.to_string().contains("incomplete"));
}

#[test]
fn a_jpeg_with_damaged_entropy_data_is_refused_not_rendered_half_grey() {
    let err = refusal("hostile/olympus-corrupted-entropy_3648x2736.jpg");
    assert!(matches!(err, ImagingError::Corrupt { image_type: ImageType::Jpeg, .. }), "{err:?}");
    // At every scale, so every variant of an upload agrees.
    let bytes = photo("hostile/olympus-corrupted-entropy_3648x2736.jpg");
    for size in [64, 1000, 4000] {
        let err = render(&bytes, &Recipe::fit(size, size)).expect_err("refused");
        assert_eq!(err.code(), "corrupt", "at {size}");
    }
}

#[test]
fn an_svg_named_jpg_is_refused_as_svg() {
    let err = refusal("hostile/svg-with-script.jpg");
    assert!(matches!(err, ImagingError::NotAnImage { found: NotImage::Svg }), "{err:?}");
}

#[test]
fn an_html_page_named_png_is_refused_as_html() {
    let err = refusal("hostile/html-with-script.png");
    assert!(matches!(err, ImagingError::NotAnImage { found: NotImage::Html }), "{err:?}");
}

#[test]
fn an_empty_file_is_refused_as_empty() {
    let err = refusal("hostile/empty.jpg");
    assert!(matches!(err, ImagingError::Empty), "{err:?}");
    assert_eq!(err.code(), "empty_file");
}

#[test]
fn a_file_of_a_few_bytes_is_not_an_image() {
    for bytes in [&b"hi"[..], b"\xFF", b"\x89PN"] {
        let err = render(bytes, &Recipe::fit(64, 64)).expect_err("refused");
        assert_eq!(err.code(), "not_an_image", "{bytes:?}");
    }
}

#[test]
fn cut_off_pngs_and_headers_are_refused_as_incomplete() {
    let png = photo("formats/scanned-photo_1412x2077_rgb.png");
    let err = render(&png[..png.len() / 2], &Recipe::fit(64, 64)).expect_err("cut");
    assert!(matches!(err, ImagingError::Truncated(ImageType::Png)), "{err:?}");
    let jpeg = photo("camera/nikon-d3100_4608x3072.jpg");
    let err = render(&jpeg[..2000], &Recipe::fit(64, 64)).expect_err("cut");
    assert!(matches!(err, ImagingError::Truncated(ImageType::Jpeg)), "{err:?}");
}

#[test]
fn the_memory_limit_is_checked_before_decoding() {
    let tight = Limits { max_alloc_bytes: 1 << 20, ..Limits::default() };
    let png = photo("formats/plum-blossom_2048x2048_rgba.png");
    let err = render_with_limits(&png, &Recipe::fit(64, 64), &tight).expect_err("limit");
    assert!(matches!(err, ImagingError::TooMuchMemory { .. }), "{err:?}");
    // JPEG shrinks on load, so a small variant of a 22 MP photo fits in a few MiB.
    let jpeg = photo("camera/canon-eos-5d-mark-iii_5760x3840.jpg");
    let small = Limits { max_alloc_bytes: 8 << 20, ..Limits::default() };
    render_with_limits(&jpeg, &Recipe::fit(320, 320), &small).expect("fits");
    let err = render_with_limits(&jpeg, &Recipe::fit(2000, 2000), &small).expect_err("a bigger variant does not fit");
    assert_eq!(err.code(), "too_much_memory");
}

#[test]
fn heic_and_avif_are_identified_and_refused_with_advice() {
    for &(name, kind) in REFUSED_FORMATS {
        let bytes = photo(name);
        assert_eq!(sniff(&bytes).expect("sniff"), kind, "{name}");
        assert!(matches!(probe(&bytes), Err(ImagingError::UnsupportedType(k)) if k == kind));
        let err = render(&bytes, &Recipe::fit(320, 320)).expect_err("refused");
        assert!(matches!(err, ImagingError::UnsupportedType(k) if k == kind), "{name}");
        assert!(err.to_string().contains("JPEG"), "{err}");
    }
}

#[test]
fn every_refusal_has_a_stable_code_and_is_the_uploads_fault() {
    let hostile = [
        ("hostile/png-bomb_16000x16000_gray.png", "too_many_pixels"),
        ("hostile/jpeg-huge-dims_65500x65500_truncated.jpg", "dimensions_too_large"),
        ("hostile/png-huge-dims_100000x100000_truncated.png", "dimensions_too_large"),
        ("hostile/truncated-35pct_nikon-d3100.jpg", "truncated"),
        ("hostile/olympus-corrupted-entropy_3648x2736.jpg", "corrupt"),
        ("hostile/svg-with-script.jpg", "not_an_image"),
        ("hostile/html-with-script.png", "not_an_image"),
        ("hostile/empty.jpg", "empty_file"),
        ("formats/iphone8_4032x3024.heic", "unsupported_type"),
    ];
    for (name, code) in hostile {
        let err = refusal(name);
        assert_eq!(err.code(), code, "{name}: {err}");
        assert!(err.is_caused_by_input(), "{name}");
    }
}

// --- Probe ---

/// Probes each file, decodes it fully with an independent decoder, and checks that the
/// sizes agree, and that the engine's own variant keeps to the probed aspect ratio.
fn assert_probe_matches_full_decode(names: impl IntoIterator<Item = String>) {
    for name in names {
        let bytes = photo(&name);
        let info = probe(&bytes).expect("probe");
        let stored = if info.image_type == ImageType::Jpeg {
            let mut decoder = jpeg_decoder::Decoder::new(&bytes[..]);
            decoder.decode().expect("full decode");
            let full = decoder.info().expect("info");
            (u32::from(full.width), u32::from(full.height))
        } else {
            let full = image::load_from_memory(&bytes).expect("full decode");
            (full.width(), full.height())
        };
        assert_eq!((info.stored_width, info.stored_height), stored, "{name}");
        assert_eq!((info.width, info.height), info.orientation.display_size(stored.0, stored.1), "{name}");
        assert_eq!(info.pixel_count(), u64::from(stored.0) * u64::from(stored.1));
        let variant = render(&bytes, &Recipe::fit(256, 256)).expect("resize");
        assert_eq!((variant.width, variant.height), fit_within(info.width, info.height, 256, 256), "{name}");
    }
}

#[test]
fn the_header_only_probe_agrees_with_a_full_decode_for_every_camera_photo() {
    assert_probe_matches_full_decode(
        DECODABLE.iter().filter(|name| name.starts_with("camera/")).map(|name| (*name).to_owned()),
    );
}

#[test]
fn the_header_only_probe_agrees_with_a_full_decode_for_every_other_format() {
    assert_probe_matches_full_decode(
        DECODABLE.iter().filter(|name| !name.starts_with("camera/")).map(|name| (*name).to_owned()),
    );
}

#[test]
fn the_header_only_probe_agrees_with_a_full_decode_for_every_orientation_file() {
    assert_probe_matches_full_decode(
        ["Landscape", "Portrait"].iter().flat_map(|shape| (1..=8).map(move |n| format!("orientation/{shape}_{n}.jpg"))),
    );
}

#[test]
fn the_probe_works_on_the_first_256_kib_or_says_how_much_more_it_needs() {
    for name in DECODABLE {
        let bytes = photo(name);
        let whole = probe(&bytes).expect("probe");
        let mut prefix = bytes.len().min(256 << 10);
        let from_prefix = loop {
            match probe(&bytes[..prefix]) {
                Ok(info) => break info,
                Err(ImagingError::NeedMoreBytes { have, needed }) => {
                    assert_eq!(have, prefix);
                    let needed = usize::try_from(needed.expect("a length")).expect("fits");
                    assert!(needed > prefix && needed <= bytes.len(), "{name}: {needed}");
                    prefix = needed;
                }
                Err(other) => panic!("{name}: {other:?}"),
            }
        };
        assert_eq!(from_prefix, whole, "{name}");
    }
    // The WebP with EXIF at its end needs the whole file for its orientation.
    let webp = photo("formats/nikon-p7000_3648x2736_orient6_badxmp.webp");
    let err = probe(&webp[..256 << 10]).expect_err("EXIF is past the prefix");
    assert!(matches!(err, ImagingError::NeedMoreBytes { needed: Some(n), .. } if n == webp.len() as u64), "{err:?}");
}

#[test]
fn a_few_bytes_of_a_jpeg_ask_for_more_and_then_the_probe_succeeds() {
    let bytes = photo("camera/canon-eos-5d-mark-iii_5760x3840.jpg");
    let mut prefix = 1;
    let mut rounds = 0;
    let info = loop {
        rounds += 1;
        match probe(&bytes[..prefix]) {
            Ok(info) => break info,
            Err(ImagingError::NeedMoreBytes { needed, .. }) => {
                prefix = usize::try_from(needed.expect("a length")).expect("fits");
            }
            Err(other) => panic!("{other:?}"),
        }
    };
    assert_eq!((info.width, info.height), (5760, 3840));
    // One round per header segment at most.
    assert!(rounds <= 12, "{rounds} rounds");
}

#[test]
fn limits_refuse_a_bomb_from_a_probe_of_its_first_bytes() {
    let bytes = photo("hostile/png-bomb_16000x16000_gray.png");
    let info = probe(&bytes[..64]).expect("the header is in the first bytes");
    assert_eq!((info.width, info.height), (16_000, 16_000));
    let err = Limits::default().check(&info).expect_err("too big");
    assert_eq!(err.code(), "too_many_pixels");
}

#[test]
fn the_format_comes_from_the_bytes_not_the_name() {
    // A PNG saved as .jpg is a PNG.
    let png = photo("formats/plum-blossom_2048x2048_rgba.png");
    assert_eq!(sniff(&png).expect("sniff"), ImageType::Png);
    assert_eq!(render(&png, &Recipe::fit(16, 16)).expect("resize").source.image_type, ImageType::Png);
}

#[test]
fn two_images_are_processed_at_once_by_default() {
    assert_eq!(imaging::max_concurrent_images(), imaging::DEFAULT_MAX_CONCURRENT_IMAGES);
    assert_eq!(imaging::DEFAULT_MAX_CONCURRENT_IMAGES, 2);
}

// --- CLI ---

#[test]
fn the_resize_command_writes_the_format_of_the_output_extension() {
    let dir = std::env::temp_dir().join(format!("shoebox-imaging-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = PathBuf::from(format!("{PHOTOS}/camera/leica-t-typ701_4928x3264_orient8.jpg"));
    for (name, magic) in [("out.webp", &b"RIFF"[..]), ("out.PNG", b"\x89PNG"), ("out.jpeg", b"\xFF\xD8")] {
        let output = dir.join(name);
        let args = ResizeArgs {
            input: input.clone(),
            fit: "300x300".to_owned(),
            output: output.clone(),
            quality: Some(70),
            progressive: name == "out.jpeg",
        };
        run(&args).expect("resize command");
        let bytes = std::fs::read(&output).expect("output written");
        assert!(bytes.starts_with(magic), "{name}");
        if name == "out.jpeg" {
            assert!(jpeg_segments(&bytes).contains(&0xC2), "--progressive writes a progressive JPEG");
        }
        assert_eq!(probe(&bytes).map(|i| (i.width, i.height)).ok(), Some((199, 300)));
    }
    let refused = ResizeArgs {
        input: PathBuf::from(format!("{PHOTOS}/hostile/svg-with-script.jpg")),
        fit: "300x300".to_owned(),
        output: dir.join("never.jpg"),
        quality: None,
        progressive: false,
    };
    let err = run(&refused).expect_err("SVG refused");
    assert!(format!("{err:#}").contains("SVG"), "{err:#}");
    assert!(!dir.join("never.jpg").exists());
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn stripping_a_jpeg_keeps_its_colour_profile_and_pixels_and_drops_the_rest() {
    let source = photo("camera/canon-eos-5d-mark-iii_5760x3840.jpg");
    let has_icc = |b: &[u8]| b.windows(12).any(|w| w == b"ICC_PROFILE\0");
    assert!(has_icc(&source), "the Canon file carries an ICC profile");
    let stripped = shoebox::imaging::strip_jpeg_metadata(&source, Orientation::Normal).expect("strips");
    assert!(has_icc(&stripped), "the profile is kept");
    assert!(!contains(&stripped, b"Exif\0\0") && !contains(&stripped, b"Canon"), "camera data removed");
    let (before, after) = (decode(&source), decode(&stripped));
    assert_eq!((after.width, after.height), (before.width, before.height));
    assert!(after.data == before.data, "the same pixels");
}
