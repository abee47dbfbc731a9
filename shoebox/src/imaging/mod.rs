//! The imaging engine: bytes of an upload in, bytes of a resized rendition out.
//!
//! Pure and synchronous: no file or network I/O, no async. Callers run it on the blocking
//! pool; [`render`] takes one of a small number of process-wide permits (see
//! [`set_max_concurrent_images`]) so that memory stays bounded.
//!
//! What happens to an upload, in order:
//!
//! 1. [`sniff`]: the format comes from the magic bytes, never from a name or a declared
//!    type. HEIC and AVIF are recognised and refused with advice.
//! 2. [`probe`]: the header gives the size and EXIF orientation without decoding; it also
//!    works on a prefix of the file. [`Limits`] are checked here, before any allocation.
//! 3. Decode: JPEG is shrunk while decoding (IDCT scaling to 1/2, 1/4 or 1/8, the smallest
//!    that still covers the target), a band of rows at a time, each band resized as it
//!    comes (`jpeg_bands`, `band_resize`), so the decoded image is never held whole. A JPEG
//!    that path declines (CMYK, damaged) and other formats decode whole (`decode`; JPEG on
//!    two threads when it has restart markers, `jpeg_strips`); animations give their first
//!    frame.
//! 4. Resize (`resize`): Lanczos3 with SIMD, on premultiplied alpha.
//! 5. Colour (`colour`): an ICC profile is converted to sRGB.
//! 6. Orientation (`orient`): applied to the small image, so the output is upright.
//! 7. Encode (`encode`): JPEG (quality 82 by default, libjpeg-turbo in `jpeg_encode`; a
//!    JPEG rendition of an upright JPEG is written row by row during the decode, and its
//!    Huffman tables are optimised from the finished file, `jpeg_huffman`), PNG, or
//!    WebP (lossless, or lossy
//!    through libwebp), with no metadata.
//!
//! Alpha: kept by PNG and WebP; composited on white for JPEG (see `pixels`).

mod band_resize;
mod colour;
mod decode;
mod encode;
mod error;
mod geometry;
mod image_type;
mod jpeg_bands;
mod jpeg_encode;
mod jpeg_huffman;
mod jpeg_strips;
mod limits;
mod orient;
mod permits;
mod pixels;
mod placeholder;
mod probe;
mod resize;
mod sniff;
mod strip;

pub use error::{ImagingError, NotImage};
pub use geometry::fit_within;
pub use image_type::{ImageType, OutputFormat};
pub use limits::Limits;
pub use orient::Orientation;
pub use permits::{DEFAULT_MAX_CONCURRENT_IMAGES, max_concurrent_images, set_max_concurrent_images};
pub use placeholder::{PLACEHOLDER_EDGE, placeholder_hash, placeholder_png};
pub use probe::{ImageInfo, probe};
pub use sniff::sniff;
pub use strip::{strip_jpeg_metadata, strip_metadata, strip_png_metadata, strip_webp_metadata};

use colour::ColourPlan;
use pixels::Pixels;
use probe::Detail;

/// What rendition to make: fit within a box (never upscaling), in a format and quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recipe {
    /// The widest the rendition may be, in displayed (upright) pixels. At least 1.
    pub max_width: u32,
    /// The tallest the rendition may be, in displayed (upright) pixels. At least 1.
    pub max_height: u32,
    /// The format to write.
    pub format: OutputFormat,
    /// JPEG quality, 1 to 100 (ignored by the lossless PNG and WebP encoders).
    pub quality: u8,
    /// Write a progressive JPEG (ignored by PNG and WebP). Off by default: this encoder's
    /// progressive files are larger than its baseline ones.
    pub progressive: bool,
}

impl Recipe {
    /// The JPEG quality used unless a recipe says otherwise.
    pub const DEFAULT_QUALITY: u8 = 82;

    /// A JPEG at [`Recipe::DEFAULT_QUALITY`] that fits within `max_width`×`max_height`.
    pub fn fit(max_width: u32, max_height: u32) -> Recipe {
        Recipe { max_width, max_height, format: OutputFormat::Jpeg, quality: Self::DEFAULT_QUALITY, progressive: false }
    }

    /// The same recipe in another format.
    pub fn with_format(self, format: OutputFormat) -> Recipe {
        Recipe { format, ..self }
    }

    /// The same recipe at another quality.
    pub fn with_quality(self, quality: u8) -> Recipe {
        Recipe { quality, ..self }
    }

    /// The same recipe, progressive or not.
    pub fn with_progressive(self, progressive: bool) -> Recipe {
        Recipe { progressive, ..self }
    }

    fn validate(&self) -> Result<(), ImagingError> {
        if self.max_width == 0 || self.max_height == 0 {
            return Err(ImagingError::InvalidRecipe(format!(
                "the box {}x{} is empty",
                self.max_width, self.max_height
            )));
        }
        if !(1..=100).contains(&self.quality) {
            return Err(ImagingError::InvalidRecipe(format!("quality {} is not between 1 and 100", self.quality)));
        }
        Ok(())
    }

    /// The displayed size of the rendition of a `width`×`height` (displayed) source.
    fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        let side = encode::max_side(self.format);
        fit_within(width, height, self.max_width.min(side), self.max_height.min(side))
    }
}

/// An encoded rendition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendition {
    /// The encoded file.
    pub bytes: Vec<u8>,
    /// Its width in pixels (upright).
    pub width: u32,
    /// Its height in pixels (upright).
    pub height: u32,
    /// Its format (that of the recipe).
    pub image_type: ImageType,
    /// What the probe found in the source.
    pub source: ImageInfo,
}

/// Makes one rendition of an uploaded image, with the default [`Limits`].
///
/// See [`render_all`].
pub fn render(bytes: &[u8], recipe: &Recipe) -> Result<Rendition, ImagingError> {
    render_with_limits(bytes, recipe, &Limits::default())
}

/// Makes one rendition of an uploaded image within `limits`.
///
/// See [`render_all`].
pub fn render_with_limits(bytes: &[u8], recipe: &Recipe, limits: &Limits) -> Result<Rendition, ImagingError> {
    let mut renditions = render_all(bytes, std::slice::from_ref(recipe), limits)?;
    renditions.pop().ok_or_else(|| ImagingError::InvalidRecipe("no rendition was produced".to_owned()))
}

/// Makes several renditions of one uploaded image, decoding it once (at the scale the
/// largest rendition needs).
///
/// `bytes` must be the whole file. The type is sniffed from the bytes, the header checked
/// against `limits` before anything large is allocated, and the decode holds one of the
/// process-wide permits (blocking until one is free). Each rendition is upright, in sRGB,
/// and carries no metadata. Errors are the same as the server's and the CLI's: see
/// [`ImagingError`].
pub fn render_all(bytes: &[u8], recipes: &[Recipe], limits: &Limits) -> Result<Vec<Rendition>, ImagingError> {
    render_all_then(bytes, recipes, limits, || ())
}

/// As [`render_all`], calling `decoded` as soon as the whole file has decoded, before the
/// renditions that remain are made: a caller that only needs to know the file is sound can
/// go on while they are made. (A JPEG rendition of a JPEG stored upright is written during
/// the decode, its rows encoded as they come.) Not called when the file fails to decode,
/// nor without recipes.
pub fn render_all_then(
    bytes: &[u8],
    recipes: &[Recipe],
    limits: &Limits,
    decoded: impl FnOnce(),
) -> Result<Vec<Rendition>, ImagingError> {
    decode_and_render(bytes, recipes, limits, false, |_| decoded())
}

/// As [`render_all_then`], also making the image's placeholder (its [`placeholder_hash`]) from the
/// same decode and handing it to `decoded` before the renditions are made. The placeholder is
/// `None` when it could not be made, which never refuses the image.
pub fn render_all_with_placeholder(
    bytes: &[u8],
    recipes: &[Recipe],
    limits: &Limits,
    decoded: impl FnOnce(Option<Vec<u8>>),
) -> Result<Vec<Rendition>, ImagingError> {
    decode_and_render(bytes, recipes, limits, true, decoded)
}

/// Decode the whole file within `limits` (every byte of it: only decoding finds a damaged
/// file) and make its placeholder from that decode: what verification does for a kind
/// without variants. The placeholder is `None` when it could not be made.
pub fn placeholder(bytes: &[u8], limits: &Limits) -> Result<Option<Vec<u8>>, ImagingError> {
    let mut made = None;
    decode_and_render(bytes, &[], limits, true, |p| made = p)?;
    Ok(made)
}

fn decode_and_render(
    bytes: &[u8],
    recipes: &[Recipe],
    limits: &Limits,
    with_placeholder: bool,
    decoded: impl FnOnce(Option<Vec<u8>>),
) -> Result<Vec<Rendition>, ImagingError> {
    for recipe in recipes {
        recipe.validate()?;
    }
    let header = probe::read_header(bytes).map_err(|err| match err {
        // The whole file is here, so a header that runs past it is a cut-off file.
        ImagingError::NeedMoreBytes { .. } => {
            sniff::sniff_whole_file(bytes).map_or_else(|e| e, ImagingError::Truncated)
        }
        other => other,
    })?;
    let info = header.info;
    limits.check(&info)?;
    if recipes.is_empty() && !with_placeholder {
        return Ok(Vec::new());
    }

    // Sizes in stored orientation: that is what is decoded and resized.
    let sizes: Vec<(u32, u32)> = recipes
        .iter()
        .map(|r| {
            let (w, h) = r.output_size(info.width, info.height);
            info.orientation.display_size(w, h)
        })
        .collect();
    let placeholder_size = with_placeholder.then(|| placeholder::stored_size(&info));

    let _permit = permits::acquire();
    let decode_sizes: Vec<(u32, u32)> = sizes.iter().copied().chain(placeholder_size).collect();
    if let Detail::Jpeg(jpeg) = &header.detail {
        let colour = ColourPlan::new(jpeg_bands::icc_profile(bytes, jpeg.scan_data_at));
        let wants = banded_wants(recipes, &sizes, placeholder_size, info.orientation);
        let stored = (info.stored_width, info.stored_height);
        // A panic in the resizer or the encoder (hostile input the fuzzers missed) is a file
        // this path declines, as a libjpeg error is: the whole-image path gives the verdict.
        let banded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            jpeg_bands::decode_resized(bytes, jpeg, stored, &wants, &colour, limits)
        }));
        if let Ok(Some(made)) = banded {
            return render_banded(made, &wants, &colour, recipes, &sizes, placeholder_size, info, decoded);
        }
    }
    let image = decode::decode(bytes, &header, &decode_sizes, limits)?;
    let colour = ColourPlan::new(image.icc_profile);
    let mut source = image.pixels;
    if source.is_opaque() {
        source = source.drop_alpha();
    } else {
        source.premultiply()?;
    }
    let made = placeholder_size.and_then(|size| match placeholder::from_decoded(&source, size, &colour, info) {
        Ok(hash) => Some(hash),
        Err(e) => {
            tracing::warn!(error = %e, "no placeholder for this image");
            None
        }
    });
    decoded(made);

    let jobs: Vec<(&Recipe, (u32, u32))> = recipes.iter().zip(sizes).collect();
    let Some((&(last, (last_w, last_h)), others)) = jobs.split_last() else {
        return Ok(Vec::new());
    };
    let mut variants = Vec::with_capacity(jobs.len());
    // Renditions of the same size in a row (a variant and its WebP twin) share one resize.
    let mut shared: Option<Pixels> = None;
    for (i, &(recipe, (w, h))) in others.iter().enumerate() {
        let small = match shared.take() {
            Some(p) if (p.width, p.height) == (w, h) => p,
            _ => resize::resize(&source, w, h)?,
        };
        let next = jobs.get(i + 1).map(|&(_, size)| size);
        if next == Some((small.width, small.height)) {
            shared = Some(small.clone());
        }
        variants.push(finish(small, recipe, &colour, info)?);
    }
    // The last rendition takes the decoded image, so it is freed before encoding.
    let small = match shared {
        Some(p) => {
            drop(source);
            p
        }
        None => resize::resize_owned(source, last_w, last_h)?,
    };
    variants.push(finish(small, last, &colour, info)?);
    Ok(variants)
}

/// What a banded decode makes: each size once. A size only one JPEG rendition uses, of a
/// photo stored upright, is encoded as its rows come (its pixels are never held whole); a
/// photo to be turned upright, which needs its last row before its first, has its rows placed
/// upright as they come; the others (the placeholder's, a size shared with a WebP twin) are
/// kept as pixels.
fn banded_wants(
    recipes: &[Recipe],
    sizes: &[(u32, u32)],
    placeholder_size: Option<(u32, u32)>,
    orientation: Orientation,
) -> Vec<jpeg_bands::Want> {
    let mut unique: Vec<(u32, u32)> = sizes.iter().copied().chain(placeholder_size).collect();
    unique.sort_unstable();
    unique.dedup();
    unique
        .into_iter()
        .map(|size| {
            let mut users = recipes.iter().zip(sizes).filter(|&(_, s)| *s == size).map(|(r, _)| r);
            let only_user = match (users.next(), users.next()) {
                (Some(&recipe), None) => Some(recipe),
                _ => None,
            };
            if placeholder_size == Some(size) {
                // The placeholder is made from stored pixels, and turns them itself.
                jpeg_bands::Want::Pixels(size)
            } else if orientation != Orientation::Normal {
                jpeg_bands::Want::Upright(size, orientation)
            } else if let Some(recipe) = only_user.filter(|r| r.format == OutputFormat::Jpeg) {
                jpeg_bands::Want::Jpeg(size, recipe)
            } else {
                jpeg_bands::Want::Pixels(size)
            }
        })
        .collect()
}

/// The placeholder and the renditions from a banded decode: `made[i]` is what `wants[i]`
/// asked for.
#[allow(clippy::too_many_arguments)]
fn render_banded(
    made: Vec<jpeg_bands::Made>,
    wants: &[jpeg_bands::Want],
    colour: &ColourPlan,
    recipes: &[Recipe],
    sizes: &[(u32, u32)],
    placeholder_size: Option<(u32, u32)>,
    info: ImageInfo,
    decoded: impl FnOnce(Option<Vec<u8>>),
) -> Result<Vec<Rendition>, ImagingError> {
    let mut made: Vec<Option<jpeg_bands::Made>> = made.into_iter().map(Some).collect();
    let index = |size: (u32, u32)| {
        wants
            .iter()
            .position(|w| w.size() == size)
            .ok_or_else(|| ImagingError::InvalidRecipe(format!("nothing was made at {}x{}", size.0, size.1)))
    };
    let placeholder = match placeholder_size {
        Some(size) => match &made[index(size)?] {
            Some(jpeg_bands::Made::Pixels(small)) => match placeholder::from_decoded(small, size, colour, info) {
                Ok(hash) => Some(hash),
                Err(e) => {
                    tracing::warn!(error = %e, "no placeholder for this image");
                    None
                }
            },
            _ => None,
        },
        None => None,
    };
    decoded(placeholder);
    let mut variants = Vec::with_capacity(recipes.len());
    for (n, (recipe, &size)) in recipes.iter().zip(sizes).enumerate() {
        let i = index(size)?;
        // The last rendition of a size takes what was made; earlier ones (a WebP twin) copy it.
        let used_again = sizes[n + 1..].contains(&size);
        let rendition = match (used_again, made[i].take()) {
            (_, Some(jpeg_bands::Made::Jpeg(bytes))) => {
                Rendition { bytes, width: size.0, height: size.1, image_type: ImageType::Jpeg, source: info }
            }
            (true, Some(jpeg_bands::Made::Pixels(small))) => {
                made[i] = Some(jpeg_bands::Made::Pixels(small.clone()));
                finish(small, recipe, colour, info)?
            }
            (false, Some(jpeg_bands::Made::Pixels(small))) => finish(small, recipe, colour, info)?,
            (true, Some(jpeg_bands::Made::Upright(upright))) => {
                made[i] = Some(jpeg_bands::Made::Upright(upright.clone()));
                finish_as(upright, recipe, colour, info, Orientation::Normal)?
            }
            (false, Some(jpeg_bands::Made::Upright(upright))) => {
                finish_as(upright, recipe, colour, info, Orientation::Normal)?
            }
            (_, None) => return Err(ImagingError::InvalidRecipe("a banded rendition was used up".to_owned())),
        };
        variants.push(rendition);
    }
    Ok(variants)
}

/// Alpha, colour, orientation and encoding of one resized image.
fn finish(small: Pixels, recipe: &Recipe, colour: &ColourPlan, source: ImageInfo) -> Result<Rendition, ImagingError> {
    finish_as(small, recipe, colour, source, source.orientation)
}

/// As [`finish`], for pixels still to be turned by `orientation` (`Normal` when they already
/// are upright).
fn finish_as(
    small: Pixels,
    recipe: &Recipe,
    colour: &ColourPlan,
    source: ImageInfo,
    orientation: Orientation,
) -> Result<Rendition, ImagingError> {
    let small = finish_alpha(small, recipe.format)?;
    let (small, embed_profile) = colour.to_srgb(small);
    let channels = small.layout.channels();
    let (data, width, height) = orient::apply(orientation, small.data, small.width, small.height, channels);
    let upright = Pixels::new(width, height, small.layout, data);
    let bytes = encode::encode(&upright, recipe, embed_profile)?;
    Ok(Rendition { bytes, width, height, image_type: recipe.format.image_type(), source })
}

/// Undoes the premultiplication, or composites on white where the format has no alpha.
fn finish_alpha(mut pixels: Pixels, format: OutputFormat) -> Result<Pixels, ImagingError> {
    if format.supports_alpha() {
        pixels.unpremultiply()?;
        Ok(pixels)
    } else {
        Ok(pixels.composite_premultiplied_on_white())
    }
}
