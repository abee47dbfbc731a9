//! Removing metadata from an image without re-encoding it.
//!
//! The served original of an upload must not carry the uploader's location, camera serial
//! numbers or an embedded thumbnail (which can show what was cropped out). Re-encoding would
//! cost quality and a full decode; instead the container is filtered (with `img-parts`), and
//! what draws the picture (image data, tables, palette, transparency, colour profile,
//! animation) is kept byte for byte. The EXIF orientation is the one fact worth keeping, so a
//! one-tag EXIF block is written back when the photo is not upright.
//!
//! - JPEG: marker segments before the scan other than JFIF, ICC and Adobe go, and so does
//!   anything after the end-of-image marker (phones append extra images there).
//! - PNG: ancillary chunks other than those that affect rendering go (`eXIf`, text, time,
//!   private chunks).
//! - WebP: the `EXIF` and `XMP ` chunks go, and the header's flags say so.
//! - GIF carries no location or camera data and is returned unchanged.

use bytes::Bytes;
use img_parts::ImageEXIF;
use img_parts::jpeg::Jpeg;
use img_parts::png::Png;
use img_parts::webp::WebP;

use super::error::ImagingError;
use super::image_type::ImageType;
use super::orient::Orientation;

const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP0: u8 = 0xE0;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;

/// `bytes` without metadata, in the same format; see the module documentation for what each
/// format keeps.
pub fn strip_metadata(bytes: &[u8], image_type: ImageType, orientation: Orientation) -> Result<Vec<u8>, ImagingError> {
    match image_type {
        ImageType::Jpeg => strip_jpeg_metadata(bytes, orientation),
        ImageType::Png => strip_png_metadata(bytes, orientation),
        ImageType::Webp => strip_webp_metadata(bytes, orientation),
        ImageType::Gif => Ok(bytes.to_vec()),
        other => Err(ImagingError::UnsupportedType(other)),
    }
}

fn parse_error(image_type: ImageType, err: img_parts::Error) -> ImagingError {
    match err {
        img_parts::Error::Truncated => ImagingError::Truncated(image_type),
        other => ImagingError::Corrupt { image_type, reason: other.to_string() },
    }
}

/// The EXIF block to write back: only the orientation, and only when it is not upright.
fn orientation_block(orientation: Orientation) -> Option<Bytes> {
    (orientation != Orientation::Normal).then(|| Bytes::copy_from_slice(&orientation_tiff(orientation)))
}

/// The JPEG `bytes` with every metadata segment removed but the ICC profile, and a minimal EXIF
/// block holding only `orientation` when it is not [`Orientation::Normal`].
///
/// Fails with [`ImagingError::Corrupt`] or [`ImagingError::Truncated`] when the segment
/// structure is broken; callers have already decoded the file, so that does not happen for
/// verified uploads.
pub fn strip_jpeg_metadata(bytes: &[u8], orientation: Orientation) -> Result<Vec<u8>, ImagingError> {
    let mut jpeg = Jpeg::from_bytes(Bytes::copy_from_slice(bytes)).map_err(|e| parse_error(ImageType::Jpeg, e))?;
    if jpeg.segment_by_marker(SOS).is_none() {
        return Err(ImagingError::Corrupt {
            image_type: ImageType::Jpeg,
            reason: "it ends before any image data".to_owned(),
        });
    }
    jpeg.segments_mut().retain(|segment| keep(segment.marker(), segment.contents()));
    // Goes after JFIF (APP0) when there is one, else first.
    jpeg.set_exif(orientation_block(orientation));
    // img-parts keeps everything after the first scan header as it is, extra images appended
    // by phones included: cut after the end-of-image marker.
    let header_len: usize = jpeg.segments().iter().map(|s| s.len()).sum::<usize>() + 2;
    let mut out = Vec::from(jpeg.encoder().bytes());
    let end = end_of_image(&out, header_len).ok_or(ImagingError::Truncated(ImageType::Jpeg))?;
    out.truncate(end);
    Ok(out)
}

/// Segments that describe the image rather than where, when or with what it was taken.
fn keep(marker: u8, payload: &[u8]) -> bool {
    match marker {
        APP0 => payload.starts_with(b"JFIF\0"),
        APP2 => payload.starts_with(b"ICC_PROFILE\0"),
        APP14 => payload.starts_with(b"Adobe"),
        // Other APPn (EXIF, XMP, IPTC, maker data, MPF) and comments go.
        0xE0..=0xEF | 0xFE => false,
        // Frame headers, tables, restart intervals: the image itself.
        _ => true,
    }
}

/// The offset just past the end-of-image marker that ends the image whose entropy-coded data
/// starts at `from`. Inside entropy-coded data 0xFF is always followed by 0x00 (stuffing) or
/// a restart marker, so the first other marker pair after the scans is found by a plain scan.
fn end_of_image(bytes: &[u8], from: usize) -> Option<usize> {
    let at = bytes.get(from..)?.windows(2).position(|pair| pair == [0xFF, EOI])?;
    Some(from + at + 2)
}

/// A TIFF structure (as EXIF is stored) with one IFD holding only the Orientation tag.
fn orientation_tiff(orientation: Orientation) -> [u8; 26] {
    let mut b = [0u8; 26];
    b[..8].copy_from_slice(&[b'M', b'M', 0x00, 0x2A, 0x00, 0x00, 0x00, 0x08]);
    b[8..10].copy_from_slice(&[0x00, 0x01]); // one entry
    // Tag 0x0112 (Orientation), type 3 (SHORT), count 1, value in the first two bytes.
    b[10..22].copy_from_slice(&[0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, orientation.exif_value(), 0, 0]);
    // b[22..26]: no next IFD.
    b
}

/// Chunks that change how a PNG is drawn, kept with the critical ones (upper-case first letter).
const PNG_RENDERING_CHUNKS: [&[u8; 4]; 11] =
    [b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"pHYs", b"acTL", b"fcTL", b"fdAT"];

/// The PNG `bytes` with only the chunks that draw the picture, plus an `eXIf` chunk holding the
/// orientation when it is not upright.
pub fn strip_png_metadata(bytes: &[u8], orientation: Orientation) -> Result<Vec<u8>, ImagingError> {
    let mut png = Png::from_bytes(Bytes::copy_from_slice(bytes)).map_err(|e| parse_error(ImageType::Png, e))?;
    if png.chunk_by_type(*b"IEND").is_none() {
        return Err(ImagingError::Truncated(ImageType::Png));
    }
    png.chunks_mut().retain(|chunk| {
        let kind = chunk.kind();
        kind[0].is_ascii_uppercase() || PNG_RENDERING_CHUNKS.contains(&&kind)
    });
    if let Some(tiff) = orientation_block(orientation) {
        // Just before the image data, where eXIf must be (img-parts would put it after IHDR).
        let at = png.chunks().iter().position(|c| c.kind() == *b"IDAT").unwrap_or(png.chunks().len());
        png.chunks_mut().insert(at, img_parts::png::PngChunk::new(*b"eXIf", tiff));
    }
    Ok(Vec::from(png.encoder().bytes()))
}

/// The WebP `bytes` without `EXIF` and `XMP ` chunks (an `EXIF` chunk holding only the
/// orientation is written back when it is not upright), with the header's flags to match.
pub fn strip_webp_metadata(bytes: &[u8], orientation: Orientation) -> Result<Vec<u8>, ImagingError> {
    let mut webp = WebP::from_bytes(Bytes::copy_from_slice(bytes)).map_err(|e| parse_error(ImageType::Webp, e))?;
    webp.remove_chunks_by_id(*b"XMP ");
    webp.remove_chunks_by_id(*b"EXIF");
    // A simple (VP8 or VP8L only) file has no place for metadata and had none to drop.
    if webp.has_chunk(*b"VP8X") {
        // img-parts keeps the EXIF and ICC flags right but not the XMP one (0x04).
        for chunk in webp.chunks_mut().iter_mut().filter(|c| c.id() == *b"VP8X") {
            if let img_parts::riff::RiffContent::Data(data) = chunk.content_mut()
                && let Some(&flags) = data.first()
            {
                let mut patched = data.to_vec();
                patched[0] = flags & !0x04;
                *data = Bytes::from(patched);
            }
        }
        webp.set_exif(orientation_block(orientation));
    }
    Ok(Vec::from(webp.encoder().bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOI: u8 = 0xD8;
    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

    /// The APP1 block the JPEG should carry: marker, length, `Exif\0\0`, [`orientation_tiff`].
    fn orientation_exif(orientation: Orientation) -> [u8; 36] {
        let mut b = [0u8; 36];
        b[..4].copy_from_slice(&[0xFF, 0xE1, 0x00, 34]);
        b[4..10].copy_from_slice(b"Exif\0\0");
        b[10..].copy_from_slice(&orientation_tiff(orientation));
        b
    }

    fn push_png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }

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

    fn png_with(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut v = PNG_SIGNATURE.to_vec();
        for (kind, data) in chunks {
            push_png_chunk(&mut v, kind, data);
        }
        v
    }

    #[test]
    fn png_text_exif_and_private_chunks_go_and_drawing_chunks_stay() {
        let ihdr: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0];
        let input = png_with(&[
            (b"IHDR", ihdr),
            (b"iCCP", b"profile"),
            (b"tEXt", b"GPS\0somewhere"),
            (b"eXIf", b"MM\0*lots"),
            (b"caBX", b"provenance"),
            (b"IDAT", b"pixels"),
            (b"tIME", b"0000000"),
            (b"IEND", b""),
        ]);
        let expected = png_with(&[(b"IHDR", ihdr), (b"iCCP", b"profile"), (b"IDAT", b"pixels"), (b"IEND", b"")]);
        assert_eq!(strip_png_metadata(&input, Orientation::Normal).expect("strips"), expected);
        let turned = strip_png_metadata(&input, Orientation::Rotate90).expect("strips");
        let with_orientation = png_with(&[
            (b"IHDR", ihdr),
            (b"iCCP", b"profile"),
            (b"eXIf", &orientation_tiff(Orientation::Rotate90)),
            (b"IDAT", b"pixels"),
            (b"IEND", b""),
        ]);
        assert_eq!(turned, with_orientation);
    }

    fn webp_with(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WEBP".to_vec();
        for (kind, data) in chunks {
            v.extend_from_slice(*kind);
            v.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
            v.extend_from_slice(data);
            if data.len() % 2 == 1 {
                v.push(0);
            }
        }
        let size = u32::try_from(v.len() - 8).expect("small").to_le_bytes();
        v[4..8].copy_from_slice(&size);
        v
    }

    #[test]
    fn webp_exif_and_xmp_go_and_the_flags_follow() {
        let vp8x = |flags: u8| [flags, 0, 0, 0, 9, 0, 0, 9, 0, 0];
        let input = webp_with(&[
            (b"VP8X", &vp8x(0x2C)),
            (b"ICCP", b"icc"),
            (b"VP8 ", b"frame"),
            (b"EXIF", b"MM\0*gps"),
            (b"XMP ", b"<x/>"),
        ]);
        let expected = webp_with(&[(b"VP8X", &vp8x(0x20)), (b"ICCP", b"icc"), (b"VP8 ", b"frame")]);
        assert_eq!(strip_webp_metadata(&input, Orientation::Normal).expect("strips"), expected);
        let turned = webp_with(&[
            (b"VP8X", &vp8x(0x28)),
            (b"ICCP", b"icc"),
            (b"VP8 ", b"frame"),
            (b"EXIF", &orientation_tiff(Orientation::Rotate90)),
        ]);
        assert_eq!(strip_webp_metadata(&input, Orientation::Rotate90).expect("strips"), turned);
        let simple = webp_with(&[(b"VP8L", b"pixels")]);
        assert_eq!(strip_webp_metadata(&simple, Orientation::Normal).expect("strips"), simple);
    }

    #[test]
    fn broken_png_and_webp_structures_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"\x89PNG\r\n\x1a\n",
            b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR",
            b"\x89PNG\r\n\x1a\n\xff\xff\xff\xffIHDR",
        ] {
            assert!(strip_png_metadata(bad, Orientation::Normal).is_err(), "{bad:?}");
        }
        for bad in [&b"RIFF"[..], b"RIFF\0\0\0\0WEBPVP8 \xff\xff\0\0ab", b"RIFF\0\0\0\0WEBPVP8"] {
            assert!(strip_webp_metadata(bad, Orientation::Normal).is_err(), "{bad:?}");
        }
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
