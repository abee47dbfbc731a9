//! The one error type of the imaging engine.
//!
//! Every refusal has its own variant, a stable snake_case [`ImagingError::code`] for logs,
//! metrics and API responses, and a `Display` message written for the person who uploaded
//! the file: it says what is wrong and what to do about it.

use std::fmt;

use super::image_type::ImageType;

/// Why the engine could not read or convert an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImagingError {
    /// The upload has no bytes at all.
    #[error("The file is empty. Choose the photo again and upload it.")]
    Empty,

    /// Only from [`probe`](super::probe) on a prefix of the file: the header goes on past the
    /// bytes given. Fetch at least `needed` bytes (when known, else more) and probe again.
    #[error("The image header does not fit in the first {have} bytes of the file; read more of it.")]
    NeedMoreBytes {
        /// How many bytes were given.
        have: usize,
        /// The length of prefix that will let the probe go further, when the header says so.
        needed: Option<u64>,
    },

    /// The bytes are not an image format we know, whatever the name or declared type says.
    #[error("{}", not_an_image_message(*.found))]
    NotAnImage {
        /// What the content looks like instead.
        found: NotImage,
    },

    /// A recognised image format that this service cannot read (HEIC, AVIF).
    #[error("{}", unsupported_type_message(*.0))]
    UnsupportedType(ImageType),

    /// The width or height is above [`Limits::max_width`](super::Limits) or `max_height`.
    #[error(
        "This image is {width}×{height} pixels; the largest we accept is \
         {max_width}×{max_height}. Save a smaller copy and upload that."
    )]
    DimensionsTooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The width limit.
        max_width: u32,
        /// The height limit.
        max_height: u32,
    },

    /// Width × height is above [`Limits::max_pixels`](super::Limits).
    #[error(
        "This image is {width}×{height} pixels ({}); the most we accept is {}. \
         Save a smaller copy and upload that.",
        megapixels(u64::from(*.width) * u64::from(*.height)),
        megapixels(*.max_pixels)
    )]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The pixel limit.
        max_pixels: u64,
    },

    /// Decoding would need more memory than [`Limits::max_alloc_bytes`](super::Limits).
    #[error(
        "Reading this image would take about {} MiB of memory; the limit is {} MiB. \
         Save a smaller copy (or an 8-bit, non-progressive one) and upload that.",
        .needed_bytes.div_ceil(1 << 20),
        .max_bytes / (1 << 20)
    )]
    TooMuchMemory {
        /// The estimate, in bytes.
        needed_bytes: u64,
        /// The limit, in bytes.
        max_bytes: u64,
    },

    /// The file stops before the image data ends (an interrupted upload, a partial copy).
    #[error("This {0} file is incomplete: the upload may have been cut off. Upload it again.")]
    Truncated(ImageType),

    /// The image data is damaged. Damaged JPEGs are refused rather than rendered with grey
    /// or smeared areas, so what we store is what the person meant to upload.
    #[error(
        "This {image_type} file is damaged and cannot be read ({reason}). Open it in a photo \
         app, export a new copy and upload that."
    )]
    Corrupt {
        /// The format of the damaged file.
        image_type: ImageType,
        /// What the decoder reported, for support and logs.
        reason: String,
    },

    /// A valid file that uses a rare feature the decoders do not support (arithmetic-coded
    /// or lossless JPEG, 12-bit JPEG, ...).
    #[error(
        "This {image_type} file uses a feature we cannot read ({reason}). Export it as a \
         standard JPEG or PNG and upload that."
    )]
    UnsupportedEncoding {
        /// The format of the file.
        image_type: ImageType,
        /// What is not supported.
        reason: String,
    },

    /// The caller asked for something impossible (a zero-sized box, quality 0). A bug in the
    /// caller, not in the upload.
    #[error("invalid resize recipe: {0}")]
    InvalidRecipe(String),

    /// The encoder failed. A bug or resource problem on our side, not in the upload.
    #[error("could not encode the {format} rendition: {reason}")]
    Encode {
        /// The format being written.
        format: ImageType,
        /// What the encoder reported.
        reason: String,
    },
}

impl ImagingError {
    /// A stable snake_case identifier for the variant, for logs, metrics and API bodies.
    pub fn code(&self) -> &'static str {
        match self {
            ImagingError::Empty => "empty_file",
            ImagingError::NeedMoreBytes { .. } => "need_more_bytes",
            ImagingError::NotAnImage { .. } => "not_an_image",
            ImagingError::UnsupportedType(_) => "unsupported_type",
            ImagingError::DimensionsTooLarge { .. } => "dimensions_too_large",
            ImagingError::TooManyPixels { .. } => "too_many_pixels",
            ImagingError::TooMuchMemory { .. } => "too_much_memory",
            ImagingError::Truncated(_) => "truncated",
            ImagingError::Corrupt { .. } => "corrupt",
            ImagingError::UnsupportedEncoding { .. } => "unsupported_encoding",
            ImagingError::InvalidRecipe(_) => "invalid_recipe",
            ImagingError::Encode { .. } => "encode_failed",
        }
    }

    /// True when the upload itself is the problem (show the message to the user); false for
    /// [`ImagingError::NeedMoreBytes`] (the caller should read more) and for our own bugs
    /// ([`ImagingError::InvalidRecipe`], [`ImagingError::Encode`]).
    pub fn is_caused_by_input(&self) -> bool {
        !matches!(
            self,
            ImagingError::NeedMoreBytes { .. } | ImagingError::InvalidRecipe(_) | ImagingError::Encode { .. }
        )
    }
}

/// What a file that is not an image seems to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotImage {
    /// An SVG drawing (XML with an `<svg>` element). Refused: SVG can carry scripts.
    Svg,
    /// An HTML page.
    Html,
    /// Some other XML document.
    Xml,
    /// Plain text.
    Text,
    /// Binary data in a format we do not recognise (a video, a PDF, a RAW file, ...).
    Unknown,
}

impl fmt::Display for NotImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotImage::Svg => "an SVG drawing",
            NotImage::Html => "a web page (HTML)",
            NotImage::Xml => "an XML document",
            NotImage::Text => "a text file",
            NotImage::Unknown => "in a format we do not recognise",
        })
    }
}

fn not_an_image_message(found: NotImage) -> String {
    let what = match found {
        NotImage::Unknown => "This file is not an image we recognise".to_owned(),
        other => format!("This file is {other}, not a photo"),
    };
    format!("{what}. Upload a JPEG, PNG, WebP or GIF image.")
}

fn unsupported_type_message(image_type: ImageType) -> String {
    match image_type {
        ImageType::Heic => "HEIC photos are not supported yet. On an iPhone, choose Settings > \
                           Camera > Formats > Most Compatible, or export the photo as JPEG, \
                           and upload that."
            .to_owned(),
        ImageType::Avif => "AVIF images are not supported yet. Export the picture as JPEG or \
                           PNG and upload that."
            .to_owned(),
        other => format!("{other} images are not supported. Upload a JPEG, PNG, WebP or GIF."),
    }
}

fn megapixels(pixels: u64) -> String {
    // One decimal is enough for people; the exact numbers are in the variant's fields.
    let tenths = (pixels + 50_000) / 100_000;
    format!("{}.{} megapixels", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn one_of_each() -> Vec<ImagingError> {
        vec![
            ImagingError::Empty,
            ImagingError::NeedMoreBytes { have: 10, needed: None },
            ImagingError::NotAnImage { found: NotImage::Svg },
            ImagingError::UnsupportedType(ImageType::Heic),
            ImagingError::DimensionsTooLarge { width: 1, height: 1, max_width: 1, max_height: 1 },
            ImagingError::TooManyPixels { width: 16000, height: 16000, max_pixels: 50_000_000 },
            ImagingError::TooMuchMemory { needed_bytes: 1, max_bytes: 1 },
            ImagingError::Truncated(ImageType::Jpeg),
            ImagingError::Corrupt { image_type: ImageType::Jpeg, reason: String::new() },
            ImagingError::UnsupportedEncoding { image_type: ImageType::Jpeg, reason: String::new() },
            ImagingError::InvalidRecipe(String::new()),
            ImagingError::Encode { format: ImageType::Png, reason: String::new() },
        ]
    }

    #[test]
    fn every_variant_has_a_distinct_snake_case_code() {
        let errors = one_of_each();
        let codes: HashSet<_> = errors.iter().map(ImagingError::code).collect();
        assert_eq!(codes.len(), errors.len());
        for code in codes {
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
        }
    }

    #[test]
    fn messages_tell_the_user_what_to_do() {
        let heic = ImagingError::UnsupportedType(ImageType::Heic).to_string();
        assert!(heic.contains("Most Compatible"), "{heic}");
        let pixels = ImagingError::TooManyPixels { width: 16000, height: 16000, max_pixels: 50_000_000 }.to_string();
        assert!(pixels.contains("256.0 megapixels"), "{pixels}");
        assert!(pixels.contains("50.0 megapixels"), "{pixels}");
        let svg = ImagingError::NotAnImage { found: NotImage::Svg }.to_string();
        assert!(svg.contains("SVG") && svg.contains("JPEG"), "{svg}");
    }
}
