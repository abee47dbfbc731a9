//! Removing metadata from a JPEG without re-encoding it.
//!
//! The served original of an upload must not carry the uploader's location, camera serial
//! numbers or an embedded thumbnail (which can show what was cropped out). Re-encoding would
//! cost quality and a full decode; instead the marker segments are filtered: the image data,
//! tables, ICC profile (colours) and Adobe segment (colour transform) are kept byte for byte,
//! everything else before the scan is dropped, and so is anything after the end-of-image
//! marker (phones append extra images there). The EXIF orientation is the one fact worth
//! keeping, so a one-tag EXIF block is written back when the photo is not upright.

use super::error::ImagingError;
use super::image_type::ImageType;
use super::orient::Orientation;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP0: u8 = 0xE0;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;

/// The JPEG `bytes` with every metadata segment removed but the ICC profile, and a minimal EXIF
/// block holding only `orientation` when it is not [`Orientation::Normal`].
///
/// Fails with [`ImagingError::Corrupt`] or [`ImagingError::Truncated`] when the segment
/// structure is broken; callers have already decoded the file, so that does not happen for
/// verified uploads.
pub fn strip_jpeg_metadata(bytes: &[u8], orientation: Orientation) -> Result<Vec<u8>, ImagingError> {
    if bytes.get(..2) != Some(&[0xFF, SOI]) {
        return Err(ImagingError::Corrupt {
            image_type: ImageType::Jpeg,
            reason: "it does not start with a JPEG start-of-image marker".to_owned(),
        });
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&[0xFF, SOI]);
    // The orientation block goes right after JFIF (APP0) when there is one, else first.
    let mut pending_orientation = (orientation != Orientation::Normal).then(|| orientation_exif(orientation));
    let mut at = 2;
    loop {
        match next_segment(bytes, at)? {
            Segment::Scan { start, end } => {
                if let Some(block) = pending_orientation.take() {
                    out.extend_from_slice(&block);
                }
                out.extend_from_slice(&bytes[start..end]);
                return Ok(out);
            }
            Segment::Marker { marker, start, end } => {
                let keep_it = keep(marker, &bytes[start + 4..end]);
                if !(keep_it && marker == APP0)
                    && let Some(block) = pending_orientation.take()
                {
                    out.extend_from_slice(&block);
                }
                if keep_it {
                    out.extend_from_slice(&bytes[start..end]);
                }
                at = end;
            }
        }
    }
}

/// One marker segment before the scan, or the scan through the end-of-image marker.
enum Segment {
    Marker { marker: u8, start: usize, end: usize },
    Scan { start: usize, end: usize },
}

fn next_segment(bytes: &[u8], mut at: usize) -> Result<Segment, ImagingError> {
    let corrupt = |reason: &str| ImagingError::Corrupt { image_type: ImageType::Jpeg, reason: reason.to_owned() };
    // Fill bytes (0xFF runs) may precede a marker.
    while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
        at += 1;
    }
    let (Some(&0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
        return Err(ImagingError::Truncated(ImageType::Jpeg));
    };
    match marker {
        SOS => {
            let end = end_of_image(bytes, at).ok_or(ImagingError::Truncated(ImageType::Jpeg))?;
            Ok(Segment::Scan { start: at, end })
        }
        EOI => Err(corrupt("it ends before any image data")),
        _ => {
            let len = match (bytes.get(at + 2), bytes.get(at + 3)) {
                (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
                _ => return Err(ImagingError::Truncated(ImageType::Jpeg)),
            };
            if len < 2 {
                return Err(corrupt("a marker segment has an impossible length"));
            }
            let end = at + 2 + len;
            if end > bytes.len() {
                return Err(ImagingError::Truncated(ImageType::Jpeg));
            }
            Ok(Segment::Marker { marker, start: at, end })
        }
    }
}

fn is_app(marker: u8) -> bool {
    (0xE0..=0xEF).contains(&marker)
}

/// Segments that describe the image rather than where, when or with what it was taken.
fn keep(marker: u8, payload: &[u8]) -> bool {
    match marker {
        APP0 => payload.starts_with(b"JFIF\0"),
        APP2 => payload.starts_with(b"ICC_PROFILE\0"),
        APP14 => payload.starts_with(b"Adobe"),
        // Other APPn (EXIF, XMP, IPTC, maker data, MPF) and comments go.
        m if is_app(m) || m == 0xFE => false,
        // Frame headers, tables, restart intervals: the image itself.
        _ => true,
    }
}

/// The offset just past the end-of-image marker that ends the image whose first scan starts
/// at `sos`. Inside entropy-coded data 0xFF is always followed by 0x00 (stuffing) or a restart
/// marker, so the first other marker pair after the scans is found by a plain scan.
fn end_of_image(bytes: &[u8], sos: usize) -> Option<usize> {
    let mut at = sos;
    while at + 1 < bytes.len() {
        if bytes[at] == 0xFF && bytes[at + 1] == EOI {
            return Some(at + 2);
        }
        at += 1;
    }
    None
}

/// A minimal APP1 EXIF block: a big-endian TIFF header and one IFD with the Orientation tag.
fn orientation_exif(orientation: Orientation) -> [u8; 36] {
    let mut b = [0u8; 36];
    b[..4].copy_from_slice(&[0xFF, 0xE1, 0x00, 34]);
    b[4..10].copy_from_slice(b"Exif\0\0");
    b[10..18].copy_from_slice(&[b'M', b'M', 0x00, 0x2A, 0x00, 0x00, 0x00, 0x08]);
    b[18..20].copy_from_slice(&[0x00, 0x01]); // one entry
    // Tag 0x0112 (Orientation), type 3 (SHORT), count 1, value in the first two bytes.
    b[20..32].copy_from_slice(&[0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, orientation.exif_value(), 0, 0]);
    // b[32..36]: no next IFD.
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(payload.len() + 2).expect("short").to_be_bytes();
        [&[0xFF, marker], &len[..], payload].concat()
    }

    fn fake_jpeg(segments: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![0xFF, SOI];
        for s in segments {
            v.extend_from_slice(s);
        }
        v.extend_from_slice(&segment(SOS, b"scan"));
        v.extend_from_slice(&[1, 2, 0xFF, 0x00, 3, 0xFF, 0xD0, 4, 0xFF, EOI]);
        v
    }

    #[test]
    fn metadata_segments_go_and_image_segments_stay_in_order() {
        let jfif = segment(APP0, b"JFIF\0rest");
        let exif = segment(0xE1, b"Exif\0\0GPS here");
        let xmp = segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x/>");
        let icc = segment(APP2, b"ICC_PROFILE\0\x01\x01data");
        let mpf = segment(APP2, b"MPF\0index");
        let iptc = segment(0xED, b"Photoshop 3.0\0");
        let comment = segment(0xFE, b"taken at home");
        let dqt = segment(0xDB, b"tables");
        let sof = segment(0xC0, b"frame");
        let input = fake_jpeg(&[jfif.clone(), exif, xmp, icc.clone(), mpf, iptc, comment, dqt.clone(), sof.clone()]);
        let out = strip_jpeg_metadata(&input, Orientation::Normal).expect("strips");
        let expected = fake_jpeg(&[jfif, icc, dqt, sof]);
        assert_eq!(out, expected);
    }

    #[test]
    fn a_turned_photo_keeps_only_its_orientation_after_jfif() {
        let jfif = segment(APP0, b"JFIF\0rest");
        let input = fake_jpeg(&[jfif.clone(), segment(0xE1, b"Exif\0\0lots")]);
        let out = strip_jpeg_metadata(&input, Orientation::Rotate90).expect("strips");
        let tag = orientation_exif(Orientation::Rotate90);
        assert_eq!(&out[2..2 + jfif.len()], jfif.as_slice());
        assert_eq!(&out[2 + jfif.len()..2 + jfif.len() + tag.len()], &tag);
        let parsed = exif::Reader::new().read_raw(tag[10..].to_vec()).expect("valid EXIF");
        let field = parsed.get_field(exif::Tag::Orientation, exif::In::PRIMARY).expect("orientation");
        assert_eq!(field.value.get_uint(0), Some(6));
        assert_eq!(parsed.fields().count(), 1, "nothing but the orientation");
    }

    #[test]
    fn anything_after_the_end_of_image_is_dropped() {
        let mut input = fake_jpeg(&[]);
        let clean_len = input.len();
        input.extend_from_slice(&[0xFF, SOI, 0xFF, 0xE1, 0, 4, 9, 9, 0xFF, EOI]);
        assert_eq!(strip_jpeg_metadata(&input, Orientation::Normal).expect("strips").len(), clean_len);
    }

    #[test]
    fn broken_structures_are_errors_not_panics() {
        assert!(strip_jpeg_metadata(b"", Orientation::Normal).is_err());
        assert!(strip_jpeg_metadata(b"\x89PNG", Orientation::Normal).is_err());
        assert!(strip_jpeg_metadata(&[0xFF, SOI, 0xFF, 0xE1, 0x00], Orientation::Normal).is_err());
        assert!(strip_jpeg_metadata(&[0xFF, SOI, 0xFF, 0xE1, 0x00, 0x01], Orientation::Normal).is_err());
        assert!(strip_jpeg_metadata(&[0xFF, SOI, 0xFF, 0xE1, 0x10, 0x00, 1, 2], Orientation::Normal).is_err());
        let no_eoi = [0xFF, SOI, 0xFF, SOS, 0x00, 0x02, 1, 2, 3];
        assert!(strip_jpeg_metadata(&no_eoi, Orientation::Normal).is_err());
    }
}
