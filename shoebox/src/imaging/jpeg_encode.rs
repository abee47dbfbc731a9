//! JPEG output through libjpeg-turbo (the `mozjpeg` crate at libjpeg-turbo's own settings,
//! not MozJPEG's slow trellis profile): a whole image, or rows as they are made.
//!
//! Row by row is what lets a banded decode (`jpeg_bands`) write a rendition without ever
//! holding its pixels. A sequential file is written with the standard Huffman tables, so
//! libjpeg holds only a few rows of blocks, and its tables are optimised afterwards from the
//! file itself (`jpeg_huffman`), which gives the same bytes as libjpeg's own optimisation
//! without its whole-image coefficient store (2 bytes a sample, kept twice by MozJPEG's
//! fork: 14.7 MB at 1280×1920). A progressive file needs that store anyway (every scan
//! goes over the whole image), so libjpeg optimises it itself.
//!
//! Settings: IJG quality scaling of the Annex K tables, 4:2:0 below quality 90 and full
//! chroma at 90 and above (the caller asked for fidelity), optimised Huffman tables (1 to
//! 13 % smaller files), a JFIF header and nothing else but an ICC profile the colour step
//! could not convert. Progressive files use libjpeg's standard script (spectral selection
//! and successive approximation), which usually makes them smaller than baseline.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg::compress::CompressStarted;
use mozjpeg::{ColorSpace, Compress, Marker};

use super::jpeg_huffman;
use super::pixels::Layout;

/// The largest side a JPEG can have in libjpeg.
const MAX_SIDE: u32 = 65_500;

/// An APP2 segment's ICC chunk: the tag, sequence number and count, then the data.
const ICC_TAG: &[u8] = b"ICC_PROFILE\0";
const ICC_CHUNK: usize = 65_533 - ICC_TAG.len() - 2;

/// Bytes the JPEG encoder may hold per pixel of its image. A progressive file: every
/// block's coefficients (2 bytes a sample), which MozJPEG's fork keeps twice (a second store
/// for trellis quantisation, allocated even when unused); at full chroma (quality 90 and
/// above) 2 × 2 × 3 (measured: 14.7 MB for 1280×1920 at 4:2:0, i.e. 6). A sequential file:
/// the file as it grows (its buffer up to twice its size) and the copy its tables are
/// optimised into, which is room for a file of 1 byte a pixel.
pub(crate) fn encoder_bytes_per_pixel(progressive: bool) -> u64 {
    if progressive { 12 } else { 3 }
}

/// An encoder that takes the rows of a `width`×`height` image, top first.
pub(crate) struct JpegRows {
    started: CompressStarted<Vec<u8>>,
    layout: Layout,
    row_len: usize,
    rows_left: u32,
    /// Written with the standard tables, to be optimised once finished.
    optimise_after: bool,
}

/// Runs libjpeg code, which reports errors by unwinding with a message.
fn guarded<T>(work: impl FnOnce() -> std::io::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(done) => done.map_err(|e| format!("libjpeg: {e}")),
        Err(panic) => Err(panic.downcast_ref::<String>().cloned().unwrap_or_else(|| "libjpeg failed".to_owned())),
    }
}

impl JpegRows {
    /// Starts a file of `width`×`height` pixels of `layout` (grey or RGB).
    pub fn start(
        (width, height): (u32, u32),
        layout: Layout,
        quality: u8,
        progressive: bool,
        icc_profile: Option<&[u8]>,
    ) -> Result<JpegRows, String> {
        let space = match layout {
            Layout::Gray => ColorSpace::JCS_GRAYSCALE,
            Layout::Rgb => ColorSpace::JCS_RGB,
            Layout::GrayAlpha | Layout::Rgba => return Err("alpha must be composited before JPEG encoding".to_owned()),
        };
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(format!("{width}x{height} is too large for JPEG"));
        }
        let started = guarded(|| {
            let mut compress = Compress::new(space);
            compress.set_fastest_defaults();
            compress.set_size(width as usize, height as usize);
            compress.set_quality(f32::from(quality));
            // A progressive file's coefficients are held whole anyway; a sequential one's
            // tables are optimised from the finished file instead (see the module's doc).
            compress.set_optimize_coding(progressive);
            if layout == Layout::Rgb {
                let chroma = if quality >= 90 { (1, 1) } else { (2, 2) };
                compress.set_chroma_sampling_pixel_sizes(chroma, chroma);
            }
            if progressive {
                compress.set_progressive_mode();
            }
            // About the size of a photo at quality 80, so the buffer rarely regrows.
            let mut started = compress.start_compress(Vec::with_capacity(width as usize * height as usize / 6))?;
            if let Some(icc) = icc_profile.filter(|icc| !icc.is_empty()) {
                // Written here rather than by the crate's `write_icc_profile`, which numbers
                // the chunks from 0; the ICC specification (and readers) count from 1.
                let chunks = icc.chunks(ICC_CHUNK);
                let count = u8::try_from(chunks.len()).map_err(|_| std::io::Error::other("ICC profile too large"))?;
                for (seq, chunk) in (1..=count).zip(chunks) {
                    let mut body = Vec::with_capacity(ICC_TAG.len() + 2 + chunk.len());
                    body.extend_from_slice(ICC_TAG);
                    body.extend_from_slice(&[seq, count]);
                    body.extend_from_slice(chunk);
                    started.write_marker(Marker::APP(2), &body);
                }
            }
            Ok(started)
        })?;
        Ok(JpegRows {
            started,
            layout,
            row_len: width as usize * layout.channels(),
            rows_left: height,
            optimise_after: !progressive,
        })
    }

    /// The layout the rows must have.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Writes the next whole rows.
    pub fn write(&mut self, rows: &[u8]) -> Result<(), String> {
        let count = rows.len() / self.row_len;
        if rows.is_empty() || !rows.len().is_multiple_of(self.row_len) || count > self.rows_left as usize {
            return Err(format!("{} bytes are not whole rows of what is left", rows.len()));
        }
        let started = &mut self.started;
        guarded(|| started.write_scanlines(rows))?;
        // At most rows_left, a u32.
        self.rows_left -= count as u32;
        Ok(())
    }

    /// The encoded file, once every row is written.
    pub fn finish(self) -> Result<Vec<u8>, String> {
        if self.rows_left != 0 {
            return Err(format!("{} rows were never written", self.rows_left));
        }
        let started = self.started;
        let file = guarded(|| started.finish())?;
        if !self.optimise_after {
            return Ok(file);
        }
        match jpeg_huffman::optimise(&file) {
            Ok(optimised) => Ok(optimised),
            Err(why) => {
                // The file is libjpeg's own sequential output, which the optimiser takes
                // whole: failing here is a bug. The file is still valid, only larger.
                debug_assert!(false, "optimising libjpeg's Huffman tables: {why}");
                tracing::warn!(%why, "JPEG written with standard Huffman tables: optimising them failed");
                Ok(file)
            }
        }
    }
}

/// Encodes a whole image of `layout` pixels.
pub(crate) fn encode(
    data: &[u8],
    size: (u32, u32),
    layout: Layout,
    quality: u8,
    progressive: bool,
    icc_profile: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    let mut rows = JpegRows::start(size, layout, quality, progressive, icc_profile)?;
    rows.write(data)?;
    rows.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32) -> Vec<u8> {
        (0..height).flat_map(|y| (0..width).flat_map(move |x| [(x * 3) as u8, (y * 5) as u8, 128])).collect()
    }

    #[test]
    fn rows_written_in_any_chunks_make_the_same_file_as_one_write() {
        let data = gradient(48, 40);
        let whole = encode(&data, (48, 40), Layout::Rgb, 80, false, None).expect("encode");
        let mut rows = JpegRows::start((48, 40), Layout::Rgb, 80, false, None).expect("start");
        for chunk in data.chunks(48 * 3 * 7) {
            rows.write(chunk).expect("write");
        }
        assert_eq!(rows.finish().expect("finish"), whole);
        let mut decoder = jpeg_decoder::Decoder::new(&whole[..]);
        let pixels = decoder.decode().expect("another decoder reads it");
        let info = decoder.info().expect("info");
        assert_eq!((info.width, info.height), (48, 40));
        let worst = pixels.iter().zip(&data).map(|(a, b)| a.abs_diff(*b)).max();
        assert!(worst < Some(24), "close to the source: {worst:?}");
    }

    #[test]
    fn a_file_missing_rows_or_given_part_of_a_row_is_an_error() {
        let data = gradient(16, 8);
        let mut short = JpegRows::start((16, 8), Layout::Rgb, 80, false, None).expect("start");
        short.write(&data[..16 * 3 * 7]).expect("seven rows");
        assert!(short.finish().is_err(), "the eighth row is missing");
        let mut partial = JpegRows::start((16, 8), Layout::Rgb, 80, false, None).expect("start");
        assert!(partial.write(&data[..10]).is_err());
        let mut long = JpegRows::start((16, 8), Layout::Rgb, 80, false, None).expect("start");
        long.write(&data).expect("all rows");
        assert!(long.write(&data[..48]).is_err(), "a ninth row");
        assert!(JpegRows::start((16, 8), Layout::Rgba, 80, false, None).is_err(), "alpha");
        assert!(JpegRows::start((70_000, 8), Layout::Rgb, 80, false, None).is_err(), "too wide");
    }

    #[test]
    fn progressive_grey_and_a_profile_are_written_as_asked() {
        let grey: Vec<u8> = (0..32 * 32).map(|i| (i % 251) as u8).collect();
        let jpeg = encode(&grey, (32, 32), Layout::Gray, 80, true, Some(b"a profile")).expect("encode");
        assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0]), "JFIF first");
        assert!(jpeg.windows(2).any(|w| w == [0xFF, 0xC2]), "a progressive frame");
        assert!(jpeg.windows(14).any(|w| w.starts_with(b"ICC_PROFILE\0\x01\x01")), "one ICC chunk, numbered from 1");
        let read_back = super::super::jpeg_bands::icc_profile(&jpeg, jpeg.len());
        assert_eq!(read_back.as_deref(), Some(&b"a profile"[..]));
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC2]).expect("frame");
        assert_eq!(jpeg[sof + 9], 1, "one component");
    }
}
