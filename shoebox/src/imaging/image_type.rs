//! The image formats the engine knows about, and the formats it can write.

use std::fmt;

/// An image format, as identified from the file's own magic bytes.
///
/// HEIC and AVIF are recognised so that they can be refused with a helpful message; they
/// cannot be decoded (see [`ImageType::is_decodable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageType {
    /// JPEG (JFIF or Exif).
    Jpeg,
    /// PNG (an APNG gives its default image).
    Png,
    /// WebP, lossy or lossless (an animation gives its first frame).
    Webp,
    /// GIF (an animation gives its first frame).
    Gif,
    /// HEIC / HEIF (recognised, refused).
    Heic,
    /// AVIF (recognised, refused).
    Avif,
}

impl ImageType {
    /// Every variant, for tables and tests.
    pub const ALL: [ImageType; 6] =
        [ImageType::Jpeg, ImageType::Png, ImageType::Webp, ImageType::Gif, ImageType::Heic, ImageType::Avif];

    /// The canonical MIME type, e.g. `image/jpeg`.
    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Webp => "image/webp",
            ImageType::Gif => "image/gif",
            ImageType::Heic => "image/heic",
            ImageType::Avif => "image/avif",
        }
    }

    /// The usual file extension, without the dot, e.g. `jpg`.
    pub fn extension(self) -> &'static str {
        match self {
            ImageType::Jpeg => "jpg",
            ImageType::Png => "png",
            ImageType::Webp => "webp",
            ImageType::Gif => "gif",
            ImageType::Heic => "heic",
            ImageType::Avif => "avif",
        }
    }

    /// A short human name, e.g. `JPEG`.
    pub fn name(self) -> &'static str {
        match self {
            ImageType::Jpeg => "JPEG",
            ImageType::Png => "PNG",
            ImageType::Webp => "WebP",
            ImageType::Gif => "GIF",
            ImageType::Heic => "HEIC",
            ImageType::Avif => "AVIF",
        }
    }

    /// Parses a declared MIME type (a `Content-Type` value or a form field).
    ///
    /// Case and parameters are ignored (`Image/JPEG; charset=x` is JPEG), and the common
    /// aliases browsers and phones send are accepted (`image/jpg`, `image/pjpeg`,
    /// `image/heif`, the `-sequence` forms). Anything else is `None`.
    pub fn from_mime(mime: &str) -> Option<ImageType> {
        let essence = mime.split(';').next().unwrap_or_default().trim();
        let essence = essence.to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(ImageType::Jpeg),
            "image/png" | "image/apng" => Some(ImageType::Png),
            "image/webp" => Some(ImageType::Webp),
            "image/gif" => Some(ImageType::Gif),
            "image/heic" | "image/heif" | "image/heic-sequence" | "image/heif-sequence" => Some(ImageType::Heic),
            "image/avif" | "image/avif-sequence" => Some(ImageType::Avif),
            _ => None,
        }
    }

    /// Parses a file extension (without the dot, any case): `jpg`, `jpeg`, `png`, ...
    pub fn from_extension(extension: &str) -> Option<ImageType> {
        match extension.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" | "jpe" | "jfif" => Some(ImageType::Jpeg),
            "png" | "apng" => Some(ImageType::Png),
            "webp" => Some(ImageType::Webp),
            "gif" => Some(ImageType::Gif),
            "heic" | "heif" | "hif" => Some(ImageType::Heic),
            "avif" | "avifs" => Some(ImageType::Avif),
            _ => None,
        }
    }

    /// Whether the engine can decode this format (false for HEIC and AVIF).
    pub fn is_decodable(self) -> bool {
        matches!(self, ImageType::Jpeg | ImageType::Png | ImageType::Webp | ImageType::Gif)
    }
}

impl fmt::Display for ImageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format the engine can write a rendition in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// Baseline JPEG, 4:2:0 below quality 90, optimised Huffman tables. Cannot carry alpha:
    /// a transparent source is composited on white.
    Jpeg,
    /// PNG, 8 bits per channel, keeps alpha.
    Png,
    /// WebP, keeps alpha. Lossless: the pure-Rust encoder has no lossy mode, so quality is
    /// ignored and files are larger than a lossy WebP would be.
    Webp,
    /// Lossy WebP (libwebp) at the recipe's quality, keeps alpha: the variants' second format,
    /// for browsers that accept it (see `scripts/bench-formats` for what it saves).
    LossyWebp,
    /// AVIF (ravif, pure-Rust rav1e) at the recipe's quality, keeps alpha: the variants' third
    /// format. Seconds per photo at 1280 px, so made only in the background.
    Avif,
}

impl OutputFormat {
    /// The [`ImageType`] of the bytes this format produces.
    pub fn image_type(self) -> ImageType {
        match self {
            OutputFormat::Jpeg => ImageType::Jpeg,
            OutputFormat::Png => ImageType::Png,
            OutputFormat::Webp | OutputFormat::LossyWebp => ImageType::Webp,
            OutputFormat::Avif => ImageType::Avif,
        }
    }

    /// Whether the format can store an alpha channel.
    pub fn supports_alpha(self) -> bool {
        !matches!(self, OutputFormat::Jpeg)
    }

    /// The output format for a file extension (`jpg`, `jpeg`, `png`, `webp`, `avif`; any case).
    pub fn from_extension(extension: &str) -> Option<OutputFormat> {
        match ImageType::from_extension(extension)? {
            ImageType::Jpeg => Some(OutputFormat::Jpeg),
            ImageType::Png => Some(OutputFormat::Png),
            ImageType::Webp => Some(OutputFormat::Webp),
            ImageType::Avif => Some(OutputFormat::Avif),
            ImageType::Gif | ImageType::Heic => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_mime_and_extension() {
        for t in ImageType::ALL {
            assert_eq!(ImageType::from_mime(t.mime()), Some(t));
            assert_eq!(ImageType::from_extension(t.extension()), Some(t));
        }
    }

    #[test]
    fn declared_mime_types_are_parsed_leniently() {
        assert_eq!(ImageType::from_mime("IMAGE/JPG"), Some(ImageType::Jpeg));
        assert_eq!(ImageType::from_mime(" image/png ; charset=binary"), Some(ImageType::Png));
        assert_eq!(ImageType::from_mime("image/heif"), Some(ImageType::Heic));
        assert_eq!(ImageType::from_mime("image/svg+xml"), None);
        assert_eq!(ImageType::from_mime("text/html"), None);
        assert_eq!(ImageType::from_mime(""), None);
    }

    #[test]
    fn only_jpeg_png_webp_and_avif_can_be_written() {
        assert_eq!(OutputFormat::from_extension("JPEG"), Some(OutputFormat::Jpeg));
        assert_eq!(OutputFormat::from_extension("webp"), Some(OutputFormat::Webp));
        assert_eq!(OutputFormat::from_extension("gif"), None);
        assert_eq!(OutputFormat::from_extension("avif"), Some(OutputFormat::Avif));
        assert_eq!(OutputFormat::from_extension("heic"), None);
        assert!(!OutputFormat::Jpeg.supports_alpha());
        assert!(OutputFormat::Png.supports_alpha());
    }

    #[test]
    fn heic_and_avif_are_known_but_not_decodable() {
        assert!(ImageType::Jpeg.is_decodable());
        assert!(!ImageType::Heic.is_decodable());
        assert!(!ImageType::Avif.is_decodable());
    }
}
