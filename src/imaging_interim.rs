//! Interim header probe, replaced by the imaging engine (issue 3) when it lands.

use std::io::Cursor;

use serde::Serialize;

/// The image formats Shoebox recognises from their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageType {
    Jpeg,
    Png,
    Webp,
    Gif,
    Heic,
    Avif,
}

impl ImageType {
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Heic => "image/heic",
            Self::Avif => "image/avif",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Heic => "heic",
            Self::Avif => "avif",
        }
    }
    pub fn from_mime(mime: &str) -> Option<Self> {
        Some(match mime.trim().to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Self::Jpeg,
            "image/png" => Self::Png,
            "image/webp" => Self::Webp,
            "image/gif" => Self::Gif,
            "image/heic" | "image/heif" => Self::Heic,
            "image/avif" => Self::Avif,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub image_type: ImageType,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImagingError {
    #[error("the header is not complete in the bytes given")]
    NeedMoreBytes,
    #[error("This file is not an image we recognise (JPEG, PNG, WebP or GIF).")]
    NotAnImage,
    #[error("This image's header is damaged.")]
    Corrupt,
}

pub fn sniff(bytes: &[u8]) -> Option<ImageType> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageType::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageType::Png)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageType::Webp)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageType::Gif)
    } else {
        None
    }
}

pub fn probe(bytes: &[u8]) -> Result<Probe, ImagingError> {
    let image_type = sniff(bytes).ok_or(ImagingError::NotAnImage)?;
    let format = match image_type {
        ImageType::Jpeg => image::ImageFormat::Jpeg,
        ImageType::Png => image::ImageFormat::Png,
        ImageType::Webp => image::ImageFormat::WebP,
        ImageType::Gif => image::ImageFormat::Gif,
        _ => return Err(ImagingError::NotAnImage),
    };
    let (width, height) =
        image::ImageReader::with_format(Cursor::new(bytes), format).into_dimensions().map_err(|e| match e {
            image::ImageError::IoError(_) => ImagingError::NeedMoreBytes,
            _ => ImagingError::Corrupt,
        })?;
    Ok(Probe { image_type, width, height })
}
