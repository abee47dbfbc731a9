//! EXIF orientation: reading the tag and turning stored pixels upright.

/// How the stored pixels must be transformed to be displayed upright (EXIF tag 0x0112).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Orientation {
    /// 1: stored upright.
    #[default]
    Normal,
    /// 2: mirrored left to right.
    FlipHorizontal,
    /// 3: upside down.
    Rotate180,
    /// 4: mirrored top to bottom.
    FlipVertical,
    /// 5: mirrored along the top-left to bottom-right diagonal.
    Transpose,
    /// 6: must be turned 90° clockwise.
    Rotate90,
    /// 7: mirrored along the top-right to bottom-left diagonal.
    Transverse,
    /// 8: must be turned 90° anticlockwise (270° clockwise).
    Rotate270,
}

impl Orientation {
    /// The orientation for an EXIF value; values outside 1–8 mean "upright", as browsers
    /// treat them.
    pub fn from_exif(value: u32) -> Orientation {
        match value {
            2 => Orientation::FlipHorizontal,
            3 => Orientation::Rotate180,
            4 => Orientation::FlipVertical,
            5 => Orientation::Transpose,
            6 => Orientation::Rotate90,
            7 => Orientation::Transverse,
            8 => Orientation::Rotate270,
            _ => Orientation::Normal,
        }
    }

    /// The EXIF value, 1 to 8.
    pub fn exif_value(self) -> u8 {
        match self {
            Orientation::Normal => 1,
            Orientation::FlipHorizontal => 2,
            Orientation::Rotate180 => 3,
            Orientation::FlipVertical => 4,
            Orientation::Transpose => 5,
            Orientation::Rotate90 => 6,
            Orientation::Transverse => 7,
            Orientation::Rotate270 => 8,
        }
    }

    /// True for 5 to 8: the displayed width is the stored height.
    pub fn swaps_dimensions(self) -> bool {
        matches!(
            self,
            Orientation::Transpose | Orientation::Rotate90 | Orientation::Transverse | Orientation::Rotate270
        )
    }

    /// Displayed `(width, height)` for stored `(width, height)`.
    pub fn display_size(self, width: u32, height: u32) -> (u32, u32) {
        if self.swaps_dimensions() { (height, width) } else { (width, height) }
    }
}

/// Reads the Orientation tag of IFD0 from an EXIF block.
///
/// Accepts the TIFF structure with or without the `Exif\0\0` prefix that JPEG APP1 and some
/// WebP files put before it. A block that cannot be parsed, or has no tag, means upright:
/// camera maker notes are often malformed, and that must not stop the upload.
pub(crate) fn orientation_from_exif(exif: &[u8]) -> Orientation {
    let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    let parsed = reader.read_raw(tiff.to_vec()).or_else(|e| e.distill_partial_result(|_ignored| ()));
    parsed
        .ok()
        .and_then(|exif| {
            exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).and_then(|field| field.value.get_uint(0))
        })
        .map_or(Orientation::Normal, Orientation::from_exif)
}

/// Returns the pixels turned upright, and their new `(width, height)`.
///
/// `pixels` is `width * height` pixels of `channels` bytes each, row by row.
pub(crate) fn apply(
    orientation: Orientation,
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    channels: usize,
) -> (Vec<u8>, u32, u32) {
    if orientation == Orientation::Normal {
        return (pixels, width, height);
    }
    let (w, h) = (width as usize, height as usize);
    let (out_w, out_h) = orientation.display_size(width, height);
    let mut out = vec![0u8; pixels.len()];
    // For each displayed pixel (dx, dy), the stored pixel it comes from.
    let source: fn(usize, usize, usize, usize) -> (usize, usize) = match orientation {
        Orientation::Normal => |dx, dy, _, _| (dx, dy),
        Orientation::FlipHorizontal => |dx, dy, w, _| (w - 1 - dx, dy),
        Orientation::Rotate180 => |dx, dy, w, h| (w - 1 - dx, h - 1 - dy),
        Orientation::FlipVertical => |dx, dy, _, h| (dx, h - 1 - dy),
        Orientation::Transpose => |dx, dy, _, _| (dy, dx),
        Orientation::Rotate90 => |dx, dy, _, h| (dy, h - 1 - dx),
        Orientation::Transverse => |dx, dy, w, h| (w - 1 - dy, h - 1 - dx),
        Orientation::Rotate270 => |dx, dy, w, _| (w - 1 - dy, dx),
    };
    let row_len = out_w as usize * channels;
    for (dy, row) in out.chunks_exact_mut(row_len).enumerate() {
        for (dx, px) in row.chunks_exact_mut(channels).enumerate() {
            let (sx, sy) = source(dx, dy, w, h);
            let at = (sy * w + sx) * channels;
            px.copy_from_slice(&pixels[at..at + channels]);
        }
    }
    (out, out_w, out_h)
}

/// Places rows `first_row..` of a stored image `width`×`height` (`channels` bytes a pixel)
/// where they go in the upright image `out` (the same number of bytes): the rows of a banded
/// decode can be turned upright as they come, with no second copy of the image.
pub(crate) fn place_rows(
    orientation: Orientation,
    (width, height): (u32, u32),
    channels: usize,
    first_row: u32,
    rows: &[u8],
    out: &mut [u8],
) {
    let (w, h) = (width as usize, height as usize);
    let out_w = orientation.display_size(width, height).0 as usize;
    // For each stored pixel (sx, sy), the displayed pixel it becomes: the inverse of `apply`'s.
    let target: fn(usize, usize, usize, usize) -> (usize, usize) = match orientation {
        Orientation::Normal => |sx, sy, _, _| (sx, sy),
        Orientation::FlipHorizontal => |sx, sy, w, _| (w - 1 - sx, sy),
        Orientation::Rotate180 => |sx, sy, w, h| (w - 1 - sx, h - 1 - sy),
        Orientation::FlipVertical => |sx, sy, _, h| (sx, h - 1 - sy),
        Orientation::Transpose => |sx, sy, _, _| (sy, sx),
        Orientation::Rotate90 => |sx, sy, _, h| (h - 1 - sy, sx),
        Orientation::Transverse => |sx, sy, w, h| (h - 1 - sy, w - 1 - sx),
        Orientation::Rotate270 => |sx, sy, w, _| (sy, w - 1 - sx),
    };
    for (i, row) in rows.chunks_exact(w * channels).enumerate() {
        let sy = first_row as usize + i;
        for (sx, px) in row.chunks_exact(channels).enumerate() {
            let (dx, dy) = target(sx, sy, w, h);
            let at = (dy * out_w + dx) * channels;
            out[at..at + channels].copy_from_slice(px);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_placed_as_they_come_end_where_apply_puts_them() {
        let (w, h, channels) = (5u32, 3u32, 2usize);
        let stored: Vec<u8> = (0..w * h * 2).map(|v| v as u8).collect();
        for value in 1..=8 {
            let orientation = Orientation::from_exif(value);
            let (whole, _, _) = apply(orientation, stored.clone(), w, h, channels);
            let mut placed = vec![0u8; stored.len()];
            for (n, rows) in stored.chunks(w as usize * channels * 2).enumerate() {
                place_rows(orientation, (w, h), channels, 2 * n as u32, rows, &mut placed);
            }
            assert_eq!(placed, whole, "{orientation:?}");
        }
    }

    /// A 3x2 grey image whose pixel values are 1..=6, row by row:
    /// ```text
    /// 1 2 3
    /// 4 5 6
    /// ```
    fn sample() -> Vec<u8> {
        vec![1, 2, 3, 4, 5, 6]
    }

    #[test]
    fn each_orientation_moves_pixels_where_exif_says() {
        let cases: [(Orientation, &[u8], (u32, u32)); 8] = [
            (Orientation::Normal, &[1, 2, 3, 4, 5, 6], (3, 2)),
            (Orientation::FlipHorizontal, &[3, 2, 1, 6, 5, 4], (3, 2)),
            (Orientation::Rotate180, &[6, 5, 4, 3, 2, 1], (3, 2)),
            (Orientation::FlipVertical, &[4, 5, 6, 1, 2, 3], (3, 2)),
            (Orientation::Transpose, &[1, 4, 2, 5, 3, 6], (2, 3)),
            (Orientation::Rotate90, &[4, 1, 5, 2, 6, 3], (2, 3)),
            (Orientation::Transverse, &[6, 3, 5, 2, 4, 1], (2, 3)),
            (Orientation::Rotate270, &[3, 6, 2, 5, 1, 4], (2, 3)),
        ];
        for (orientation, expected, size) in cases {
            let (out, w, h) = apply(orientation, sample(), 3, 2, 1);
            assert_eq!(out, expected, "{orientation:?}");
            assert_eq!((w, h), size, "{orientation:?}");
        }
    }

    #[test]
    fn multi_byte_pixels_move_as_a_whole() {
        let rgb = vec![1, 1, 1, 2, 2, 2];
        let (out, w, h) = apply(Orientation::Rotate90, rgb, 2, 1, 3);
        assert_eq!((w, h), (1, 2));
        assert_eq!(out, vec![1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn exif_values_outside_one_to_eight_mean_upright() {
        assert_eq!(Orientation::from_exif(0), Orientation::Normal);
        assert_eq!(Orientation::from_exif(9), Orientation::Normal);
        for value in 1..=8 {
            assert_eq!(u32::from(Orientation::from_exif(value).exif_value()), value);
        }
    }

    #[test]
    fn the_orientation_tag_is_read_from_a_little_endian_tiff_block() {
        // "II*\0", IFD at 8, one entry: tag 0x0112, SHORT, count 1, value 6.
        let mut tiff = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
        tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(orientation_from_exif(&tiff), Orientation::Rotate90);
    }

    #[test]
    fn an_unreadable_exif_block_means_upright() {
        assert_eq!(orientation_from_exif(b"garbage"), Orientation::Normal);
        assert_eq!(orientation_from_exif(b""), Orientation::Normal);
    }
}
