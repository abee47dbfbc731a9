//! A JPEG decoded a band of rows at a time, straight into the renditions' resizers, so the
//! decoded image is never held whole (as vips does it).
//!
//! libjpeg-turbo (through the `mozjpeg` crate, its SIMD built with nasm where nasm is
//! installed) decodes at the IDCT scale the largest rendition needs, [`BAND_ROWS`] rows at a
//! time. Each band goes to one [`BandResizer`] per rendition size, which keeps only the rows
//! its filter still needs. When a second image-work permit is free, the decoder runs on its
//! own thread and the resizers on this one, band by band: that is how a JPEG without restart
//! markers, whose entropy decoding is serial, still uses both cores. A size that only one
//! JPEG rendition uses, of a photo stored upright, goes on row by row into libjpeg's
//! encoder (`jpeg_encode`), so its pixels are never held either; other sizes are kept as
//! pixels for the rest of the pipeline (the placeholder, a WebP twin of the same size, a
//! photo to be turned upright, which needs its last row before its first). Peak memory is
//! those outputs, the encoders' coefficients, a few bands and the filter windows, where
//! the whole-image path holds the decoded image, the decoder's planes and the resizer's
//! intermediate at once (measured in BENCHMARKS.md).
//!
//! Strictness is the whole-image decoder's. libjpeg carries on after a warning (a file cut
//! short is padded with grey, damaged data is skipped), so the error manager here turns
//! every warning and error into an unwind, and any file this path does not decode cleanly
//! (CMYK, 12-bit, arithmetic coding, a warning, an error) is left to the whole-image
//! decoder, which accepts it or refuses it exactly as before, with its precise error.
//! The whole image is still decoded where that is cheaper or needed: formats other than
//! JPEG (their decoders give whole images), and those fallbacks.

use std::borrow::Cow;
use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc::sync_channel;

use mozjpeg::decompress::Format;
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr};

use super::Recipe;
use super::band_resize::{BandResizer, RowSink, working_bytes};
use super::colour::ColourPlan;
use super::decode::progressive_coefficient_bytes;
use super::error::ImagingError;
use super::geometry::{jpeg_scale_eighths, scaled_by_eighths};
use super::image_type::ImageType;
use super::jpeg_encode::{JpegRows, encoder_bytes_per_pixel};
use super::limits::Limits;
use super::orient::{Orientation, place_rows};
use super::permits;
use super::pixels::{Layout, Pixels};
use super::probe::JpegHeader;

/// Rows decoded at a time. fast_image_resize works out its horizontal weights on every call,
/// so small bands spend their time there; 128 rows is about 1 MB at the 1/2 scale of a
/// 22 MP photo.
const BAND_ROWS: u32 = 128;

/// Bands in flight between the decoder's thread and the resizers'.
const BANDS_QUEUED: u32 = 2;

/// What to make at one size (stored orientation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// The resized pixels.
    Pixels((u32, u32)),
    /// The resized pixels turned upright as their rows come (no second copy to turn them).
    Upright((u32, u32), Orientation),
    /// The JPEG of `recipe`, its rows encoded as they are made, so its pixels are never held
    /// whole. Only for a source stored upright, and the colour plan is applied on the way.
    Jpeg((u32, u32), Recipe),
}

impl Want {
    pub(crate) fn size(&self) -> (u32, u32) {
        match *self {
            Want::Pixels(size) | Want::Upright(size, _) | Want::Jpeg(size, _) => size,
        }
    }
}

/// What was made for a [`Want`].
pub(crate) enum Made {
    Pixels(Pixels),
    /// Already turned upright.
    Upright(Pixels),
    Jpeg(Vec<u8>),
}

/// Decodes the JPEG `bytes` (`width`×`height`, header `jpeg`) in bands into `wants`, or
/// `None` when this file should go through the whole-image decoder (see the module
/// documentation). Sizes must fit within the image.
pub(crate) fn decode_resized(
    bytes: &[u8],
    jpeg: &JpegHeader,
    (width, height): (u32, u32),
    wants: &[Want],
    colour: &ColourPlan,
    limits: &Limits,
) -> Option<Vec<Made>> {
    let components = jpeg.sampling.len();
    if wants.is_empty() || !(components == 1 || components == 3) {
        return None;
    }
    let target = (wants.iter().map(|w| w.size().0).max()?, wants.iter().map(|w| w.size().1).max()?);
    let eighths = jpeg_scale_eighths(width, height, target.0, target.1);
    let scaled = (scaled_by_eighths(width, eighths), scaled_by_eighths(height, eighths));
    let layout = if components == 1 { Layout::Gray } else { Layout::Rgb };
    // Over the limit, the whole-image path refuses it (its own estimate is larger).
    limits.check_memory(peak_bytes(jpeg, (width, height), scaled, wants, layout)).ok()?;

    let mut targets: Vec<BandResizer<Sink<'_>>> = wants
        .iter()
        .map(|want| {
            let (size, sink) = match *want {
                Want::Pixels(size) => {
                    (size, Sink::Pixels(Vec::with_capacity(size.0 as usize * size.1 as usize * layout.channels())))
                }
                Want::Upright(size, orientation) => {
                    let out = vec![0; size.0 as usize * size.1 as usize * layout.channels()];
                    (size, Sink::Upright { orientation, size, layout, next_row: 0, out })
                }
                Want::Jpeg(size, recipe) => (
                    size,
                    Sink::Jpeg(Box::new(JpegSink { colour, size, layout, recipe, encoder: None, embeds: false })),
                ),
            };
            BandResizer::new(scaled, size, layout, sink).ok()
        })
        .collect::<Option<_>>()?;
    // A second permit lets the decoder run beside the resizers; without one, one thread does
    // both, and the image counts once against the gate like any other.
    let second = permits::try_acquire();
    let decoded = if second.is_some() {
        decode_on_two_threads(bytes, eighths, scaled, layout, &mut targets)
    } else {
        decode_bands(bytes, eighths, scaled, layout, |band| push_all(&mut targets, &band))
    };
    drop(second);
    decoded?;
    targets.into_iter().zip(wants).map(|(target, want)| finish(target, want.size(), layout)).collect()
}

fn push_all(targets: &mut [BandResizer<Sink<'_>>], band: &[u8]) -> Option<()> {
    targets.iter_mut().try_for_each(|t| t.push(band).ok())
}

fn finish(target: BandResizer<Sink<'_>>, size: (u32, u32), layout: Layout) -> Option<Made> {
    match target.finish().ok()? {
        Sink::Pixels(data) => Some(Made::Pixels(Pixels::new(size.0, size.1, layout, data))),
        Sink::Upright { orientation, out, .. } => {
            let (w, h) = orientation.display_size(size.0, size.1);
            Some(Made::Upright(Pixels::new(w, h, layout, out)))
        }
        Sink::Jpeg(sink) => sink.encoder?.finish().ok().map(Made::Jpeg),
    }
}

/// Where a size's rows go.
enum Sink<'c> {
    Pixels(Vec<u8>),
    Upright { orientation: Orientation, size: (u32, u32), layout: Layout, next_row: u32, out: Vec<u8> },
    // Boxed: libjpeg's state is large beside a Vec.
    Jpeg(Box<JpegSink<'c>>),
}

/// Rows to sRGB, then into libjpeg. The encoder starts with the first rows, once the colour
/// step has said whether the profile must be embedded (when it cannot be applied).
struct JpegSink<'c> {
    colour: &'c ColourPlan,
    size: (u32, u32),
    layout: Layout,
    recipe: Recipe,
    encoder: Option<JpegRows>,
    embeds: bool,
}

impl RowSink for Sink<'_> {
    fn take(&mut self, rows: &[u8]) -> Result<(), ImagingError> {
        match self {
            Sink::Pixels(data) => data.take(rows),
            Sink::Upright { orientation, size, layout, next_row, out } => {
                place_rows(*orientation, *size, layout.channels(), *next_row, rows, out);
                // Whole rows of the output's width, by construction.
                *next_row += (rows.len() / (size.0 as usize * layout.channels())) as u32;
                Ok(())
            }
            Sink::Jpeg(sink) => sink.take(rows),
        }
    }
}

impl JpegSink<'_> {
    fn take(&mut self, rows: &[u8]) -> Result<(), ImagingError> {
        let failed = |reason: String| ImagingError::Encode { format: ImageType::Jpeg, reason };
        let (data, layout, embed) = if self.colour.has_profile() {
            let count = (rows.len() / (self.size.0 as usize * self.layout.channels())) as u32;
            let chunk = Pixels::new(self.size.0, count, self.layout, rows.to_vec());
            let (chunk, embed) = self.colour.to_srgb(chunk);
            (Cow::Owned(chunk.data), chunk.layout, embed)
        } else {
            (Cow::Borrowed(rows), self.layout, None)
        };
        let encoder = match &mut self.encoder {
            Some(encoder) if encoder.layout() == layout && self.embeds == embed.is_some() => encoder,
            Some(_) => return Err(failed("the colour step changed between rows".to_owned())),
            None => {
                self.embeds = embed.is_some();
                let (quality, progressive) = (self.recipe.quality, self.recipe.progressive);
                let started = JpegRows::start(self.size, layout, quality, progressive, embed).map_err(failed)?;
                self.encoder.insert(started)
            }
        };
        encoder.write(&data).map_err(failed)
    }
}

fn decode_on_two_threads(
    bytes: &[u8],
    eighths: u32,
    scaled: (u32, u32),
    layout: Layout,
    targets: &mut [BandResizer<Sink<'_>>],
) -> Option<()> {
    let (send, receive) = sync_channel::<Vec<u8>>(BANDS_QUEUED as usize);
    // Buffers come back to the decoder to be reused.
    let (give_back, take_back) = sync_channel::<Vec<u8>>(BANDS_QUEUED as usize + 2);
    std::thread::scope(|scope| {
        let decoder = scope.spawn(move || {
            decode_bands_reusing(bytes, eighths, scaled, layout, &take_back, |band| send.send(band).ok())
        });
        let mut resized = Some(());
        for band in receive.iter() {
            resized = push_all(targets, &band);
            if resized.is_none() {
                // Dropping the receiver (below) stops the decoder at its next band.
                break;
            }
            let _ = give_back.try_send(band);
        }
        drop(receive);
        let decoded = decoder.join().ok().flatten();
        decoded.and(resized)
    })
}

/// Decodes at `eighths`/8 (which gives `scaled`), handing each band to `take`; `None` when
/// libjpeg failed or warned, or `take` refused a band.
fn decode_bands(
    bytes: &[u8],
    eighths: u32,
    scaled: (u32, u32),
    layout: Layout,
    take: impl FnMut(Vec<u8>) -> Option<()>,
) -> Option<()> {
    let (_, nothing_back) = sync_channel(0);
    decode_bands_reusing(bytes, eighths, scaled, layout, &nothing_back, take)
}

fn decode_bands_reusing(
    bytes: &[u8],
    eighths: u32,
    scaled: (u32, u32),
    layout: Layout,
    spare: &std::sync::mpsc::Receiver<Vec<u8>>,
    mut take: impl FnMut(Vec<u8>) -> Option<()>,
) -> Option<()> {
    let row_len = scaled.0 as usize * layout.channels();
    // libjpeg reports errors and warnings by unwinding (see `strict_errors`); the
    // decompressor is dropped (and libjpeg's memory freed) on the way out.
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Option<()> {
        let mut decompress = mozjpeg::Decompress::with_err(strict_errors()).from_mem(bytes).ok()?;
        decompress.scale(u8::try_from(eighths).ok()?);
        let mut started = match (decompress.image().ok()?, layout) {
            (Format::RGB(started), Layout::Rgb) | (Format::Gray(started), Layout::Gray) => started,
            _ => return None,
        };
        if (started.width(), started.height()) != (scaled.0 as usize, scaled.1 as usize) {
            return None;
        }
        let mut left = scaled.1;
        while left > 0 {
            let rows = BAND_ROWS.min(left);
            let mut band = spare.try_recv().unwrap_or_default();
            band.resize(rows as usize * row_len, 0);
            started.read_scanlines_into::<u8>(&mut band).ok()?;
            take(band)?;
            left -= rows;
        }
        // Reads on to the end of the image: damage after the last row is found here too.
        started.finish().ok()
    }));
    outcome.ok().flatten()
}

/// Why libjpeg was stopped; carried by the unwind to `catch_unwind` above.
struct Stopped;

/// libjpeg's error manager with every warning an error. Built field by field (no
/// `jpeg_std_error`): the handlers below never format a message, so the message tables
/// are not needed.
fn strict_errors() -> jpeg_error_mgr {
    jpeg_error_mgr {
        error_exit: Some(stop),
        emit_message: Some(stop_on_warning),
        output_message: Some(say_nothing),
        format_message: None,
        reset_error_mgr: Some(say_nothing),
        msg_code: 0,
        msg_parm: Default::default(),
        trace_level: 0,
        num_warnings: 0,
        jpeg_message_table: std::ptr::null(),
        last_jpeg_message: -1,
        addon_message_table: std::ptr::null(),
        first_addon_message: 0,
        last_addon_message: -1,
    }
}

/// libjpeg's fatal errors: it expects this not to return. `resume_unwind` skips the panic
/// hook, so a damaged upload is not logged as a crash (the whole-image decoder says what is
/// wrong with it).
extern "C-unwind" fn stop(_cinfo: &mut jpeg_common_struct) {
    resume_unwind(Box::new(Stopped));
}

/// Level -1 is a warning (corrupt data, premature end of file); higher levels are traces.
extern "C-unwind" fn stop_on_warning(_cinfo: &mut jpeg_common_struct, msg_level: c_int) {
    if msg_level < 0 {
        resume_unwind(Box::new(Stopped));
    }
}

extern "C-unwind" fn say_nothing(_cinfo: &mut jpeg_common_struct) {}

/// The ICC profile in the APP2 segments before the first scan (`ICC_PROFILE\0`, sequence
/// number, count, data), joined in sequence order; `None` without one or with chunks
/// missing or repeated.
pub(crate) fn icc_profile(bytes: &[u8], scan_data_at: usize) -> Option<Vec<u8>> {
    const APP2: u8 = 0xE2;
    const SOS: u8 = 0xDA;
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let header = bytes.get(..scan_data_at.min(bytes.len()))?;
    let mut chunks: Vec<(u8, u8, &[u8])> = Vec::new();
    let mut at = 2;
    while at + 4 <= header.len() {
        if header[at] != 0xFF {
            return None;
        }
        let marker = header[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        if marker == SOS {
            break;
        }
        let len = usize::from(u16::from_be_bytes([header[at + 2], header[at + 3]]));
        let body = header.get(at + 4..at + 2 + len.max(2))?;
        if marker == APP2 && body.len() >= TAG.len() + 2 && body.starts_with(TAG) {
            chunks.push((body[TAG.len()], body[TAG.len() + 1], &body[TAG.len() + 2..]));
        }
        at += 2 + len;
    }
    let count = chunks.first()?.1;
    chunks.sort_by_key(|c| c.0);
    let in_order = chunks.iter().enumerate().all(|(i, c)| usize::from(c.0) == i + 1 && c.1 == count);
    if !in_order || chunks.len() != usize::from(count) {
        return None;
    }
    Some(chunks.iter().flat_map(|c| c.2.iter().copied()).collect())
}

/// Peak bytes of a banded decode into `wants`: each size's pixels, or for a JPEG written as
/// it comes what the encoder holds ([`encoder_bytes_per_pixel`]),
/// each resizer's working rows, the bands (one being decoded, those queued, one being
/// resized), libjpeg's own buffers (a few MCU rows at the scaled width) and, for a
/// progressive file, the coefficients of the whole image (2 bytes a sample, at full size
/// whatever the scale).
fn peak_bytes(jpeg: &JpegHeader, full: (u32, u32), scaled: (u32, u32), wants: &[Want], layout: Layout) -> u64 {
    let channels = layout.channels() as u64;
    let outputs: u64 = wants
        .iter()
        .map(|want| {
            let (w, h) = want.size();
            let per_pixel = match want {
                Want::Pixels(_) | Want::Upright(..) => channels,
                Want::Jpeg(_, recipe) => encoder_bytes_per_pixel(recipe.progressive),
            };
            u64::from(w) * u64::from(h) * per_pixel
        })
        .sum();
    let working: u64 = wants.iter().map(|want| working_bytes(scaled, want.size(), layout, BAND_ROWS)).sum();
    let band = u64::from(scaled.0) * u64::from(BAND_ROWS) * channels;
    let bands = band * (u64::from(BANDS_QUEUED) + 2);
    let libjpeg = u64::from(scaled.0 + 16) * 32 * channels * 2;
    let coefficients = progressive_coefficient_bytes(full.0, full.1, jpeg);
    outputs + working + bands + libjpeg + coefficients
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&u16::try_from(body.len() + 2).expect("short").to_be_bytes());
        s.extend_from_slice(body);
        s
    }

    fn icc_chunk(seq: u8, count: u8, data: &[u8]) -> Vec<u8> {
        let mut body = b"ICC_PROFILE\0".to_vec();
        body.extend_from_slice(&[seq, count]);
        body.extend_from_slice(data);
        segment(0xE2, &body)
    }

    fn jpeg_header(segments: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8];
        for s in segments {
            bytes.extend_from_slice(s);
        }
        bytes.extend_from_slice(&segment(0xDA, &[1, 1, 0, 0, 63, 0]));
        bytes
    }

    #[test]
    fn an_icc_profile_in_chunks_is_joined_in_sequence_order() {
        let bytes = jpeg_header(&[
            segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"),
            icc_chunk(2, 2, b"world"),
            icc_chunk(1, 2, b"hello "),
        ]);
        assert_eq!(icc_profile(&bytes, bytes.len()).as_deref(), Some(&b"hello world"[..]));
    }

    #[test]
    fn a_missing_or_repeated_chunk_gives_no_profile() {
        let missing = jpeg_header(&[icc_chunk(1, 3, b"a"), icc_chunk(3, 3, b"c")]);
        assert_eq!(icc_profile(&missing, missing.len()), None);
        let repeated = jpeg_header(&[icc_chunk(1, 2, b"a"), icc_chunk(1, 2, b"a")]);
        assert_eq!(icc_profile(&repeated, repeated.len()), None);
        let none = jpeg_header(&[segment(0xE1, b"Exif\0\0")]);
        assert_eq!(icc_profile(&none, none.len()), None);
        assert_eq!(icc_profile(&none[..5], 5), None, "cut inside a segment");
    }

    fn testdata(name: &str) -> Vec<u8> {
        let path = format!("{}/../../shared/testdata/photos/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn streamed(bytes: &[u8], wants: &[Want]) -> Option<Vec<Made>> {
        let header = super::super::probe::read_header(bytes).expect("header");
        let super::super::probe::Detail::Jpeg(jpeg) = &header.detail else { panic!("a JPEG") };
        let stored = (header.info.stored_width, header.info.stored_height);
        let colour = ColourPlan::new(icc_profile(bytes, jpeg.scan_data_at));
        decode_resized(bytes, jpeg, stored, wants, &colour, &Limits::default())
    }

    fn pixels(made: Vec<Made>) -> Vec<Pixels> {
        made.into_iter()
            .map(|m| match m {
                Made::Pixels(p) => p,
                Made::Upright(_) | Made::Jpeg(_) => panic!("pixels were asked for"),
            })
            .collect()
    }

    #[test]
    fn a_sound_camera_jpeg_is_made_in_bands_at_every_size_asked_for() {
        let bytes = testdata("camera/nikon-d3100_4608x3072.jpg");
        let sizes = [(100, 67), (320, 213), (1280, 853)];
        let wants = sizes.map(Want::Pixels);
        let made = pixels(streamed(&bytes, &wants).expect("decoded in bands"));
        let got: Vec<_> = made.iter().map(|p| (p.width, p.height, p.layout)).collect();
        assert_eq!(got, sizes.map(|(w, h)| (w, h, Layout::Rgb)));
        // A photo, not grey padding: the rows vary.
        let big = &made[2];
        let row = big.width as usize * 3;
        assert_ne!(big.data[..row], big.data[big.data.len() - row..]);
        // With no permit to spare, one thread does it all, to the same pixels.
        let held: Vec<_> = (0..permits::max_concurrent_images()).map(|_| permits::try_acquire()).collect();
        let alone = pixels(streamed(&bytes, &wants).expect("decoded in bands on one thread"));
        drop(held);
        assert!(alone == made, "one thread and two give the same pixels");
    }

    #[test]
    fn a_jpeg_written_as_its_rows_come_is_the_file_the_whole_pixels_make() {
        let bytes = testdata("camera/nikon-d3100_4608x3072.jpg");
        let recipe = Recipe::fit(1280, 1280).with_quality(80);
        let made = streamed(&bytes, &[Want::Jpeg((1280, 853), recipe), Want::Pixels((1280, 853))]).expect("bands");
        let [Made::Jpeg(streamed_file), Made::Pixels(whole)] = &made[..] else { panic!("a JPEG, then pixels") };
        let from_whole =
            super::super::jpeg_encode::encode(&whole.data, (1280, 853), Layout::Rgb, 80, false, None).expect("encode");
        assert!(streamed_file == &from_whole, "the same encoder, the same rows: the same bytes");
    }

    #[test]
    fn a_damaged_or_cut_off_jpeg_is_left_to_the_whole_image_decoder() {
        // libjpeg would pad the first with grey and skip the damage in the second.
        for name in ["hostile/truncated-35pct_nikon-d3100.jpg", "hostile/olympus-corrupted-entropy_3648x2736.jpg"] {
            assert!(streamed(&testdata(name), &[Want::Pixels((320, 213))]).is_none(), "{name}");
        }
    }

    #[test]
    fn a_progressive_file_counts_its_whole_coefficients() {
        let baseline = JpegHeader { sampling: vec![(2, 2), (1, 1), (1, 1)], ..JpegHeader::default() };
        let progressive = JpegHeader { progressive: true, ..baseline.clone() };
        let (full, scaled, wants) = ((5760, 3840), (2880, 1920), [Want::Pixels((1280, 853)), Want::Pixels((320, 213))]);
        let lean = peak_bytes(&baseline, full, scaled, &wants, Layout::Rgb);
        let heavy = peak_bytes(&progressive, full, scaled, &wants, Layout::Rgb);
        // 22 MP at 4:2:0 is 33 M samples, 2 bytes each.
        assert!(heavy - lean >= 66_000_000, "{lean} {heavy}");
        // Without the image held whole, a baseline decode stays well under it.
        assert!(lean < 2880 * 1920 * 3 * 2 / 3, "{lean}");
    }
}
