//! Decoding a JPEG with restart markers as two strips, one per core.
//!
//! Entropy decoding is serial and is most of the cost of a shrink-on-load decode. When a
//! baseline JPEG has restart markers (DRI), the data after a marker does not depend on the
//! data before it, so the scan can be cut at a marker on an MCU-row boundary into two
//! valid JPEGs: the same header with the frame height patched, the top rows, EOI; and the
//! same header, the bottom rows. Each half decodes on its own thread and the rows are
//! stacked. Cuts are placed after a multiple of 8 restart intervals, so the bottom half
//! starts at RST0 as a decoder expects.
//!
//! With vertically subsampled chroma (4:2:0), the decoder's chroma upsampling reads the
//! rows on both sides of each pixel row, so the strips overlap by one cut unit and each
//! keeps only its side of the seam: the result is the same pixels as one pass.
//!
//! Anything unexpected (no suitable marker, a strip failing) returns `None`, and the caller
//! decodes the whole file the usual way, which also gives the precise error.

use super::geometry::scaled_by_eighths;
use super::probe::JpegHeader;

/// Below this, two threads cost more than they save.
const MIN_PIXELS: u64 = 4_000_000;

/// A place where the scan can be cut: after a restart marker, at a row boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CutPoint {
    /// Pixel rows above the cut (a whole number of MCU rows).
    rows: u32,
    /// Offset of the restart marker at the cut.
    marker_at: usize,
}

/// How to split the scan: the top strip decodes down to `top_end`, the bottom strip from
/// `bottom_start`, and the seam between their kept rows is at `seam` (all equal without
/// overlap).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cut {
    seam: u32,
    top_end: CutPoint,
    bottom_start: CutPoint,
}

/// The decoded, stacked rows and what the decoder said about them.
pub(crate) struct Strips {
    pub data: Vec<u8>,
    pub info: jpeg_decoder::ImageInfo,
    pub icc_profile: Option<Vec<u8>>,
}

/// Finds a cut near the middle of the image's data, if this JPEG allows one.
pub(crate) fn plan(bytes: &[u8], jpeg: &JpegHeader, width: u32, height: u32) -> Option<Cut> {
    let interval = u64::from(jpeg.restart_interval);
    if !jpeg.sequential
        || interval == 0
        || jpeg.scan_components != jpeg.sampling.len()
        || u64::from(width) * u64::from(height) < MIN_PIXELS
    {
        return None;
    }
    // An interleaved scan codes MCUs of (8·Hmax)×(8·Vmax) pixels; a single component
    // codes 8×8 blocks.
    let h_max = jpeg.sampling.iter().map(|s| s.0).max()?;
    let v_max = jpeg.sampling.iter().map(|s| s.1).max()?;
    let (mcu_w, mcu_h) = if jpeg.sampling.len() == 1 { (8, 8) } else { (8 * u64::from(h_max), 8 * u64::from(v_max)) };
    if mcu_w == 0 || mcu_h == 0 {
        return None;
    }
    let overlap = jpeg.sampling.iter().any(|s| s.1 < v_max);
    let mcus_per_row = u64::from(width).div_ceil(mcu_w);
    let mcu_rows = u64::from(height).div_ceil(mcu_h);
    // A cut must be on a restart boundary, after a whole number of 8 intervals (so the
    // bottom strip starts at RST0), and on a row boundary: every `unit_rows` MCU rows.
    let unit_rows = lcm(8 * interval, mcus_per_row) / mcus_per_row;
    if overlap && unit_rows * 8 > mcu_rows {
        // The overlap would cost more than a quarter of the work.
        return None;
    }
    let markers_per_unit = unit_rows * mcus_per_row / interval;
    // Of the allowed cuts, take the one nearest the middle of the data: entropy decoding
    // time follows bytes, not rows (a sky codes smaller than a crowd).
    let middle = jpeg.scan_data_at + bytes.len().saturating_sub(jpeg.scan_data_at) / 2;
    let mut points: Vec<CutPoint> = Vec::new();
    for (index, marker_at) in (1u64..).zip(restart_markers(bytes, jpeg.scan_data_at)) {
        if index % markers_per_unit != 0 {
            continue;
        }
        let rows = index / markers_per_unit * unit_rows;
        if rows >= mcu_rows {
            break;
        }
        // The marker ending interval n (1-based) is RST((n - 1) mod 8): here RST7.
        if bytes.get(marker_at + 1) != Some(&0xD7) {
            return None;
        }
        points.push(CutPoint { rows: u32::try_from(rows * mcu_h).ok()?, marker_at });
        // One point past the middle is enough (plus one more for the overlap).
        let past_middle = points.iter().filter(|p| p.marker_at > middle).count();
        if past_middle >= 2 {
            break;
        }
    }
    let best = (0..points.len()).min_by_key(|&i| points[i].marker_at.abs_diff(middle))?;
    if !overlap {
        return Some(Cut { seam: points[best].rows, top_end: points[best], bottom_start: points[best] });
    }
    Some(Cut {
        seam: points[best].rows,
        top_end: *points.get(best + 1)?,
        bottom_start: *points.get(best.checked_sub(1)?)?,
    })
}

/// Decodes the two strips in parallel at `eighths`/8 scale and stacks them.
pub(crate) fn decode(
    bytes: &[u8],
    jpeg: &JpegHeader,
    cut: &Cut,
    (width, height): (u32, u32),
    eighths: u32,
    max_buffer: usize,
) -> Option<Strips> {
    let header = bytes.get(..jpeg.scan_data_at)?;
    let top_data = bytes.get(jpeg.scan_data_at..cut.top_end.marker_at)?;
    let bottom_data = bytes.get(cut.bottom_start.marker_at + 2..)?;
    let top_rows = cut.top_end.rows;
    let bottom_rows = height - cut.bottom_start.rows;
    let top_file = strip_file(header, jpeg.frame_at, top_rows, top_data, &[0xFF, 0xD9])?;
    let bottom_file = strip_file(header, jpeg.frame_at, bottom_rows, bottom_data, &[])?;
    let out_w = scaled_by_eighths(width, eighths);

    let strip = |file: &[u8], strip_h: u32| {
        let mut decoder = jpeg_decoder::Decoder::new(file);
        decoder.set_max_decoding_buffer_size(max_buffer);
        if eighths < 8 {
            let request = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
            decoder.scale(request(out_w), request(strip_h)).ok()?;
        }
        let data = decoder.decode().ok()?;
        let info = decoder.info()?;
        let size_ok = (u32::from(info.width), u32::from(info.height)) == (out_w, strip_h);
        size_ok.then(|| (data, info, decoder.icc_profile()))
    };
    let top_h = scaled_by_eighths(top_rows, eighths);
    let bottom_h = scaled_by_eighths(bottom_rows, eighths);
    let (top, bottom) = std::thread::scope(|scope| {
        // No thread to be had means no strips, not an error: the caller decodes in one go.
        let top = std::thread::Builder::new()
            .name("jpeg-strip".to_owned())
            .spawn_scoped(scope, || strip(&top_file, top_h))
            .ok()?;
        let bottom = strip(&bottom_file, bottom_h);
        Some((top.join().ok().flatten(), bottom))
    })?;
    drop((top_file, bottom_file));
    let ((mut data, info, icc_profile), (bottom_data, bottom_info, _)) = (top?, bottom?);
    if bottom_info.pixel_format != info.pixel_format {
        return None;
    }
    // Cut points are whole MCU rows (multiples of 8 pixels), so these scale exactly.
    let row_len = usize::try_from(out_w).ok()? * info.pixel_format.pixel_bytes();
    let keep_top = usize::try_from(scaled_by_eighths(cut.seam, eighths)).ok()? * row_len;
    let skip_bottom = usize::try_from(scaled_by_eighths(cut.seam - cut.bottom_start.rows, eighths)).ok()? * row_len;
    data.truncate(keep_top);
    let bottom_kept = bottom_data.get(skip_bottom..)?;
    data.reserve_exact(bottom_kept.len());
    data.extend_from_slice(bottom_kept);
    drop(bottom_data);
    let info = jpeg_decoder::ImageInfo { height: u16::try_from(data.len() / row_len).ok()?, ..info };
    Some(Strips { data, info, icc_profile })
}

/// A standalone JPEG: the header with the frame height replaced, the entropy-coded data,
/// and `tail`. One contiguous buffer, because jpeg-decoder reads byte by byte and a
/// `&[u8]` reader is much faster than a chain of them.
fn strip_file(header: &[u8], frame_at: usize, height: u32, data: &[u8], tail: &[u8]) -> Option<Vec<u8>> {
    let mut file = Vec::with_capacity(header.len() + data.len() + tail.len());
    file.extend_from_slice(header);
    file.get_mut(frame_at + 1..frame_at + 3)?.copy_from_slice(&u16::try_from(height).ok()?.to_be_bytes());
    file.extend_from_slice(data);
    file.extend_from_slice(tail);
    Some(file)
}

/// The offsets of the restart markers in the entropy-coded data that starts at `from`, up
/// to the first other marker.
fn restart_markers(bytes: &[u8], from: usize) -> impl Iterator<Item = usize> + '_ {
    let mut at = from;
    std::iter::from_fn(move || {
        loop {
            at += bytes.get(at..)?.iter().position(|&b| b == 0xFF)?;
            match *bytes.get(at + 1)? {
                // A stuffed zero: a literal 0xFF in the data.
                0x00 => at += 2,
                // Fill bytes before a marker.
                0xFF => at += 1,
                0xD0..=0xD7 => {
                    at += 2;
                    return Some(at - 2);
                }
                _ => return None,
            }
        }
    })
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_markers_are_found_past_stuffed_bytes_and_fill_until_another_marker() {
        let data = [0x12, 0xFF, 0x00, 0xFF, 0xD0, 0x34, 0xFF, 0xFF, 0xD1, 0x56, 0xFF, 0xD9, 0xFF, 0xD2];
        let found: Vec<usize> = restart_markers(&data, 0).collect();
        assert_eq!(found, vec![3, 7]);
    }

    #[test]
    fn a_jpeg_without_restart_markers_is_not_cut() {
        let jpeg =
            JpegHeader { sequential: true, sampling: vec![(1, 1); 3], scan_components: 3, ..JpegHeader::default() };
        assert_eq!(plan(&[], &jpeg, 5760, 3840), None);
    }

    /// A 2048×2048 gradient JPEG with a restart marker every MCU row.
    fn jpeg_with_restarts(sampling: jpeg_encoder::SamplingFactor) -> Vec<u8> {
        let size = 2048usize;
        let pixels: Vec<u8> = (0..size * size)
            .flat_map(|i| {
                let (x, y) = (i % size, i / size);
                [(x / 8) as u8, (y / 8) as u8, ((x ^ y) & 0xFF) as u8]
            })
            .collect();
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
        encoder.set_sampling_factor(sampling);
        encoder.set_restart_interval(128);
        encoder.encode(&pixels, 2048, 2048, jpeg_encoder::ColorType::Rgb).expect("encode");
        out
    }

    fn whole(bytes: &[u8], eighths: u16) -> Vec<u8> {
        let mut decoder = jpeg_decoder::Decoder::new(bytes);
        decoder.scale(2048 * eighths / 8, 2048 * eighths / 8).expect("scale");
        decoder.decode().expect("decode")
    }

    fn strips(bytes: &[u8], eighths: u32) -> Option<Strips> {
        let header = crate::imaging::probe::read_header(bytes).expect("header");
        let crate::imaging::probe::Detail::Jpeg(jpeg) = header.detail else {
            return None;
        };
        let cut = plan(bytes, &jpeg, 2048, 2048)?;
        decode(bytes, &jpeg, &cut, (2048, 2048), eighths, usize::MAX)
    }

    #[test]
    fn two_strips_decode_to_the_same_pixels_as_one_pass() {
        let bytes = jpeg_with_restarts(jpeg_encoder::SamplingFactor::F_1_1);
        for eighths in [1, 2, 8] {
            let stacked = strips(&bytes, eighths).expect("a cut is found");
            assert_eq!(stacked.data, whole(&bytes, eighths as u16), "at {eighths}/8");
        }
    }

    #[test]
    fn with_subsampled_chroma_overlapping_strips_give_the_same_pixels() {
        let bytes = jpeg_with_restarts(jpeg_encoder::SamplingFactor::F_2_2);
        for eighths in [1, 2, 8] {
            let stacked = strips(&bytes, eighths).expect("a cut is found");
            assert_eq!(stacked.data, whole(&bytes, eighths as u16), "at {eighths}/8");
        }
    }

    #[test]
    fn the_least_common_multiple_is_exact() {
        assert_eq!(lcm(5760, 720), 5760);
        assert_eq!(lcm(8, 720), 720);
        assert_eq!(lcm(32, 456), 1824);
    }
}
