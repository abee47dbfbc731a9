//! Decode limits, checked from the header before any large allocation.

use super::error::ImagingError;
use super::probe::ImageInfo;

/// What the engine agrees to decode. Checked against the header (dimensions, pixels) and
/// against an estimate of the decoder's peak memory, before the pixels are allocated.
///
/// The defaults suit a 512 MB dyno running two images at a time: a 50 MP photo decodes
/// within 256 MiB even as 8-bit RGBA, and a JPEG usually needs far less because it is
/// shrunk while decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most pixels (width × height) in the source image.
    pub max_pixels: u64,
    /// Most bytes the decode and resize of one image may hold at once (estimated).
    pub max_alloc_bytes: u64,
    /// Widest source image.
    pub max_width: u32,
    /// Tallest source image.
    pub max_height: u32,
}

impl Limits {
    /// 50 megapixels.
    pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;
    /// 256 MiB.
    pub const DEFAULT_MAX_ALLOC_BYTES: u64 = 256 << 20;
    /// 20 000 pixels a side: room for phone panoramas, while the pixel limit still holds.
    pub const DEFAULT_MAX_SIDE: u32 = 20_000;

    /// Refuses a header whose width, height or pixel count is above the limits.
    ///
    /// Call it after [`probe`](super::probe) to refuse a file before fetching the rest; the
    /// resize functions call it too.
    pub fn check(&self, info: &ImageInfo) -> Result<(), ImagingError> {
        self.check_dimensions(info.stored_width, info.stored_height)
    }

    pub(crate) fn check_dimensions(&self, width: u32, height: u32) -> Result<(), ImagingError> {
        if width > self.max_width || height > self.max_height {
            return Err(ImagingError::DimensionsTooLarge {
                width,
                height,
                max_width: self.max_width,
                max_height: self.max_height,
            });
        }
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(ImagingError::TooManyPixels { width, height, max_pixels: self.max_pixels });
        }
        Ok(())
    }

    pub(crate) fn check_memory(&self, needed_bytes: u64) -> Result<(), ImagingError> {
        if needed_bytes > self.max_alloc_bytes {
            return Err(ImagingError::TooMuchMemory { needed_bytes, max_bytes: self.max_alloc_bytes });
        }
        Ok(())
    }

    /// The same limits for the `image` crate's decoders, as a second line of defence.
    pub(crate) fn for_image_crate(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_alloc_bytes);
        limits
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pixels: Self::DEFAULT_MAX_PIXELS,
            max_alloc_bytes: Self::DEFAULT_MAX_ALLOC_BYTES,
            max_width: Self::DEFAULT_MAX_SIDE,
            max_height: Self::DEFAULT_MAX_SIDE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_is_checked_before_the_pixel_count() {
        let limits = Limits::default();
        assert!(matches!(limits.check_dimensions(65_500, 65_500), Err(ImagingError::DimensionsTooLarge { .. })));
        assert!(matches!(limits.check_dimensions(16_000, 16_000), Err(ImagingError::TooManyPixels { .. })));
        assert!(limits.check_dimensions(10_000, 1).is_ok());
        assert!(limits.check_dimensions(8_660, 5_773).is_ok());
    }

    #[test]
    fn memory_above_the_limit_is_refused() {
        let limits = Limits { max_alloc_bytes: 100, ..Limits::default() };
        assert!(limits.check_memory(100).is_ok());
        assert!(matches!(
            limits.check_memory(101),
            Err(ImagingError::TooMuchMemory { needed_bytes: 101, max_bytes: 100 })
        ));
    }
}
