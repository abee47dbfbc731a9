//! Decoding a JPEG with restart markers as two strips, one per core.
//!
//! Entropy decoding is serial and is most of the cost of a shrink-on-load decode. When a
//! baseline JPEG has restart markers (DRI), the data after a marker does not depend on the
//! data before it, so the scan can be cut at a marker on an MCU-row boundary into two
//! valid JPEGs: the same header with the frame height patched, the top rows, EOI; and the
//! same header, the bottom rows. Each half decodes on its own thread and the rows are
//! stacked. The cut is placed after a multiple of 8 restart intervals, so the bottom half
//! starts at RST0 as a decoder expects.
//!
//! Anything unexpected (no suitable marker, a strip failing) returns `None`, and the caller
//! decodes the whole file the usual way, which also gives the precise error.

use std::io::Read;

use super::geometry::scaled_by_eighths;
use super::probe::JpegHeader;

/// Below this, two threads cost more than they save.
const MIN_PIXELS: u64 = 4_000_000;

/// Where to cut the scan.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cut {
    /// Height in pixels of the top strip (a whole number of MCU rows).
    top_height: u32,
    /// Offset of the restart marker that ends the top strip's data.
    marker_at: usize,
}

/// The decoded, stacked rows and what the decoder said about them.
pub(crate) struct Strips {
    pub data: Vec<u8>,
    pub info: jpeg_decoder::ImageInfo,
    pub icc_profile: Option<Vec<u8>>,
}

/// Finds a cut near the middle of the image, if this JPEG allows one.
pub(crate) fn plan(bytes: &[u8], jpeg: &JpegHeader, width: u32, height: u32) -> Option<Cut> {
    let interval = u64::from(jpeg.restart_interval);
    eprintln!("plan {jpeg:?}");
    if !jpeg.sequential
        || interval == 0
        || jpeg.scan_components != jpeg.sampling.len()
        || u64::from(width) * u64::from(height) < MIN_PIXELS
    {
        return None;
    }
    // An interleaved scan codes MCUs of (8·Hmax)×(8·Vmax) pixels; a single component
    // codes 8×8 blocks.
    let (mcu_w, mcu_h) = if jpeg.sampling.len() == 1 {
        (8, 8)
    } else {
        let h_max = jpeg.sampling.iter().map(|s| s.0).max()?;
        let v_max = jpeg.sampling.iter().map(|s| s.1).max()?;
        (8 * u64::from(h_max), 8 * u64::from(v_max))
    };
    if mcu_w == 0 || mcu_h == 0 {
        return None;
    }
    let mcus_per_row = u64::from(width).div_ceil(mcu_w);
    let mcu_rows = u64::from(height).div_ceil(mcu_h);
    // The cut must be on a restart boundary, at a whole number of 8 intervals (so the
    // bottom half starts at RST0), and on a row boundary.
    let unit = lcm(8 * interval, mcus_per_row) / mcus_per_row;
    let split_row = ((mcu_rows / 2 + unit / 2) / unit) * unit;
    if split_row == 0 || split_row >= mcu_rows {
        return None;
    }
    let markers_before = split_row * mcus_per_row / interval;
    let marker_at = nth_restart_marker(bytes, jpeg.scan_data_at, markers_before);
    eprintln!("marker {marker_at:?} {markers_before} {split_row}");
    let marker_at = marker_at?;
    // The marker ending interval n (1-based) is RST((n - 1) mod 8): here RST7.
    if bytes.get(marker_at + 1) != Some(&0xD7) {
        return None;
    }
    Some(Cut {
        top_height: u32::try_from(split_row * mcu_h).ok()?,
        marker_at,
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
    let top_header = with_height(header, jpeg.frame_at, cut.top_height)?;
    let bottom_header = with_height(header, jpeg.frame_at, height - cut.top_height)?;
    let top_data = bytes.get(jpeg.scan_data_at..cut.marker_at)?;
    let bottom_data = bytes.get(cut.marker_at + 2..)?;
    let out_w = scaled_by_eighths(width, eighths);
    let top_h = scaled_by_eighths(cut.top_height, eighths);
    let bottom_h = scaled_by_eighths(height - cut.top_height, eighths);

    let strip = |header: &[u8], data: &[u8], tail: &'static [u8], strip_h: u32| {
        let reader = header.chain(data).chain(tail);
        let mut decoder = jpeg_decoder::Decoder::new(reader);
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
    let (top, bottom) = std::thread::scope(|scope| {
        let top = scope.spawn(|| strip(&top_header, top_data, &[0xFF, 0xD9], top_h));
        let bottom = strip(&bottom_header, bottom_data, &[], bottom_h);
        (top.join().ok().flatten(), bottom)
    });
    let ((mut data, info, icc_profile), (bottom_data, bottom_info, _)) = (top?, bottom?);
    if bottom_info.pixel_format != info.pixel_format {
        return None;
    }
    data.reserve_exact(bottom_data.len());
    data.extend_from_slice(&bottom_data);
    drop(bottom_data);
    let info = jpeg_decoder::ImageInfo {
        height: u16::try_from(top_h + bottom_h).ok()?,
        ..info
    };
    Some(Strips {
        data,
        info,
        icc_profile,
    })
}

/// The header with the frame height replaced.
fn with_height(header: &[u8], frame_at: usize, height: u32) -> Option<Vec<u8>> {
    let mut patched = header.to_vec();
    let field = patched.get_mut(frame_at + 1..frame_at + 3)?;
    field.copy_from_slice(&u16::try_from(height).ok()?.to_be_bytes());
    Some(patched)
}

/// The offset of the `n`-th (1-based) restart marker in the entropy-coded data that starts
/// at `from`, or `None` if another marker (or the end) comes first.
fn nth_restart_marker(bytes: &[u8], from: usize, n: u64) -> Option<usize> {
    let mut seen = 0;
    let mut at = from;
    loop {
        at += bytes.get(at..)?.iter().position(|&b| b == 0xFF)?;
        match *bytes.get(at + 1)? {
            // A stuffed zero: a literal 0xFF in the data.
            0x00 => at += 2,
            // Fill bytes before a marker.
            0xFF => at += 1,
            0xD0..=0xD7 => {
                seen += 1;
                if seen == n {
                    return Some(at);
                }
                at += 2;
            }
            _ => return None,
        }
    }
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
    fn restart_markers_are_found_past_stuffed_bytes_and_fill() {
        let data = [0x12, 0xFF, 0x00, 0xFF, 0xD0, 0x34, 0xFF, 0xFF, 0xD1, 0x56, 0xFF, 0xD9];
        assert_eq!(nth_restart_marker(&data, 0, 1), Some(3));
        assert_eq!(nth_restart_marker(&data, 0, 2), Some(7));
        // EOI comes before a third.
        assert_eq!(nth_restart_marker(&data, 0, 3), None);
    }

    #[test]
    fn a_jpeg_without_restart_markers_is_not_cut() {
        let jpeg = JpegHeader {
            sequential: true,
            sampling: vec![(1, 1); 3],
            scan_components: 3,
            ..JpegHeader::default()
        };
        assert_eq!(plan(&[], &jpeg, 5760, 3840), None);
    }

    #[test]
    fn the_least_common_multiple_is_exact() {
        assert_eq!(lcm(5760, 720), 5760);
        assert_eq!(lcm(8, 720), 720);
        assert_eq!(lcm(32, 456), 1824);
    }
}
