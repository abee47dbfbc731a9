//! Identifying the format from the file's first bytes.
//!
//! The format is always taken from the content, never from a file name or a declared
//! `Content-Type`: a `.jpg` that holds an SVG is an SVG, and is refused.

use super::error::{ImagingError, NotImage};
use super::image_type::ImageType;

const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const GIF87_MAGIC: &[u8] = b"GIF87a";
const GIF89_MAGIC: &[u8] = b"GIF89a";

/// AVIF brands in an ISO-BMFF `ftyp` box.
const AVIF_BRANDS: [&[u8; 4]; 2] = [b"avif", b"avis"];
/// HEVC-in-HEIF brands.
const HEIC_BRANDS: [&[u8; 4]; 8] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"];
/// Generic HEIF brands: HEIC unless an AVIF brand is also listed.
const HEIF_BRANDS: [&[u8; 4]; 2] = [b"mif1", b"msf1"];

/// How many bytes the markup heuristics look at.
const TEXT_WINDOW: usize = 4096;

/// Identifies the image format from magic bytes.
///
/// Returns [`ImagingError::Empty`] for no bytes, [`ImagingError::NeedMoreBytes`] when the
/// prefix is too short to tell, and [`ImagingError::NotAnImage`] (saying whether it looks
/// like SVG, HTML, XML or text) for anything else. HEIC and AVIF are identified here; they
/// are refused later, by [`probe`](super::probe) and the resize functions.
pub fn sniff(bytes: &[u8]) -> Result<ImageType, ImagingError> {
    if bytes.is_empty() {
        return Err(ImagingError::Empty);
    }
    if bytes.starts_with(JPEG_MAGIC) {
        return Ok(ImageType::Jpeg);
    }
    if bytes.starts_with(PNG_MAGIC) {
        return Ok(ImageType::Png);
    }
    if bytes.starts_with(GIF87_MAGIC) || bytes.starts_with(GIF89_MAGIC) {
        return Ok(ImageType::Gif);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Ok(ImageType::Webp);
    }
    if bytes.len() >= 8 && &bytes[4..8] == b"ftyp" {
        if let Some(found) = sniff_ftyp(bytes)? {
            return Ok(found);
        }
        return Err(ImagingError::NotAnImage { found: NotImage::Unknown });
    }
    if could_still_be_an_image(bytes) {
        return Err(ImagingError::NeedMoreBytes { have: bytes.len(), needed: Some(12) });
    }
    Err(ImagingError::NotAnImage { found: classify_non_image(bytes) })
}

/// Like [`sniff`], for bytes known to be the whole file: too few bytes to tell is not an
/// image.
pub(crate) fn sniff_whole_file(bytes: &[u8]) -> Result<ImageType, ImagingError> {
    match sniff(bytes) {
        Err(ImagingError::NeedMoreBytes { .. }) => Err(ImagingError::NotAnImage { found: classify_non_image(bytes) }),
        other => other,
    }
}

/// True when `bytes` is a proper prefix of some signature we recognise.
fn could_still_be_an_image(bytes: &[u8]) -> bool {
    let is_prefix_of = |magic: &[u8]| bytes.len() < magic.len() && magic.starts_with(bytes);
    // RIFF....WEBP and ....ftyp have a wildcard length field in the middle.
    let riff = bytes.len() < 12
        && bytes.iter().zip(b"RIFF????WEBP").enumerate().all(|(i, (b, m))| (4..8).contains(&i) || b == m);
    // An `ftyp` box is small, so its 32-bit length starts with zero bytes; without that
    // condition any one to three bytes of text would look like the start of a HEIF.
    let ftyp =
        bytes.len() < 8 && bytes.iter().zip(b"\0\0??ftyp").enumerate().all(|(i, (b, m))| (2..4).contains(&i) || b == m);
    [JPEG_MAGIC, PNG_MAGIC, GIF87_MAGIC, GIF89_MAGIC].into_iter().any(is_prefix_of) || riff || ftyp
}

/// Reads the brands of an ISO-BMFF `ftyp` box (HEIF, AVIF, but also MP4 and QuickTime).
fn sniff_ftyp(bytes: &[u8]) -> Result<Option<ImageType>, ImagingError> {
    if bytes.len() < 12 {
        return Err(ImagingError::NeedMoreBytes { have: bytes.len(), needed: Some(12) });
    }
    let box_len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let major = &bytes[8..12];
    if AVIF_BRANDS.iter().any(|b| &b[..] == major) {
        return Ok(Some(ImageType::Avif));
    }
    if HEIC_BRANDS.iter().any(|b| &b[..] == major) {
        return Ok(Some(ImageType::Heic));
    }
    // Compatible brands follow the 4-byte minor version.
    let end = box_len.clamp(16, 1024);
    if bytes.len() < end {
        return Err(ImagingError::NeedMoreBytes { have: bytes.len(), needed: Some(end as u64) });
    }
    let brands: Vec<&[u8]> = bytes[16..end].chunks_exact(4).collect();
    let listed = |set: &[&[u8; 4]]| brands.iter().any(|b| set.iter().any(|s| &s[..] == *b));
    if listed(&AVIF_BRANDS) {
        Ok(Some(ImageType::Avif))
    } else if listed(&HEIC_BRANDS) || listed(&HEIF_BRANDS) || HEIF_BRANDS.iter().any(|b| &b[..] == major) {
        Ok(Some(ImageType::Heic))
    } else {
        Ok(None)
    }
}

/// Says what a non-image looks like, so the message can name it.
fn classify_non_image(bytes: &[u8]) -> NotImage {
    let window = &bytes[..bytes.len().min(TEXT_WINDOW)];
    let window = window.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(window);
    let start = window.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(window.len());
    let trimmed = &window[start..];
    if trimmed.first() == Some(&b'<') {
        let lower = String::from_utf8_lossy(trimmed).to_ascii_lowercase();
        if lower.contains("<svg") {
            return NotImage::Svg;
        }
        let html_tags = ["<!doctype html", "<html", "<head", "<body", "<script", "<img", "<iframe"];
        if html_tags.iter().any(|tag| lower.contains(tag)) {
            return NotImage::Html;
        }
        return NotImage::Xml;
    }
    let looks_like_text =
        std::str::from_utf8(window).is_ok_and(|text| text.chars().all(|c| !c.is_control() || c.is_ascii_whitespace()));
    if looks_like_text { NotImage::Text } else { NotImage::Unknown }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let len = 16 + 4 * compatible.len();
        let mut out = u32::try_from(len).expect("small").to_be_bytes().to_vec();
        out.extend_from_slice(b"ftyp");
        out.extend_from_slice(major);
        out.extend_from_slice(&[0, 0, 0, 0]);
        for brand in compatible {
            out.extend_from_slice(*brand);
        }
        out
    }

    #[test]
    fn magic_bytes_decide_the_format() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest").ok(), Some(ImageType::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").ok(), Some(ImageType::Png));
        assert_eq!(sniff(b"GIF89a\x01\x00\x01\x00").ok(), Some(ImageType::Gif));
        assert_eq!(sniff(b"RIFF\x10\x00\x00\x00WEBPVP8 ").ok(), Some(ImageType::Webp));
    }

    #[test]
    fn heif_brands_tell_heic_from_avif() {
        assert_eq!(sniff(&ftyp(b"heic", &[b"mif1"])).ok(), Some(ImageType::Heic));
        assert_eq!(sniff(&ftyp(b"mif1", &[b"heic"])).ok(), Some(ImageType::Heic));
        assert_eq!(sniff(&ftyp(b"mif1", &[b"mif1"])).ok(), Some(ImageType::Heic));
        assert_eq!(sniff(&ftyp(b"avif", &[b"mif1"])).ok(), Some(ImageType::Avif));
        assert_eq!(sniff(&ftyp(b"mif1", &[b"avif", b"miaf"])).ok(), Some(ImageType::Avif));
        assert_eq!(sniff(&ftyp(b"avis", &[])).ok(), Some(ImageType::Avif));
    }

    #[test]
    fn a_video_in_an_iso_container_is_not_an_image() {
        let err = sniff(&ftyp(b"isom", &[b"mp41"])).expect_err("mp4");
        assert!(matches!(err, ImagingError::NotAnImage { found: NotImage::Unknown }));
    }

    #[test]
    fn a_prefix_of_a_signature_asks_for_more_bytes() {
        for prefix in [&b"\xFF"[..], b"\x89PN", b"GIF8", b"RIFF\0\0", b"\0\0\0\x18ft"] {
            assert!(matches!(sniff(prefix), Err(ImagingError::NeedMoreBytes { .. })), "{prefix:?}");
        }
        // But a few bytes of text are text.
        assert!(matches!(sniff(b"hi\n"), Err(ImagingError::NotAnImage { .. })));
    }

    #[test]
    fn a_whole_file_too_short_to_identify_is_not_an_image() {
        assert!(matches!(sniff_whole_file(b"\xFF"), Err(ImagingError::NotAnImage { found: NotImage::Unknown })));
        assert!(matches!(sniff_whole_file(b"GIF"), Err(ImagingError::NotAnImage { found: NotImage::Text })));
        assert_eq!(sniff_whole_file(b"\xFF\xD8\xFF").ok(), Some(ImageType::Jpeg));
    }

    #[test]
    fn markup_and_text_are_named() {
        let svg = b"\xEF\xBB\xBF  <?xml version=\"1.0\"?>\n<svg xmlns=\"...\"><script/></svg>";
        let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>";
        let found = |bytes: &[u8]| match sniff(bytes) {
            Err(ImagingError::NotAnImage { found }) => Some(found),
            _ => None,
        };
        assert_eq!(found(svg), Some(NotImage::Svg));
        assert_eq!(found(html), Some(NotImage::Html));
        assert_eq!(found(b"<note><to>you</to></note>"), Some(NotImage::Xml));
        assert_eq!(found(b"just some words\n"), Some(NotImage::Text));
        assert_eq!(found(b"%PDF-1.7\n\x00\x01\x02\xff"), Some(NotImage::Unknown));
    }

    #[test]
    fn no_bytes_is_empty() {
        assert!(matches!(sniff(b""), Err(ImagingError::Empty)));
    }
}
