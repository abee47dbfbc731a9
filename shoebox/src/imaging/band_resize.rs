//! Lanczos3 downscaling fed a band of rows at a time, so the source is never held whole.
//!
//! Each band is resized across at once (fast_image_resize, SIMD). Its rows then go through
//! a vertical pass that keeps only the source rows some output row still needs (the
//! filter's window, about `6 × scale + 1` rows, plus the band that just came in) and makes
//! each output row as soon as its last source row is in. The vertical pass is
//! fast_image_resize's own convolution, run on the rows held with a crop box that puts the
//! chunk of output rows exactly where it lies in the whole image: its weights are the
//! whole-image ones, so a streamed resize matches [`super::resize::resize`] up to the
//! rounding of the intermediate rows (most samples equal, none off by more than 2: the
//! whole-image resizer may run its passes in the other order).
//!
//! Only for opaque sources (JPEG): premultiplied alpha would need no change, but nothing
//! else decodes in rows today.

use std::f64::consts::PI;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};

use super::error::ImagingError;
use super::image_type::ImageType;
use super::pixels::Layout;

/// Where finished output rows go: collected (a `Vec<u8>`), or written on as they come.
pub(crate) trait RowSink {
    /// Takes the next whole output rows, top first.
    fn take(&mut self, rows: &[u8]) -> Result<(), ImagingError>;
}

impl RowSink for Vec<u8> {
    fn take(&mut self, rows: &[u8]) -> Result<(), ImagingError> {
        self.extend_from_slice(rows);
        Ok(())
    }
}

/// A source `source` pixels wide and high, shrunk to `target` as its rows arrive, the
/// output rows going to `S`.
pub(crate) struct BandResizer<S> {
    source: (u32, u32),
    target: (u32, u32),
    layout: Layout,
    across: Resizer,
    /// The band resized across, reused between bands.
    across_rows: Vec<u8>,
    vertical: Option<VerticalPass>,
    /// Source rows taken so far.
    taken: u32,
    /// Output rows made so far.
    made: u32,
    sink: S,
}

#[cfg(test)]
impl BandResizer<Vec<u8>> {
    /// A resizer that collects its output, to be had from [`BandResizer::into_pixels`].
    pub fn collecting(source: (u32, u32), target: (u32, u32), layout: Layout) -> Result<Self, ImagingError> {
        let out_len = target.0 as usize * target.1 as usize * layout.channels();
        BandResizer::new(source, target, layout, Vec::with_capacity(out_len))
    }

    /// The resized image, once every source row has been pushed.
    pub fn into_pixels(self) -> Result<super::pixels::Pixels, ImagingError> {
        let (target, layout) = (self.target, self.layout);
        let data = self.finish()?;
        Ok(super::pixels::Pixels::new(target.0, target.1, layout, data))
    }
}

impl<S: RowSink> BandResizer<S> {
    /// `target` must not be larger than `source` on either side (a downscale or a copy).
    pub fn new(source: (u32, u32), target: (u32, u32), layout: Layout, sink: S) -> Result<Self, ImagingError> {
        if target.0 == 0 || target.1 == 0 || target.0 > source.0 || target.1 > source.1 {
            return Err(failed(format!("cannot stream {}x{} to {}x{}", source.0, source.1, target.0, target.1)));
        }
        let vertical = (target.1 != source.1).then(|| VerticalPass::new(source.1, target.1, target.0, layout));
        Ok(BandResizer {
            source,
            target,
            layout,
            across: Resizer::new(),
            across_rows: Vec::new(),
            vertical,
            taken: 0,
            made: 0,
            sink,
        })
    }

    /// Takes the next whole source rows (`source.0 × channels` bytes each).
    pub fn push(&mut self, rows: &[u8]) -> Result<(), ImagingError> {
        let row_len = self.source.0 as usize * self.layout.channels();
        if row_len == 0 || !rows.len().is_multiple_of(row_len) {
            return Err(failed("a band of partial rows".to_owned()));
        }
        let count = u32::try_from(rows.len() / row_len).map_err(|e| failed(e.to_string()))?;
        if self.taken + count > self.source.1 {
            return Err(failed("more rows than the source has".to_owned()));
        }
        self.taken += count;
        let across: &[u8] = if self.target.0 == self.source.0 {
            rows
        } else {
            let pixel_type = self.layout.pixel_type();
            let src = ImageRef::new(self.source.0, count, rows, pixel_type).map_err(|e| failed(e.to_string()))?;
            self.across_rows.resize(self.target.0 as usize * count as usize * self.layout.channels(), 0);
            let mut dst = Image::from_slice_u8(self.target.0, count, &mut self.across_rows, pixel_type)
                .map_err(|e| failed(e.to_string()))?;
            let options =
                ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).use_alpha(false);
            self.across.resize(&src, &mut dst, &options).map_err(|e| failed(e.to_string()))?;
            &self.across_rows
        };
        let out_row = self.target.0 as usize * self.layout.channels();
        let (sink, made) = (&mut self.sink, &mut self.made);
        let mut emit = |rows: &[u8]| {
            // Whole rows of the output's width, by construction.
            *made += (rows.len() / out_row) as u32;
            sink.take(rows)
        };
        match &mut self.vertical {
            Some(vertical) => vertical.push(across, emit),
            None => emit(across),
        }
    }

    /// The sink, once every source row has been pushed and every output row made.
    pub fn finish(self) -> Result<S, ImagingError> {
        if self.taken != self.source.1 || self.made != self.target.1 {
            return Err(failed(format!(
                "{} of {} source rows gave {} of {} rows",
                self.taken, self.source.1, self.made, self.target.1
            )));
        }
        Ok(self.sink)
    }
}

/// Bytes a resizer from `source` to `target` holds at most besides its output: the band
/// resized across and the vertical window (`band_rows` source rows at a time).
pub(crate) fn working_bytes(source: (u32, u32), target: (u32, u32), layout: Layout, band_rows: u32) -> u64 {
    let scale = f64::from(source.1) / f64::from(target.1.max(1));
    let window = (6.0 * scale.max(1.0)).ceil() as u64 + 2;
    let row = u64::from(target.0) * layout.channels() as u64;
    row * (2 * u64::from(band_rows) + window)
}

fn failed(reason: String) -> ImagingError {
    ImagingError::Encode { format: ImageType::Png, reason: format!("resize failed: {reason}") }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * PI;
        x.sin() / x
    }
}

/// Lanczos3, as fast_image_resize defines it.
fn lanczos3(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) { sinc(x) * sinc(x / 3.0) } else { 0.0 }
}

/// Which source rows, `start..end`, one output row reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Taps {
    start: u32,
    end: u32,
}

/// The taps of every output row when `in_size` rows shrink to `out_size` (both > 0):
/// fast_image_resize's window, less zero weights at either end, so that rows are dropped
/// exactly when its own convolution no longer reads them.
fn taps(in_size: u32, out_size: u32) -> Vec<Taps> {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filter_scale = scale.max(1.0);
    let radius = 3.0 * filter_scale;
    (0..out_size)
        .map(|out| {
            let in_center = (f64::from(out) + 0.5) * scale;
            // Both are within 0..=in_size, which is a u32.
            let x_min = (in_center - radius).floor().max(0.0) as u32;
            let x_max = ((in_center + radius).ceil() as u32).min(in_size);
            let center = in_center - 0.5;
            let weight = |x: u32| lanczos3((f64::from(x) - center) / filter_scale);
            let mut start = x_min;
            while start < x_max && weight(start) == 0.0 {
                start += 1;
            }
            let mut end = x_max;
            while end > start && weight(end - 1) == 0.0 {
                end -= 1;
            }
            Taps { start, end }
        })
        .collect()
}

/// The vertical half of the resize, on rows already resized across.
struct VerticalPass {
    taps: Vec<Taps>,
    /// Source rows per output row.
    scale: f64,
    width: u32,
    layout: Layout,
    row_len: usize,
    /// Source rows `first..first + window.len() / row_len`, contiguous.
    window: Vec<u8>,
    first: u32,
    next_out: u32,
    chunk: Vec<u8>,
    resizer: Resizer,
}

impl VerticalPass {
    fn new(in_rows: u32, out_rows: u32, width: u32, layout: Layout) -> VerticalPass {
        VerticalPass {
            taps: taps(in_rows, out_rows),
            scale: f64::from(in_rows) / f64::from(out_rows),
            width,
            layout,
            row_len: width as usize * layout.channels(),
            window: Vec::new(),
            first: 0,
            next_out: 0,
            chunk: Vec::new(),
            resizer: Resizer::new(),
        }
    }

    /// Takes the next source rows and hands each chunk of output rows they complete to `emit`.
    fn push(
        &mut self,
        rows: &[u8],
        mut emit: impl FnMut(&[u8]) -> Result<(), ImagingError>,
    ) -> Result<(), ImagingError> {
        self.window.extend_from_slice(rows);
        let held = u32::try_from(self.window.len() / self.row_len).map_err(|e| failed(e.to_string()))?;
        let have = self.first + held;
        let a = self.next_out;
        let mut b = a;
        while self.taps.get(b as usize).is_some_and(|t| t.end <= have) {
            b += 1;
        }
        if b == a {
            return Ok(());
        }
        let pixel_type = self.layout.pixel_type();
        let src = ImageRef::new(self.width, held, &self.window, pixel_type).map_err(|e| failed(e.to_string()))?;
        self.chunk.resize((b - a) as usize * self.row_len, 0);
        let mut dst =
            Image::from_slice_u8(self.width, b - a, &mut self.chunk, pixel_type).map_err(|e| failed(e.to_string()))?;
        // The crop box is where output rows a..b lie in the whole source, relative to the
        // first row held: the resizer then centres and weighs them as in a whole-image pass.
        let top = (f64::from(a) * self.scale - f64::from(self.first)).max(0.0);
        let height = (f64::from(b - a) * self.scale).min(f64::from(held) - top);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .use_alpha(false)
            .crop(0.0, top, f64::from(self.width), height);
        self.resizer.resize(&src, &mut dst, &options).map_err(|e| failed(e.to_string()))?;
        emit(&self.chunk)?;
        self.next_out = b;
        // Drop the rows no later output row reads.
        let keep_from = self.taps.get(b as usize).map_or(have, |t| t.start).max(self.first);
        self.window.drain(..(keep_from - self.first) as usize * self.row_len);
        self.first = keep_from;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::pixels::Pixels;
    use crate::imaging::resize::resize;

    fn stream(source: &Pixels, target: (u32, u32), band: u32) -> Pixels {
        let mut resizer =
            BandResizer::collecting((source.width, source.height), target, source.layout).expect("resizer");
        let row_len = source.width as usize * source.layout.channels();
        for rows in source.data.chunks(row_len * band as usize) {
            resizer.push(rows).expect("push");
        }
        resizer.into_pixels().expect("every row")
    }

    /// A source with detail in both directions, so a misplaced window shows, but not so
    /// sharp that Lanczos' overshoot is clipped: clipping depends on which pass comes first,
    /// and the whole-image resizer chooses its own order.
    fn pattern(width: u32, height: u32, layout: Layout) -> Pixels {
        let channels = layout.channels();
        let mut data = Vec::with_capacity(width as usize * height as usize * channels);
        for y in 0..height {
            for x in 0..width {
                for c in 0..channels {
                    let (x, y, c) = (f64::from(x), f64::from(y), c as f64);
                    let v = 128.0 + 55.0 * (x * 0.31 + c).sin() + 45.0 * (y * 0.23 - c).cos() + (x * y * 0.001) % 8.0;
                    data.push(v.round() as u8);
                }
            }
        }
        Pixels::new(width, height, layout, data)
    }

    #[test]
    fn a_flat_colour_stays_flat_and_every_row_is_made() {
        for (h_in, h_out, band) in [(100, 33, 7), (1920, 853, 64), (7, 7, 3), (480, 213, 128), (2184, 1920, 16)] {
            let source = Pixels::new(2, h_in, Layout::Rgb, [0u8, 17, 128, 200, 255, 3].repeat(h_in as usize));
            let out = stream(&source, (2, h_out), band);
            assert_eq!((out.width, out.height), (2, h_out));
            assert!(out.data.chunks_exact(6).all(|r| r == [0, 17, 128, 200, 255, 3]), "{h_in}->{h_out}");
        }
    }

    #[test]
    fn streaming_matches_a_whole_image_resize_up_to_rounding() {
        for (layout, source, target, band) in [
            (Layout::Rgb, (640, 427), (320, 213), 16),
            (Layout::Rgb, (500, 700), (91, 128), 128),
            (Layout::Gray, (300, 200), (100, 67), 1),
            (Layout::Rgb, (257, 190), (257, 101), 33),
            (Layout::Gray, (120, 90), (37, 90), 7),
        ] {
            let source = pattern(source.0, source.1, layout);
            let whole = resize(&source, target.0, target.1).expect("whole");
            let streamed = stream(&source, target, band);
            assert_eq!((streamed.width, streamed.height), target);
            let worst = whole.data.iter().zip(&streamed.data).map(|(a, b)| a.abs_diff(*b)).max();
            let total: u64 = whole.data.iter().zip(&streamed.data).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
            let mean = total as f64 / whole.data.len() as f64;
            // Both passes round to 8 bits between them, and the whole-image resizer may run
            // them in the other order: a sample or two of difference, never a displaced row.
            assert!(worst <= Some(2) && mean < 0.3, "{layout:?} {target:?}: off by {worst:?}, mean {mean:.3}");
        }
    }

    #[test]
    fn too_few_or_too_many_rows_are_an_error_not_an_image() {
        let source = pattern(40, 30, Layout::Rgb);
        let mut short = BandResizer::collecting((40, 30), (20, 15), Layout::Rgb).expect("resizer");
        short.push(&source.data[..40 * 3 * 29]).expect("push");
        assert!(short.into_pixels().is_err(), "29 of 30 rows");
        let mut long = BandResizer::collecting((40, 30), (20, 15), Layout::Rgb).expect("resizer");
        long.push(&source.data).expect("push");
        assert!(long.push(&source.data[..120]).is_err(), "a 31st row");
        assert!(BandResizer::collecting((40, 30), (41, 15), Layout::Rgb).is_err(), "no upscaling");
        let mut partial = BandResizer::collecting((40, 30), (20, 15), Layout::Rgb).expect("resizer");
        assert!(partial.push(&source.data[..100]).is_err(), "part of a row");
    }
}
