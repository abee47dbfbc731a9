//! The vertical half of a separable Lanczos3 downscale, fed a band of rows at a time.
//!
//! The weights are computed as fast_image_resize computes them (same window, same
//! normalisation, same trimming of zero weights at the ends), so that a streamed resize
//! matches shoebox's whole-image one up to rounding. Rows arrive already resized
//! horizontally; only the rows some output row still needs are kept (the filter's window,
//! about `2 * 3 * scale + 1` rows, plus the band that just came in), and each output row
//! is made as soon as its last source row is in.

use std::f64::consts::PI;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

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

/// One output row reads source rows `start..end`.
pub struct Taps {
    pub start: usize,
    pub end: usize,
}

/// Which source rows each output row reads when `in_size` rows shrink to `out_size`
/// (both > 0): fast_image_resize's window, less zero weights at either end.
pub fn taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let radius = 3.0 * filter_scale;
    (0..out_size)
        .map(|out| {
            let in_center = (out as f64 + 0.5) * scale;
            let x_min = (in_center - radius).floor().max(0.0) as usize;
            let x_max = ((in_center + radius).ceil() as usize).min(in_size);
            let center = in_center - 0.5;
            let weight = |x: usize| lanczos3((x as f64 - center) / filter_scale);
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

/// Streams rows through the vertical filter: fast_image_resize's own (SIMD) vertical
/// convolution, run on the rows held, with a crop box that puts the chunk of output rows
/// exactly where it lies in the whole image, so its weights are the whole-image ones.
pub struct VerticalPass {
    taps: Vec<Taps>,
    /// Source rows per output row.
    scale: f64,
    width: u32,
    pixel_type: PixelType,
    row_len: usize,
    /// Source rows `first..first + window.len() / row_len`, contiguous.
    window: Vec<u8>,
    first: usize,
    next_out: usize,
    chunk: Vec<u8>,
    resizer: Resizer,
    /// The most rows held at once, for the report.
    pub max_held: usize,
}

impl VerticalPass {
    pub fn new(in_rows: usize, out_rows: usize, width: u32, pixel_type: PixelType, channels: usize) -> Self {
        Self {
            taps: taps(in_rows, out_rows),
            scale: in_rows as f64 / out_rows as f64,
            width,
            pixel_type,
            row_len: width as usize * channels,
            window: Vec::new(),
            first: 0,
            next_out: 0,
            chunk: Vec::new(),
            resizer: Resizer::new(),
            max_held: 0,
        }
    }

    pub fn out_rows(&self) -> usize {
        self.taps.len()
    }

    /// Output rows made so far.
    pub fn done(&self) -> usize {
        self.next_out
    }

    /// Takes the next source rows (each `row_len` bytes) and hands every chunk of output
    /// rows they complete to `emit`.
    pub fn push(&mut self, rows: &[u8], mut emit: impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
        self.window.extend_from_slice(rows);
        let held = self.window.len() / self.row_len;
        self.max_held = self.max_held.max(held);
        let have = self.first + held;
        let a = self.next_out;
        let mut b = a;
        while b < self.taps.len() && self.taps[b].end <= have {
            b += 1;
        }
        if b == a {
            return Ok(());
        }
        let src = ImageRef::new(self.width, held as u32, &self.window, self.pixel_type).map_err(|e| e.to_string())?;
        self.chunk.resize((b - a) * self.row_len, 0);
        let mut dst = Image::from_slice_u8(self.width, (b - a) as u32, &mut self.chunk, self.pixel_type)
            .map_err(|e| e.to_string())?;
        let top = (a as f64 * self.scale - self.first as f64).max(0.0);
        let height = ((b - a) as f64 * self.scale).min(held as f64 - top);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .use_alpha(false)
            .crop(0.0, top, f64::from(self.width), height);
        self.resizer.resize(&src, &mut dst, &options).map_err(|e| e.to_string())?;
        emit(&self.chunk)?;
        self.next_out = b;
        // Drop the rows no later output row reads.
        let keep_from = self.taps.get(b).map_or(have, |t| t.start).max(self.first);
        self.window.drain(..(keep_from - self.first) * self.row_len);
        self.first = keep_from;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_colour_stays_flat_and_every_row_is_made() {
        for (h_in, h_out, band) in [(100, 33, 7), (1920, 853, 64), (7, 7, 3), (480, 213, 128), (2184, 1920, 16)] {
            let mut pass = VerticalPass::new(h_in, h_out, 2, PixelType::U8x3, 3);
            let mut out = Vec::new();
            let row = [0u8, 17, 128, 200, 255, 3];
            let mut left = h_in;
            while left > 0 {
                let n = band.min(left);
                pass.push(&row.repeat(n), |c| {
                    out.extend_from_slice(c);
                    Ok(())
                })
                .expect("push");
                left -= n;
            }
            assert_eq!(pass.done(), h_out);
            assert_eq!(out.len(), 6 * h_out);
            assert!(out.chunks_exact(6).all(|r| r == row), "{h_in}->{h_out}");
        }
    }
}
