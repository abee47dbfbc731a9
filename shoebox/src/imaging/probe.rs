//! Header-only reading: type, dimensions and orientation, without decoding pixels.
//!
//! Works on a prefix of the file (the server reads the first 256 KiB with a ranged GET).
//! When the header runs past the prefix the answer is [`ImagingError::NeedMoreBytes`],
//! never a guess. The resize functions use the same parser, so a probe and a resize of
//! the same bytes always agree on size and orientation.

use super::error::ImagingError;
use super::image_type::ImageType;
use super::orient::{Orientation, orientation_from_exif};
use super::sniff::sniff;

/// What the header says about an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// The real format, from the magic bytes.
    pub image_type: ImageType,
    /// Width as displayed, after the orientation is applied.
    pub width: u32,
    /// Height as displayed, after the orientation is applied.
    pub height: u32,
    /// Width of the stored pixels (before orientation).
    pub stored_width: u32,
    /// Height of the stored pixels (before orientation).
    pub stored_height: u32,
    /// The EXIF orientation (upright when there is none).
    pub orientation: Orientation,
}

impl ImageInfo {
    /// Width × height.
    pub fn pixel_count(&self) -> u64 {
        u64::from(self.stored_width) * u64::from(self.stored_height)
    }

    fn new(image_type: ImageType, width: u32, height: u32, orientation: Orientation) -> Self {
        let (display_width, display_height) = orientation.display_size(width, height);
        ImageInfo {
            image_type,
            width: display_width,
            height: display_height,
            stored_width: width,
            stored_height: height,
            orientation,
        }
    }
}

/// Reads the header of an image: its real type, dimensions and orientation.
///
/// `bytes` may be the whole file or a prefix of it. Returns
/// [`ImagingError::NeedMoreBytes`] when the header is not complete within the prefix (for
/// a WebP whose EXIF block sits at the end of the file, that means the whole file), and
/// [`ImagingError::UnsupportedType`] for HEIC and AVIF. Does not check [`Limits`]
/// (see [`Limits::check`]) and allocates nothing large.
///
/// [`Limits`]: super::Limits
/// [`Limits::check`]: super::Limits::check
pub fn probe(bytes: &[u8]) -> Result<ImageInfo, ImagingError> {
    read_header(bytes).map(|header| header.info)
}

/// Format details the decoder needs beyond [`ImageInfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    Jpeg(JpegHeader),
    Png { bit_depth: u8, color_type: u8 },
    Webp { has_alpha: bool, animated: bool },
    Gif,
}

/// The frame header of a JPEG, and where its first scan starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JpegHeader {
    pub progressive: bool,
    /// Baseline or extended sequential Huffman (SOF0, SOF1): one pass over the data.
    pub sequential: bool,
    /// Horizontal and vertical sampling factor of each component.
    pub sampling: Vec<(u8, u8)>,
    /// Offset of the frame header's body (precision, height, width, ...).
    pub frame_at: usize,
    /// MCUs between restart markers (DRI), 0 for none.
    pub restart_interval: u16,
    /// Components in the first scan.
    pub scan_components: usize,
    /// Offset of the first entropy-coded byte of the first scan.
    pub scan_data_at: usize,
}

/// The parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub info: ImageInfo,
    pub detail: Detail,
}

pub(crate) fn read_header(bytes: &[u8]) -> Result<Header, ImagingError> {
    let image_type = sniff(bytes)?;
    let mut cursor = Cursor { bytes, image_type };
    match image_type {
        ImageType::Jpeg => read_jpeg(&mut cursor),
        ImageType::Png => read_png(&mut cursor),
        ImageType::Webp => read_webp(&mut cursor),
        ImageType::Gif => read_gif(&mut cursor),
        ImageType::Heic | ImageType::Avif => Err(ImagingError::UnsupportedType(image_type)),
    }
}

/// Bounds-checked reads that turn "past the end" into `NeedMoreBytes`.
struct Cursor<'a> {
    bytes: &'a [u8],
    image_type: ImageType,
}

impl<'a> Cursor<'a> {
    fn slice(&self, start: usize, len: usize) -> Result<&'a [u8], ImagingError> {
        let end = start.checked_add(len).ok_or_else(|| self.corrupt("length overflows"))?;
        self.bytes
            .get(start..end)
            .ok_or(ImagingError::NeedMoreBytes { have: self.bytes.len(), needed: Some(end as u64) })
    }

    fn u8(&self, at: usize) -> Result<u8, ImagingError> {
        Ok(self.slice(at, 1)?[0])
    }

    fn u16_be(&self, at: usize) -> Result<u16, ImagingError> {
        let b = self.slice(at, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32_be(&self, at: usize) -> Result<u32, ImagingError> {
        let b = self.slice(at, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u16_le(&self, at: usize) -> Result<u16, ImagingError> {
        let b = self.slice(at, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u24_le(&self, at: usize) -> Result<u32, ImagingError> {
        let b = self.slice(at, 3)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    fn u32_le(&self, at: usize) -> Result<u32, ImagingError> {
        let b = self.slice(at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn corrupt(&self, reason: &str) -> ImagingError {
        ImagingError::Corrupt { image_type: self.image_type, reason: reason.to_owned() }
    }

    fn header(
        &self,
        width: u32,
        height: u32,
        orientation: Orientation,
        detail: Detail,
    ) -> Result<Header, ImagingError> {
        if width == 0 || height == 0 {
            return Err(self.corrupt("the header gives a width or height of zero"));
        }
        Ok(Header { info: ImageInfo::new(self.image_type, width, height, orientation), detail })
    }
}

/// Walks the marker segments up to the first scan: SOFn gives the size, the first
/// APP1 `Exif` segment the orientation.
fn read_jpeg(c: &mut Cursor<'_>) -> Result<Header, ImagingError> {
    let mut pos = 2;
    let mut orientation = None;
    let mut frame: Option<(u32, u32, JpegHeader)> = None;
    let mut restart_interval = 0;
    loop {
        if c.u8(pos)? != 0xFF {
            return Err(c.corrupt("a marker was expected between header segments"));
        }
        // Any number of 0xFF fill bytes may precede a marker code.
        while c.u8(pos)? == 0xFF {
            pos += 1;
        }
        let marker = c.u8(pos)?;
        pos += 1;
        match marker {
            // Markers without a length: TEM, RSTn, a repeated SOI.
            0x01 | 0xD0..=0xD8 => continue,
            0xD9 => return Err(c.corrupt("the file ends before any image data")),
            _ => {}
        }
        let len = usize::from(c.u16_be(pos)?);
        if len < 2 {
            return Err(c.corrupt("a header segment has an invalid length"));
        }
        // Ask for the next marker and length along with this segment, so that a caller
        // growing its prefix needs one round per segment. Something always follows a
        // header segment in a valid file: another segment or, after SOS, the image data.
        c.slice(pos, len + 4)?;
        let body = c.slice(pos + 2, len - 2)?;
        match marker {
            // SOF0-SOF15, except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) && frame.is_none() => {
                let (width, height, mut jpeg) = parse_sof(c, marker, body)?;
                jpeg.frame_at = pos + 2;
                frame = Some((width, height, jpeg));
            }
            0xDD if body.len() >= 2 => restart_interval = u16::from_be_bytes([body[0], body[1]]),
            0xE1 if orientation.is_none() && body.starts_with(b"Exif\0\0") => {
                orientation = Some(orientation_from_exif(body));
            }
            0xDA => {
                let (width, height, mut jpeg) =
                    frame.ok_or_else(|| c.corrupt("the image data starts before the frame header"))?;
                jpeg.restart_interval = restart_interval;
                jpeg.scan_components = usize::from(body.first().copied().unwrap_or_default());
                jpeg.scan_data_at = pos + len;
                let orientation = orientation.unwrap_or_default();
                return c.header(width, height, orientation, Detail::Jpeg(jpeg));
            }
            _ => {}
        }
        pos += len;
    }
}

fn parse_sof(c: &Cursor<'_>, marker: u8, body: &[u8]) -> Result<(u32, u32, JpegHeader), ImagingError> {
    if body.len() < 6 {
        return Err(c.corrupt("the frame header is too short"));
    }
    let height = u32::from(u16::from_be_bytes([body[1], body[2]]));
    let width = u32::from(u16::from_be_bytes([body[3], body[4]]));
    let count = usize::from(body[5]);
    let components = body.get(6..6 + 3 * count).ok_or_else(|| c.corrupt("the frame header is too short"))?;
    if height == 0 {
        return Err(ImagingError::UnsupportedEncoding {
            image_type: ImageType::Jpeg,
            reason: "the height is only given after the image data (DNL)".to_owned(),
        });
    }
    let sampling = components.chunks_exact(3).map(|comp| (comp[1] >> 4, comp[1] & 0x0F)).collect();
    let jpeg = JpegHeader {
        progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
        sequential: matches!(marker, 0xC0 | 0xC1),
        sampling,
        ..JpegHeader::default()
    };
    Ok((width, height, jpeg))
}

/// Reads IHDR, then the chunks before the first IDAT for an `eXIf` orientation.
fn read_png(c: &mut Cursor<'_>) -> Result<Header, ImagingError> {
    if c.slice(12, 4)? != b"IHDR" || c.u32_be(8)? != 13 {
        return Err(c.corrupt("the first chunk is not IHDR"));
    }
    let width = c.u32_be(16)?;
    let height = c.u32_be(20)?;
    let bit_depth = c.u8(24)?;
    let color_type = c.u8(25)?;
    let mut orientation = Orientation::Normal;
    let mut pos = 8 + 8 + 13 + 4;
    loop {
        // Ask for the whole chunk header at once, so one more read is enough.
        let head = c.slice(pos, 8)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match &head[4..] {
            b"IDAT" => break,
            b"IEND" => return Err(c.corrupt("the file has no image data")),
            b"eXIf" => orientation = orientation_from_exif(c.slice(pos + 8, len)?),
            _ => {}
        }
        pos = pos.checked_add(12 + len).ok_or_else(|| c.corrupt("a chunk length overflows"))?;
    }
    c.header(width, height, orientation, Detail::Png { bit_depth, color_type })
}

const VP8X_ALPHA: u8 = 0x10;
const VP8X_EXIF: u8 = 0x08;
const VP8X_ANIMATION: u8 = 0x02;

/// Reads the first chunk (VP8, VP8L or VP8X) and, for VP8X with EXIF, the EXIF chunk.
fn read_webp(c: &mut Cursor<'_>) -> Result<Header, ImagingError> {
    let riff_end = (c.u32_le(4)? as usize).saturating_add(8);
    let kind = c.slice(12, 4)?;
    let payload = 20;
    match kind {
        b"VP8 " => {
            if c.slice(payload + 3, 3)? != [0x9D, 0x01, 0x2A] {
                return Err(c.corrupt("the VP8 frame has no start code"));
            }
            let width = u32::from(c.u16_le(payload + 6)? & 0x3FFF);
            let height = u32::from(c.u16_le(payload + 8)? & 0x3FFF);
            let detail = Detail::Webp { has_alpha: false, animated: false };
            c.header(width, height, Orientation::Normal, detail)
        }
        b"VP8L" => {
            if c.u8(payload)? != 0x2F {
                return Err(c.corrupt("the VP8L stream has no signature"));
            }
            let bits = c.u32_le(payload + 1)?;
            let width = (bits & 0x3FFF) + 1;
            let height = ((bits >> 14) & 0x3FFF) + 1;
            let detail = Detail::Webp { has_alpha: (bits >> 28) & 1 == 1, animated: false };
            c.header(width, height, Orientation::Normal, detail)
        }
        b"VP8X" => {
            let flags = c.u8(payload)?;
            let width = c.u24_le(payload + 4)? + 1;
            let height = c.u24_le(payload + 7)? + 1;
            let orientation =
                if flags & VP8X_EXIF != 0 { webp_exif_orientation(c, riff_end)? } else { Orientation::Normal };
            let detail = Detail::Webp { has_alpha: flags & VP8X_ALPHA != 0, animated: flags & VP8X_ANIMATION != 0 };
            c.header(width, height, orientation, detail)
        }
        _ => Err(c.corrupt("the first chunk is not VP8, VP8L or VP8X")),
    }
}

/// Finds the EXIF chunk, which the WebP layout puts after the image data.
fn webp_exif_orientation(c: &Cursor<'_>, riff_end: usize) -> Result<Orientation, ImagingError> {
    let mut pos = 12;
    while pos + 8 <= riff_end {
        let chunk = c.slice(pos, 8).map_err(|_| whole_file_needed(c, riff_end))?;
        let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]) as usize;
        if &chunk[..4] == b"EXIF" {
            let exif = c.slice(pos + 8, len).map_err(|_| whole_file_needed(c, riff_end))?;
            return Ok(orientation_from_exif(exif));
        }
        // Chunks are padded to an even length.
        pos = pos.saturating_add(8 + len + (len & 1));
    }
    Ok(Orientation::Normal)
}

/// The EXIF chunk is near the end, so ask for the whole file rather than chunk by chunk.
fn whole_file_needed(c: &Cursor<'_>, riff_end: usize) -> ImagingError {
    ImagingError::NeedMoreBytes { have: c.bytes.len(), needed: Some(riff_end as u64) }
}

/// The logical screen size; frames are drawn onto it.
fn read_gif(c: &mut Cursor<'_>) -> Result<Header, ImagingError> {
    let width = u32::from(c.u16_le(6)?);
    let height = u32::from(c.u16_le(8)?);
    c.header(width, height, Orientation::Normal, Detail::Gif)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_with_chunks(width: u32, height: u32, chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        for (kind, data) in std::iter::once((b"IHDR", &ihdr[..])).chain(chunks.iter().copied()) {
            out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_be_bytes());
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&[0, 0, 0, 0]); // The probe does not check CRCs.
        }
        out
    }

    #[test]
    fn a_png_header_gives_size_and_exif_orientation() {
        let exif = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x08\0\0\0\0\0\0";
        let png = png_with_chunks(30, 20, &[(b"eXIf", exif), (b"IDAT", b"")]);
        let info = probe(&png).expect("probe");
        assert_eq!((info.stored_width, info.stored_height), (30, 20));
        assert_eq!(info.orientation, Orientation::Rotate270);
        assert_eq!((info.width, info.height), (20, 30));
        assert_eq!(info.pixel_count(), 600);
    }

    #[test]
    fn a_png_cut_before_its_image_data_needs_more_bytes() {
        let png = png_with_chunks(30, 20, &[(b"tEXt", &[b'x'; 100]), (b"IDAT", b"")]);
        let err = probe(&png[..60]).expect_err("cut");
        assert!(matches!(err, ImagingError::NeedMoreBytes { have: 60, needed: Some(153) }), "{err:?}");
    }

    #[test]
    fn a_png_of_zero_width_is_corrupt() {
        let png = png_with_chunks(0, 20, &[(b"IDAT", b"")]);
        assert!(matches!(probe(&png), Err(ImagingError::Corrupt { .. })));
    }

    #[test]
    fn a_jpeg_header_is_read_up_to_the_first_scan() {
        // SOI, SOF0 (8-bit, 7x5, one component), SOS.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 5, 0, 7, 1, 1, 0x11, 0, 0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0x12,
            0x34, 0x56, 0x78,
        ];
        let info = probe(&jpeg).expect("probe");
        assert_eq!((info.width, info.height), (7, 5));
        assert!(matches!(probe(&jpeg[..10]), Err(ImagingError::NeedMoreBytes { .. })));
    }

    #[test]
    fn a_jpeg_without_a_frame_header_is_corrupt() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xD9];
        assert!(matches!(probe(&jpeg), Err(ImagingError::Corrupt { .. })));
    }

    #[test]
    fn a_gif_gives_its_logical_screen() {
        let info = probe(b"GIF89a\x9f\x00\x10\x00\xf7\x00\x00").expect("probe");
        assert_eq!((info.width, info.height), (159, 16));
    }
}
