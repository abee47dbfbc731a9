//! EXIF orientation: read from the JPEG's APP1, and applied to the (small) output image.

/// The EXIF orientation (1 to 8) of a JPEG, 1 when absent or unreadable.
pub fn jpeg_orientation(bytes: &[u8]) -> u16 {
    let mut i = 2;
    while i + 4 <= bytes.len() && bytes[i] == 0xFF {
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if marker == 0xDA || len < 2 {
            break;
        }
        let body = bytes.get(i + 4..i + 2 + len).unwrap_or(&[]);
        if marker == 0xE1 && body.starts_with(b"Exif\0\0") {
            return tiff_orientation(&body[6..]).unwrap_or(1);
        }
        i += 2 + len;
    }
    1
}

fn tiff_orientation(tiff: &[u8]) -> Option<u16> {
    let little = match tiff.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(if little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    (0..count).find_map(|n| {
        let entry = ifd + 2 + 12 * n;
        (u16_at(entry)? == 0x0112).then(|| u16_at(entry + 8)).flatten()
    }).filter(|o| (1..=8).contains(o))
}

/// Whether `orientation` swaps width and height.
pub fn swaps_sides(orientation: u16) -> bool {
    orientation >= 5
}

/// The upright size of a `w`×`h` stored image.
pub fn upright_size(orientation: u16, w: usize, h: usize) -> (usize, usize) {
    if swaps_sides(orientation) { (h, w) } else { (w, h) }
}

/// Puts stored rows `y0..` (`rows`, of a `w`×`h` image with `ch` bytes a pixel) where they
/// belong in `out`, the upright image: rows can be placed as they are made.
pub fn place_rows(orientation: u16, w: usize, h: usize, ch: usize, y0: usize, rows: &[u8], out: &mut [u8]) {
    let (ow, _) = upright_size(orientation, w, h);
    let n = rows.len() / (w * ch);
    if swaps_sides(orientation) {
        // Stored row y becomes upright column dx, read down (5, 6) or up (7, 8). Stored
        // pixel x of rows y0..y0+n lands in one upright row, as n neighbouring pixels:
        // walking x outside and the rows inside writes runs, not single pixels a row apart.
        let down = orientation == 5 || orientation == 6;
        let left_to_right = orientation == 5 || orientation == 8;
        for x in 0..w {
            let dy = if down { x } else { w - 1 - x };
            let line = &mut out[dy * ow * ch..(dy + 1) * ow * ch];
            for i in 0..n {
                let y = y0 + i;
                let dx = if left_to_right { y } else { h - 1 - y };
                let s = (i * w + x) * ch;
                line[dx * ch..(dx + 1) * ch].copy_from_slice(&rows[s..s + ch]);
            }
        }
        return;
    }
    for (i, row) in rows.chunks_exact(w * ch).enumerate() {
        let y = y0 + i;
        match orientation {
            2..=4 => {
                let dy = if orientation == 2 { y } else { h - 1 - y };
                let dst = &mut out[dy * ow * ch..(dy + 1) * ow * ch];
                if orientation == 4 {
                    dst.copy_from_slice(row);
                } else {
                    for (d, s) in dst.chunks_exact_mut(ch).rev().zip(row.chunks_exact(ch)) {
                        d.copy_from_slice(s);
                    }
                }
            }
            _ => out[y * w * ch..(y + 1) * w * ch].copy_from_slice(row),
        }
    }
}

/// `data` (`w`×`h`, `ch` bytes a pixel, stored orientation) turned upright.
/// Returns the new width, height and pixels.
pub fn apply(orientation: u16, w: usize, h: usize, ch: usize, data: Vec<u8>) -> (usize, usize, Vec<u8>) {
    if !(2..=8).contains(&orientation) {
        return (w, h, data);
    }
    let (ow, oh) = upright_size(orientation, w, h);
    let mut out = vec![0u8; data.len()];
    place_rows(orientation, w, h, ch, 0, &data, &mut out);
    (ow, oh, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: where stored pixel (x, y) lands, by the EXIF definitions.
    fn naive(orientation: u16, w: usize, h: usize, data: &[u8]) -> Vec<u8> {
        let (ow, _) = upright_size(orientation, w, h);
        let mut out = vec![0u8; data.len()];
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = match orientation {
                    2 => (w - 1 - x, y),
                    3 => (w - 1 - x, h - 1 - y),
                    4 => (x, h - 1 - y),
                    5 => (y, x),
                    6 => (h - 1 - y, x),
                    7 => (h - 1 - y, w - 1 - x),
                    8 => (y, w - 1 - x),
                    _ => (x, y),
                };
                out[dy * ow + dx] = data[y * w + x];
            }
        }
        out
    }

    #[test]
    fn placing_rows_in_chunks_matches_the_definitions() {
        let (w, h) = (5, 3);
        let data: Vec<u8> = (0..15).collect();
        for o in 1..=8 {
            let mut out = vec![0u8; 15];
            place_rows(o, w, h, 1, 0, &data[..10], &mut out);
            place_rows(o, w, h, 1, 2, &data[10..], &mut out);
            assert_eq!(out, naive(o, w, h, &data), "orientation {o}");
        }
    }
}
