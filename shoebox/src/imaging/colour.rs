//! Colour management: everything we write is sRGB.
//!
//! The rule: an embedded ICC profile that describes the pixels (RGB profile on colour
//! pixels, grey profile on grey ones) is converted to sRGB with `moxcms`, and the output
//! carries no profile, which browsers read as sRGB. A profile `moxcms` cannot use is
//! copied into the output instead, so colours are never shifted silently. A profile that
//! does not match the pixels is ignored, as browsers ignore it. The conversion runs after
//! the resize, on the small image, where it costs little.

use std::sync::Arc;

use moxcms::{ColorProfile, DataColorSpace, Layout as CmsLayout};
use moxcms::{Transform8BitExecutor, TransformOptions};

use super::pixels::{Layout, Pixels};

/// What to do about the source's ICC profile.
pub(crate) struct ColourPlan {
    raw: Option<Vec<u8>>,
    profile: Option<ColorProfile>,
}

impl ColourPlan {
    pub fn new(icc_profile: Option<Vec<u8>>) -> ColourPlan {
        let profile = icc_profile.as_deref().and_then(|icc| ColorProfile::new_from_slice(icc).ok());
        ColourPlan { raw: icc_profile, profile }
    }

    /// Whether the source carries a profile at all (without one, pixels are left as they are).
    pub fn has_profile(&self) -> bool {
        self.raw.is_some()
    }

    /// Converts `pixels` to sRGB. Returns the pixels and, when the profile could not be
    /// applied but does describe them, the profile to embed in the output.
    pub fn to_srgb(&self, pixels: Pixels) -> (Pixels, Option<&[u8]>) {
        let Some(raw) = self.raw.as_deref() else {
            return (pixels, None);
        };
        let is_grey = !matches!(pixels.layout, Layout::Rgb | Layout::Rgba);
        let describes_pixels = match self.profile.as_ref().map(|p| p.color_space) {
            Some(DataColorSpace::Rgb) => !is_grey,
            Some(DataColorSpace::Gray) => is_grey,
            Some(_) => false,
            // Unparsed: trust the colour space field of the header.
            None => raw.get(16..20) == Some(if is_grey { b"GRAY" } else { b"RGB " }),
        };
        if !describes_pixels {
            return (pixels, None);
        }
        let (src_layout, dst_layout, out_layout) = match pixels.layout {
            Layout::Gray => (CmsLayout::Gray, CmsLayout::Rgb, Layout::Rgb),
            Layout::GrayAlpha => (CmsLayout::GrayAlpha, CmsLayout::Rgba, Layout::Rgba),
            Layout::Rgb => (CmsLayout::Rgb, CmsLayout::Rgb, Layout::Rgb),
            Layout::Rgba => (CmsLayout::Rgba, CmsLayout::Rgba, Layout::Rgba),
        };
        let transform = self.profile.as_ref().and_then(|profile| transform_to_srgb(profile, src_layout, dst_layout));
        let Some(transform) = transform else {
            return (pixels, Some(raw));
        };
        if src_layout == dst_layout {
            // Most photos say "sRGB" in a profile of their own; skip the work when the
            // transform turns out to change nothing.
            match is_identity(transform.as_ref(), pixels.layout) {
                Some(true) => return (pixels, None),
                Some(false) => {}
                None => return (pixels, Some(raw)),
            }
            let mut pixels = pixels;
            // moxcms only fails on slices that are not whole pixels, and rows always are.
            let _whole_rows = transform_in_place(transform.as_ref(), &mut pixels);
            return (pixels, None);
        }
        let count = pixels.width as usize * pixels.height as usize;
        let mut out = vec![0u8; count * out_layout.channels()];
        match transform.transform(&pixels.data, &mut out) {
            Ok(()) => (Pixels::new(pixels.width, pixels.height, out_layout, out), None),
            Err(_) => (pixels, Some(raw)),
        }
    }
}

/// Whether `transform` leaves every colour of a 17×17×17 grid unchanged; `None` when it
/// fails.
fn is_identity(transform: &Transform8BitExecutor, layout: Layout) -> Option<bool> {
    let steps = (0..=16u16).map(|i| u8::try_from((i * 16).min(255)).unwrap_or(u8::MAX));
    let channels = layout.channels();
    let mut grid = Vec::with_capacity(17 * 17 * 17 * channels);
    for r in steps.clone() {
        for g in steps.clone() {
            for b in steps.clone() {
                grid.extend_from_slice(&[r, g, b, u8::MAX][..channels]);
            }
        }
    }
    let mut out = vec![0u8; grid.len()];
    transform.transform(&grid, &mut out).ok()?;
    Some(grid == out)
}

/// Converts in slices of rows through a small buffer, so no second full-size image is
/// held.
fn transform_in_place(transform: &Transform8BitExecutor, pixels: &mut Pixels) -> Result<(), moxcms::CmsError> {
    const ROWS: usize = 32;
    let row_len = pixels.width as usize * pixels.layout.channels();
    let mut scratch = vec![0u8; row_len * ROWS];
    for rows in pixels.data.chunks_mut(row_len * ROWS) {
        let out = &mut scratch[..rows.len()];
        transform.transform(rows, out)?;
        rows.copy_from_slice(out);
    }
    Ok(())
}

fn transform_to_srgb(profile: &ColorProfile, src: CmsLayout, dst: CmsLayout) -> Option<Arc<Transform8BitExecutor>> {
    let srgb = ColorProfile::new_srgb();
    profile.create_transform_8bit(src, &srgb, dst, TransformOptions::default()).ok()
}

/// Converts CMYK (0 = no ink, as `jpeg-decoder` returns it) to sRGB: through the CMYK
/// profile when there is one that works, else with the naive formula.
pub(crate) fn cmyk_to_srgb(cmyk: &[u8], icc_profile: Option<&[u8]>) -> Vec<u8> {
    let pixels = cmyk.len() / 4;
    let profile = icc_profile
        .and_then(|icc| ColorProfile::new_from_slice(icc).ok())
        .filter(|p| p.color_space == DataColorSpace::Cmyk);
    if let Some(transform) = profile.as_ref().and_then(|p| transform_to_srgb(p, CmsLayout::Rgba, CmsLayout::Rgb)) {
        let mut out = vec![0u8; pixels * 3];
        if transform.transform(cmyk, &mut out).is_ok() {
            return out;
        }
    }
    cmyk.chunks_exact(4)
        .flat_map(|px| {
            let k = u16::from(u8::MAX - px[3]);
            let channel = move |c: u8| u8::try_from(u16::from(u8::MAX - c) * k / 255).unwrap_or(u8::MAX);
            [channel(px[0]), channel(px[1]), channel(px[2])]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_profile_leaves_pixels_alone() {
        let pixels = Pixels::new(1, 1, Layout::Rgb, vec![10, 20, 30]);
        let plan = ColourPlan::new(None);
        let (out, embed) = plan.to_srgb(pixels.clone());
        assert_eq!(out, pixels);
        assert!(embed.is_none());
    }

    #[test]
    fn an_srgb_profile_changes_almost_nothing() {
        let srgb = ColorProfile::new_srgb().encode().expect("encode");
        let pixels = Pixels::new(2, 1, Layout::Rgb, vec![10, 128, 250, 200, 100, 50]);
        let plan = ColourPlan::new(Some(srgb));
        let (out, embed) = plan.to_srgb(pixels.clone());
        assert!(embed.is_none());
        for (a, b) in out.data.iter().zip(&pixels.data) {
            assert!(a.abs_diff(*b) <= 1, "{:?}", out.data);
        }
    }

    #[test]
    fn an_unreadable_rgb_profile_is_carried_into_the_output() {
        let mut fake = vec![0u8; 128];
        fake[16..20].copy_from_slice(b"RGB ");
        let pixels = Pixels::new(1, 1, Layout::Rgb, vec![1, 2, 3]);
        let plan = ColourPlan::new(Some(fake.clone()));
        let (out, embed) = plan.to_srgb(pixels.clone());
        assert_eq!(out, pixels);
        assert_eq!(embed, Some(&fake[..]));
    }

    #[test]
    fn a_profile_for_other_pixels_is_ignored() {
        let srgb = ColorProfile::new_srgb().encode().expect("encode");
        let grey = Pixels::new(1, 1, Layout::Gray, vec![7]);
        let plan = ColourPlan::new(Some(srgb));
        let (out, embed) = plan.to_srgb(grey.clone());
        assert_eq!(out, grey);
        assert!(embed.is_none());
    }

    #[test]
    fn cmyk_without_a_profile_uses_the_naive_formula() {
        // No ink is white, full black ink is black, full cyan is cyan.
        let cmyk = [0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0, 0];
        assert_eq!(cmyk_to_srgb(&cmyk, None), vec![255, 255, 255, 0, 0, 0, 0, 255, 255]);
    }
}
