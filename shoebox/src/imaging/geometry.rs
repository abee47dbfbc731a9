//! Sizes: fitting into a box, and the JPEG shrink-on-load factor.

/// The largest size with the aspect ratio of `width`×`height` that fits within
/// `max_width`×`max_height`, never larger than the source, never smaller than 1×1.
///
/// Rounds to the nearest pixel, so a 5760×3840 photo fits 320 wide as 320×213.
pub fn fit_within(width: u32, height: u32, max_width: u32, max_height: u32) -> (u32, u32) {
    let (max_width, max_height) = (max_width.max(1), max_height.max(1));
    if width <= max_width && height <= max_height {
        return (width.max(1), height.max(1));
    }
    let (w, h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    let (bw, bh) = (u64::from(max_width), u64::from(max_height));
    // Compare bw/w with bh/h without dividing: the smaller ratio decides.
    let (out_w, out_h) = if bw * h <= bh * w {
        (bw, rounded_div(h * bw, w).clamp(1, bh))
    } else {
        (rounded_div(w * bh, h).clamp(1, bw), bh)
    };
    // Both are at most the box, which came from u32s.
    (narrow(out_w), narrow(out_h))
}

/// The JPEG IDCT scale, in eighths (1, 2, 4 or 8), that decodes `width`×`height` to the
/// smallest size still at least `target_width`×`target_height`.
///
/// Decoding at exactly the target or above keeps the final Lanczos step a downscale (or a
/// no-op), so quality matches a full decode, at a fraction of the time and memory.
pub fn jpeg_scale_eighths(width: u32, height: u32, target_width: u32, target_height: u32) -> u32 {
    [1, 2, 4]
        .into_iter()
        .find(|&eighths| {
            scaled_by_eighths(width, eighths) >= target_width && scaled_by_eighths(height, eighths) >= target_height
        })
        .unwrap_or(8)
}

/// A JPEG dimension after IDCT scaling by `eighths`/8 (rounded up, as decoders do).
pub fn scaled_by_eighths(length: u32, eighths: u32) -> u32 {
    (u64::from(length) * u64::from(eighths)).div_ceil(8).try_into().unwrap_or(u32::MAX)
}

fn rounded_div(numerator: u64, denominator: u64) -> u64 {
    (2 * numerator + denominator) / (2 * denominator)
}

fn narrow(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_landscape_photo_fits_by_its_width() {
        assert_eq!(fit_within(5760, 3840, 320, 320), (320, 213));
        assert_eq!(fit_within(5760, 3840, 1280, 100_000), (1280, 853));
    }

    #[test]
    fn a_portrait_photo_fits_by_its_height() {
        assert_eq!(fit_within(2912, 4368, 320, 320), (213, 320));
    }

    #[test]
    fn an_image_already_inside_the_box_is_never_upscaled() {
        assert_eq!(fit_within(400, 301, 1280, 1280), (400, 301));
        assert_eq!(fit_within(1, 1, 320, 320), (1, 1));
        assert_eq!(fit_within(320, 200, 320, 200), (320, 200));
    }

    #[test]
    fn extreme_aspect_ratios_keep_at_least_one_pixel() {
        assert_eq!(fit_within(10_000, 1, 320, 320), (320, 1));
        assert_eq!(fit_within(1, 10_000, 320, 320), (1, 320));
        assert_eq!(fit_within(10_000, 3, 100, 100), (100, 1));
    }

    #[test]
    fn odd_and_tiny_boxes_are_respected() {
        assert_eq!(fit_within(600, 450, 1, 1), (1, 1));
        assert_eq!(fit_within(600, 450, 333, 77), (103, 77));
        assert_eq!(fit_within(600, 450, 0, 0), (1, 1));
        let (w, h) = fit_within(4032, 3024, 101, 99);
        assert!(w <= 101 && h <= 99 && (w == 101 || h == 99), "{w}x{h}");
    }

    #[test]
    fn the_jpeg_scale_is_the_smallest_that_still_covers_the_target() {
        // 5760x3840 to 320x213: 1/8 gives 720x480.
        assert_eq!(jpeg_scale_eighths(5760, 3840, 320, 213), 1);
        // to 1280x853: 1/4 gives 1440x960; 1/8 (720) would be too small.
        assert_eq!(jpeg_scale_eighths(5760, 3840, 1280, 853), 2);
        assert_eq!(jpeg_scale_eighths(5760, 3840, 2000, 1333), 4);
        assert_eq!(jpeg_scale_eighths(5760, 3840, 5760, 3840), 8);
        // Both axes must be covered, not just one.
        assert_eq!(jpeg_scale_eighths(800, 100, 100, 20), 2);
    }

    #[test]
    fn scaled_lengths_round_up() {
        assert_eq!(scaled_by_eighths(5760, 1), 720);
        assert_eq!(scaled_by_eighths(601, 1), 76);
        assert_eq!(scaled_by_eighths(1, 1), 1);
    }
}
