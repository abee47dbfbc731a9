//! The in-memory image between the decoder and the encoder, and its alpha handling.
//!
//! The alpha rule: a source whose alpha channel is fully opaque loses the channel (smaller
//! outputs). Otherwise colours are premultiplied for the resize (no dark fringes), then a
//! format that keeps alpha (PNG, WebP) gets them divided back, and JPEG, which cannot
//! carry alpha, gets the image composited on white.

use fast_image_resize::images::Image;
use fast_image_resize::{MulDiv, PixelType};

use super::error::ImagingError;
use super::image_type::ImageType;

/// The channels of a pixel, 8 bits each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    Gray,
    GrayAlpha,
    Rgb,
    Rgba,
}

impl Layout {
    pub fn channels(self) -> usize {
        match self {
            Layout::Gray => 1,
            Layout::GrayAlpha => 2,
            Layout::Rgb => 3,
            Layout::Rgba => 4,
        }
    }

    pub fn has_alpha(self) -> bool {
        matches!(self, Layout::GrayAlpha | Layout::Rgba)
    }

    pub fn without_alpha(self) -> Layout {
        match self {
            Layout::Gray | Layout::GrayAlpha => Layout::Gray,
            Layout::Rgb | Layout::Rgba => Layout::Rgb,
        }
    }

    pub fn pixel_type(self) -> PixelType {
        match self {
            Layout::Gray => PixelType::U8,
            Layout::GrayAlpha => PixelType::U8x2,
            Layout::Rgb => PixelType::U8x3,
            Layout::Rgba => PixelType::U8x4,
        }
    }
}

/// Row-major pixels, `layout.channels()` bytes each, no padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pixels {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub data: Vec<u8>,
}

impl Pixels {
    pub fn new(width: u32, height: u32, layout: Layout, data: Vec<u8>) -> Pixels {
        debug_assert_eq!(data.len(), width as usize * height as usize * layout.channels());
        Pixels { width, height, layout, data }
    }

    /// True when there is no alpha channel or every pixel is opaque.
    pub fn is_opaque(&self) -> bool {
        if !self.layout.has_alpha() {
            return true;
        }
        let channels = self.layout.channels();
        self.data.chunks_exact(channels).all(|px| px[channels - 1] == u8::MAX)
    }

    /// Removes the alpha channel, keeping the colour values as they are.
    pub fn drop_alpha(self) -> Pixels {
        if !self.layout.has_alpha() {
            return self;
        }
        let channels = self.layout.channels();
        let data = self.data.chunks_exact(channels).flat_map(|px| px[..channels - 1].iter().copied()).collect();
        Pixels::new(self.width, self.height, self.layout.without_alpha(), data)
    }

    /// Multiplies colours by alpha, in place, before resizing.
    pub fn premultiply(&mut self) -> Result<(), ImagingError> {
        self.mul_div(|muldiv, image| muldiv.multiply_alpha_inplace(image))
    }

    /// Divides premultiplied colours by alpha, in place, after resizing.
    pub fn unpremultiply(&mut self) -> Result<(), ImagingError> {
        self.mul_div(|muldiv, image| muldiv.divide_alpha_inplace(image))
    }

    fn mul_div(
        &mut self,
        op: impl FnOnce(&MulDiv, &mut Image<'_>) -> Result<(), fast_image_resize::ImageError>,
    ) -> Result<(), ImagingError> {
        if !self.layout.has_alpha() {
            return Ok(());
        }
        let internal = |reason: String| ImagingError::Encode { format: ImageType::Png, reason };
        let pixel_type = self.layout.pixel_type();
        let mut image = Image::from_slice_u8(self.width, self.height, &mut self.data, pixel_type)
            .map_err(|e| internal(e.to_string()))?;
        op(&MulDiv::default(), &mut image).map_err(|e| internal(e.to_string()))
    }

    /// Composites premultiplied pixels on white and drops alpha: for formats without it.
    pub fn composite_premultiplied_on_white(self) -> Pixels {
        if !self.layout.has_alpha() {
            return self;
        }
        let channels = self.layout.channels();
        let data = self
            .data
            .chunks_exact(channels)
            .flat_map(|px| {
                // Premultiplied "over": colour + white × (1 − alpha).
                let uncovered = u8::MAX - px[channels - 1];
                px[..channels - 1].iter().map(move |&c| c.saturating_add(uncovered))
            })
            .collect();
        Pixels::new(self.width, self.height, self.layout.without_alpha(), data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgba(pixels: &[[u8; 4]]) -> Pixels {
        let width = u32::try_from(pixels.len()).expect("small");
        Pixels::new(width, 1, Layout::Rgba, pixels.concat())
    }

    #[test]
    fn an_image_without_transparent_pixels_is_opaque() {
        assert!(rgba(&[[1, 2, 3, 255], [4, 5, 6, 255]]).is_opaque());
        assert!(!rgba(&[[1, 2, 3, 255], [4, 5, 6, 254]]).is_opaque());
        assert!(Pixels::new(1, 1, Layout::Rgb, vec![0, 0, 0]).is_opaque());
    }

    #[test]
    fn dropping_alpha_keeps_the_colours() {
        let out = rgba(&[[1, 2, 3, 255], [4, 5, 6, 255]]).drop_alpha();
        assert_eq!(out.layout, Layout::Rgb);
        assert_eq!(out.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn transparent_pixels_become_white_on_composite_not_black() {
        let mut image = rgba(&[[0, 0, 0, 0], [255, 0, 0, 255], [255, 0, 0, 128]]);
        image.premultiply().expect("premultiply");
        let out = image.composite_premultiplied_on_white();
        assert_eq!(out.layout, Layout::Rgb);
        assert_eq!(&out.data[..6], &[255, 255, 255, 255, 0, 0]);
        // Half-covered red on white is pink.
        assert_eq!(out.data[6], 255);
        assert!((126..=128).contains(&out.data[7]), "{:?}", out.data);
    }

    #[test]
    fn premultiplying_and_dividing_back_keeps_opaque_and_half_covered_colours() {
        let mut image = rgba(&[[200, 100, 50, 255], [200, 100, 50, 128]]);
        image.premultiply().expect("premultiply");
        assert_eq!(&image.data[..4], &[200, 100, 50, 255]);
        assert!(image.data[4] < 110);
        image.unpremultiply().expect("unpremultiply");
        for (got, want) in image.data[4..].iter().zip([200u8, 100, 50, 128]) {
            assert!(got.abs_diff(want) <= 1, "{:?}", image.data);
        }
    }
}
