//! `shoebox resize`: one image through the same engine, limits and errors as the server.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};

use shoebox::imaging::{self, OutputFormat, Recipe};

/// Resize one image file, as the server does for an upload.
#[derive(clap::Args, Debug)]
pub struct ResizeArgs {
    /// The image to read (JPEG, PNG, WebP or GIF; the type is read from its content).
    pub input: PathBuf,
    /// The box to fit within, as WIDTHxHEIGHT (e.g. 1280x1280). Never upscales.
    #[arg(long)]
    pub fit: String,
    /// Where to write the variant; the extension picks the format (jpg/jpeg, png, webp, avif).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// JPEG (or AVIF) quality, 1 to 100 [default: 82].
    #[arg(long)]
    pub quality: Option<u8>,
    /// Write a progressive JPEG.
    #[arg(long)]
    pub progressive: bool,
}

/// Reads `input`, makes the variant, writes `output`, and prints one summary line to
/// stderr.
pub fn run(args: &ResizeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (max_width, max_height) = parse_fit(&args.fit)?;
    let format = output_format(&args.output)?;
    let mut recipe = Recipe::fit(max_width, max_height).with_format(format).with_progressive(args.progressive);
    if let Some(quality) = args.quality {
        if !(1..=100).contains(&quality) {
            bail!("--quality must be between 1 and 100, not {quality}");
        }
        recipe = recipe.with_quality(quality);
    }
    let input = std::fs::read(&args.input).with_context(|| format!("could not read {}", args.input.display()))?;
    let variant =
        imaging::render(&input, &recipe).with_context(|| format!("could not resize {}", args.input.display()))?;
    std::fs::write(&args.output, &variant.bytes)
        .with_context(|| format!("could not write {}", args.output.display()))?;
    let source = variant.source;
    eprintln!(
        "{} ({} {}x{}, {} KiB) -> {} ({} {}x{}, {} KiB) in {} ms",
        args.input.display(),
        source.image_type,
        source.width,
        source.height,
        input.len().div_ceil(1024),
        args.output.display(),
        variant.image_type,
        variant.width,
        variant.height,
        variant.bytes.len().div_ceil(1024),
        started.elapsed().as_millis(),
    );
    Ok(())
}

/// Parses `WIDTHxHEIGHT` (`x` or `X`), both at least 1.
fn parse_fit(fit: &str) -> anyhow::Result<(u32, u32)> {
    let usage = || anyhow!("--fit must look like 1280x1280 (WIDTHxHEIGHT), not {fit:?}");
    let (width, height) = fit.split_once(['x', 'X']).ok_or_else(usage)?;
    let width: u32 = width.trim().parse().map_err(|_| usage())?;
    let height: u32 = height.trim().parse().map_err(|_| usage())?;
    if width == 0 || height == 0 {
        bail!("--fit needs a width and height of at least 1, not {fit:?}");
    }
    Ok((width, height))
}

/// The output format from the output file's extension.
fn output_format(path: &Path) -> anyhow::Result<OutputFormat> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    OutputFormat::from_extension(extension).ok_or_else(|| {
        anyhow!("cannot tell the output format from {}: use a .jpg, .jpeg, .png, .webp or .avif name", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fit_is_width_x_height() {
        assert_eq!(parse_fit("1280x720").expect("valid"), (1280, 720));
        assert_eq!(parse_fit("320X100000").expect("valid"), (320, 100_000));
    }

    #[test]
    fn a_malformed_or_empty_fit_is_refused() {
        for bad in ["1280", "x720", "0x10", "10x0", "-1x5", "axb", ""] {
            assert!(parse_fit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_output_extension_picks_the_format() {
        assert_eq!(output_format(Path::new("a/b.JPEG")).expect("jpeg"), OutputFormat::Jpeg);
        assert_eq!(output_format(Path::new("b.webp")).expect("webp"), OutputFormat::Webp);
        assert!(output_format(Path::new("b.gif")).is_err());
        assert!(output_format(Path::new("noextension")).is_err());
    }
}
