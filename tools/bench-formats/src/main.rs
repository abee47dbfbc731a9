//! JPEG, WebP and AVIF variants of the camera photos at equal perceived quality.
//!
//! For each photo and each box (320 and 1280 px), the reference is the "resized original":
//! the photo decoded and resized exactly as Shoebox does it (jpeg-decoder shrinking on load
//! to the smallest DCT scale that covers the largest box, then Lanczos3), before encoding.
//! The JPEG variant is that reference encoded as Shoebox encodes it (jpeg-encoder, quality
//! 80, 4:2:0, optimised Huffman tables). Every candidate is decoded again and scored with
//! SSIMULACRA2 against the reference.
//!
//! WebP (libwebp, method 4) and AVIF (ravif, one thread) are encoded at a grid of qualities.
//! For each box, the setting chosen is the lowest quality of the grid at which *every*
//! photo scores within 1 point of its JPEG (or higher): "equal SSIMULACRA2", one fixed
//! setting, as a server must use. At that setting it prints bytes, savings, the geometric
//! mean of the size ratios and encode times (median of `--runs`).
//!
//! Completion: the work `complete` does for a photo's variants in memory (decode, resize to
//! both boxes, encode), JPEG only against JPEG plus WebP at the chosen settings, median of
//! `--runs`, alternating. Without S3 writes or the database, which both would add to alike,
//! so the ratio printed is an upper bound of the real one.
//!
//! Prints figures and a verdict per box; asserts nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use ssimulacra2::{ColorPrimaries, Rgb, TransferCharacteristic, compute_frame_ssimulacra2};

const JPEG_QUALITY: u8 = 80;
const WEBP_GRID: &[u8] = &[50, 55, 60, 65, 70, 75, 80, 82, 84, 86, 88, 90, 92, 95];
const AVIF_GRID: &[u8] = &[50, 60, 70, 75, 80, 82, 84, 86, 88, 90];
/// ravif's speed (1 slowest, 10 fastest); 6 is the middle ground a background task can afford.
const AVIF_SPEED: u8 = 6;

/// libwebp's knobs that were tried (`--webp-method`, `--sharp-yuv`).
#[derive(Clone, Copy)]
struct WebpSettings {
    method: i32,
    sharp_yuv: bool,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Upright-agnostic RGB8 pixels (orientation is the same for reference and candidate).
#[derive(Clone)]
struct Pixels {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

struct Args {
    photos: Vec<PathBuf>,
    sizes: Vec<u32>,
    runs: usize,
    avif: bool,
    webp: WebpSettings,
}

fn parse_args() -> Result<Args> {
    let mut dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/photos/camera"));
    let mut sizes = vec![320, 1280];
    let mut runs = 5;
    let mut avif = true;
    let mut webp = WebpSettings { method: 4, sharp_yuv: false };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--photos" => dir = PathBuf::from(it.next().ok_or("--photos DIR")?),
            "--sizes" => {
                sizes = it
                    .next()
                    .ok_or("--sizes 320,1280")?
                    .split(',')
                    .map(str::parse)
                    .collect::<std::result::Result<_, _>>()?
            }
            "--runs" => runs = it.next().ok_or("--runs N")?.parse()?,
            "--no-avif" => avif = false,
            "--webp-method" => webp.method = it.next().ok_or("--webp-method 0..6")?.parse()?,
            "--sharp-yuv" => webp.sharp_yuv = true,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("jpg")))
        .collect();
    photos.sort();
    if photos.is_empty() {
        return Err(format!("no .jpg in {}", dir.display()).into());
    }
    Ok(Args { photos, sizes, runs: runs.max(1), avif, webp })
}

fn fit_within(w: u32, h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if w <= max_w && h <= max_h {
        return (w, h);
    }
    let scale = f64::min(f64::from(max_w) / f64::from(w), f64::from(max_h) / f64::from(h));
    (((f64::from(w) * scale).round() as u32).max(1), ((f64::from(h) * scale).round() as u32).max(1))
}

/// Decodes as Shoebox does: shrunk on load to the smallest DCT scale covering `cover`.
fn decode_scaled(bytes: &[u8], cover: u32) -> Result<Pixels> {
    let mut d = jpeg_decoder::Decoder::new(bytes);
    d.read_info()?;
    let info = d.info().ok_or("no JPEG header")?;
    let (w, h) = fit_within(u32::from(info.width), u32::from(info.height), cover, cover);
    d.scale(w as u16, h as u16)?;
    let data = d.decode()?;
    let info = d.info().ok_or("no JPEG header")?;
    if info.pixel_format != jpeg_decoder::PixelFormat::RGB24 {
        return Err(format!("{:?} JPEGs are not benchmarked", info.pixel_format).into());
    }
    Ok(Pixels { width: u32::from(info.width), height: u32::from(info.height), data })
}

fn resize(src: &Pixels, w: u32, h: u32) -> Result<Pixels> {
    let from = ImageRef::new(src.width, src.height, &src.data, PixelType::U8x3)?;
    let mut to = Image::new(w, h, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new().resize(&from, &mut to, &options)?;
    Ok(Pixels { width: w, height: h, data: to.into_vec() })
}

/// As the product encodes JPEG variants (shoebox/src/imaging/jpeg_encode.rs): libjpeg-turbo's
/// own settings, IJG quality, 4:2:0, optimised Huffman tables.
fn encode_jpeg(p: &Pixels) -> Result<Vec<u8>> {
    let encoded = std::panic::catch_unwind(|| {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_fastest_defaults();
        c.set_size(p.width as usize, p.height as usize);
        c.set_quality(f32::from(JPEG_QUALITY));
        c.set_optimize_coding(true);
        c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
        let mut started = c.start_compress(Vec::new())?;
        started.write_scanlines(&p.data)?;
        started.finish()
    });
    Ok(encoded.map_err(|_| "libjpeg failed")??)
}

fn decode_jpeg(bytes: &[u8]) -> Result<Pixels> {
    let mut d = jpeg_decoder::Decoder::new(bytes);
    let data = d.decode()?;
    let info = d.info().ok_or("no JPEG header")?;
    Ok(Pixels { width: u32::from(info.width), height: u32::from(info.height), data })
}

fn encode_webp(p: &Pixels, quality: u8, settings: WebpSettings) -> Result<Vec<u8>> {
    let mut config = webp::WebPConfig::new().map_err(|()| "WebPConfig")?;
    config.quality = f32::from(quality);
    config.method = settings.method;
    config.use_sharp_yuv = i32::from(settings.sharp_yuv);
    let memory = webp::Encoder::from_rgb(&p.data, p.width, p.height)
        .encode_advanced(&config)
        .map_err(|e| format!("webp: {e:?}"))?;
    Ok(memory.to_vec())
}

fn decode_webp(bytes: &[u8]) -> Result<Pixels> {
    let image = webp::Decoder::new(bytes).decode().ok_or("webp decode")?;
    let data: Vec<u8> = if image.is_alpha() {
        image.chunks_exact(4).flat_map(|px| [px[0], px[1], px[2]]).collect()
    } else {
        image.to_vec()
    };
    Ok(Pixels { width: image.width(), height: image.height(), data })
}

fn encode_avif(p: &Pixels, quality: u8) -> Result<Vec<u8>> {
    let px: Vec<ravif::RGB8> = p.data.chunks_exact(3).map(|c| ravif::RGB8::new(c[0], c[1], c[2])).collect();
    let done = ravif::Encoder::new()
        .with_quality(f32::from(quality))
        .with_speed(AVIF_SPEED)
        .with_num_threads(Some(1))
        .encode_rgb(ravif::Img::new(&px[..], p.width as usize, p.height as usize))?;
    Ok(done.avif_file)
}

/// ravif writes but does not read: libavif's `avifdec` (Debian's libavif-bin) decodes.
fn decode_avif(bytes: &[u8], scratch: &Path) -> Result<Pixels> {
    let (input, output) = (scratch.join("c.avif"), scratch.join("c.png"));
    std::fs::write(&input, bytes)?;
    let status = Command::new("avifdec").arg(&input).arg(&output).stdout(std::process::Stdio::null()).status()?;
    if !status.success() {
        return Err("avifdec failed".into());
    }
    let rgb = image::open(&output)?.to_rgb8();
    Ok(Pixels { width: rgb.width(), height: rgb.height(), data: rgb.into_raw() })
}

fn ssim2(reference: &Pixels, candidate: &Pixels) -> Result<f64> {
    if (reference.width, reference.height) != (candidate.width, candidate.height) {
        return Err("size mismatch".into());
    }
    let frame = |p: &Pixels| {
        let data: Vec<[f32; 3]> = p
            .data
            .chunks_exact(3)
            .map(|c| [f32::from(c[0]) / 255.0, f32::from(c[1]) / 255.0, f32::from(c[2]) / 255.0])
            .collect();
        Rgb::new(data, p.width as usize, p.height as usize, TransferCharacteristic::SRGB, ColorPrimaries::BT709)
    };
    Ok(compute_frame_ssimulacra2(frame(reference)?, frame(candidate)?)?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn timed<T>(runs: usize, mut f: impl FnMut() -> Result<T>) -> Result<(T, f64)> {
    let mut samples = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        last = Some(f()?);
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((last.ok_or("no run")?, median(samples)))
}

fn geomean(v: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = v.into_iter().fold((0.0, 0usize), |(s, n), x| (s + x.ln(), n + 1));
    (sum / n as f64).exp()
}

/// One candidate: its quality, bytes and score.
#[derive(Clone, Copy)]
struct Point {
    quality: u8,
    bytes: usize,
    score: f64,
}

/// One photo at one box.
struct Case {
    photo: String,
    size: u32,
    reference: Pixels,
    jpeg_bytes: usize,
    jpeg_score: f64,
    jpeg_ms: f64,
    webp: Vec<Point>,
    avif: Vec<Point>,
}

/// The lowest quality of the grid at which every photo is within 1 point of its JPEG.
fn choose(cases: &[&Case], points: impl Fn(&Case) -> &[Point]) -> Option<u8> {
    let grid: Vec<u8> = points(cases[0]).iter().map(|p| p.quality).collect();
    grid.into_iter()
        .find(|&q| cases.iter().all(|c| points(c).iter().any(|p| p.quality == q && p.score >= c.jpeg_score - 1.0)))
}

fn at(points: &[Point], q: u8) -> Point {
    *points.iter().find(|p| p.quality == q).expect("quality in the grid")
}

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let args = parse_args()?;
    let scratch = std::env::temp_dir().join(format!("bench-formats-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let largest = *args.sizes.iter().max().ok_or("no sizes")?;
    println!(
        "JPEG q{JPEG_QUALITY} (jpeg-encoder, 4:2:0, optimised Huffman) against WebP (libwebp, method {}{}){}",
        args.webp.method,
        if args.webp.sharp_yuv { ", sharp YUV" } else { "" },
        if args.avif { format!(" and AVIF (ravif, speed {AVIF_SPEED}, 1 thread)") } else { String::new() }
    );
    println!("scored with SSIMULACRA2 against the resized original; encode times are medians of {} runs", args.runs);

    let mut cases: Vec<Case> = Vec::new();
    for path in &args.photos {
        let bytes = std::fs::read(path)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_owned();
        let decoded = decode_scaled(&bytes, largest)?;
        for &size in &args.sizes {
            let (w, h) = fit_within(decoded.width, decoded.height, size, size);
            let reference = resize(&decoded, w, h)?;
            let (jpeg, jpeg_ms) = timed(args.runs, || encode_jpeg(&reference))?;
            let jpeg_score = ssim2(&reference, &decode_jpeg(&jpeg)?)?;
            let mut webp = Vec::new();
            for &q in WEBP_GRID {
                let out = encode_webp(&reference, q, args.webp)?;
                webp.push(Point { quality: q, bytes: out.len(), score: ssim2(&reference, &decode_webp(&out)?)? });
            }
            let mut avif = Vec::new();
            if args.avif {
                for &q in AVIF_GRID {
                    let out = encode_avif(&reference, q)?;
                    avif.push(Point {
                        quality: q,
                        bytes: out.len(),
                        score: ssim2(&reference, &decode_avif(&out, &scratch)?)?,
                    });
                }
            }
            eprintln!("{name} {size}: JPEG {} B, SSIMULACRA2 {jpeg_score:.1}", jpeg.len());
            cases.push(Case {
                photo: name.clone(),
                size,
                reference,
                jpeg_bytes: jpeg.len(),
                jpeg_score,
                jpeg_ms,
                webp,
                avif,
            });
        }
    }

    let mut webp_choice: Vec<(u32, Option<u8>)> = Vec::new();
    for &size in &args.sizes {
        let these: Vec<&Case> = cases.iter().filter(|c| c.size == size).collect();
        println!();
        println!("== {size} px box ==");
        println!("quality grid (every photo: JPEG score, then score and bytes at each quality):");
        for c in &these {
            let webp: Vec<String> =
                c.webp.iter().map(|p| format!("q{} {:.1}/{}", p.quality, p.score, p.bytes)).collect();
            println!("  {:<42} JPEG {:.1}/{}  WebP {}", c.photo, c.jpeg_score, c.jpeg_bytes, webp.join("  "));
            if args.avif {
                let avif: Vec<String> =
                    c.avif.iter().map(|p| format!("q{} {:.1}/{}", p.quality, p.score, p.bytes)).collect();
                println!("  {:<42} AVIF {}", "", avif.join("  "));
            }
        }
        let webp_q = choose(&these, |c| &c.webp);
        webp_choice.push((size, webp_q));
        let Some(wq) = webp_q else {
            println!("WebP: no quality of the grid is within 1 point of JPEG on every photo: keep JPEG only");
            continue;
        };
        let avif_q = if args.avif { choose(&these, |c| &c.avif) } else { None };
        println!(
            "chosen: WebP q{wq}{} (lowest of the grid within 1 point of JPEG's SSIMULACRA2 on every photo)",
            avif_q.map(|q| format!(", AVIF q{q}")).unwrap_or_default()
        );
        println!(
            "  {:<42} {:>9} {:>6} {:>9} {:>6} {:>7} {:>8} {:>8}{}",
            "photo",
            "JPEG B",
            "score",
            "WebP B",
            "score",
            "saved",
            "JPEG ms",
            "WebP ms",
            if avif_q.is_some() {
                format!(" {:>9} {:>6} {:>9} {:>8}", "AVIF B", "score", "vs WebP", "AVIF ms")
            } else {
                String::new()
            }
        );
        let (mut webp_ratios, mut avif_ratios, mut larger) = (Vec::new(), Vec::new(), 0);
        let (mut jpeg_ms_all, mut webp_ms_all, mut avif_ms_all) = (Vec::new(), Vec::new(), Vec::new());
        for c in &these {
            let w = at(&c.webp, wq);
            let (_, webp_ms) = timed(args.runs, || encode_webp(&c.reference, wq, args.webp))?;
            let ratio = w.bytes as f64 / c.jpeg_bytes as f64;
            webp_ratios.push(ratio);
            larger += usize::from(w.bytes > c.jpeg_bytes);
            jpeg_ms_all.push(c.jpeg_ms);
            webp_ms_all.push(webp_ms);
            let avif_cols = match avif_q {
                Some(aq) => {
                    let a = at(&c.avif, aq);
                    let (_, avif_ms) = timed(args.runs.min(3), || encode_avif(&c.reference, aq))?;
                    avif_ms_all.push(avif_ms);
                    let r = a.bytes as f64 / w.bytes as f64;
                    avif_ratios.push(r);
                    format!(" {:>9} {:>6.1} {:>8.0}% {:>8.1}", a.bytes, a.score, (r - 1.0) * 100.0, avif_ms)
                }
                None => String::new(),
            };
            println!(
                "  {:<42} {:>9} {:>6.1} {:>9} {:>6.1} {:>6.0}% {:>8.1} {:>8.1}{avif_cols}",
                c.photo,
                c.jpeg_bytes,
                c.jpeg_score,
                w.bytes,
                w.score,
                (1.0 - ratio) * 100.0,
                c.jpeg_ms,
                webp_ms
            );
        }
        // Per photo, the lowest quality within 1 point of that photo's JPEG: what a per-photo
        // search would give, an upper bound on what one fixed setting can save.
        let matched: Vec<f64> = these
            .iter()
            .filter_map(|c| {
                c.webp.iter().find(|p| p.score >= c.jpeg_score - 1.0).map(|p| p.bytes as f64 / c.jpeg_bytes as f64)
            })
            .collect();
        let matched_larger = matched.iter().filter(|r| **r > 1.0).count();
        println!(
            "WebP matched per photo (each its own lowest quality within 1 point): {:.0}% smaller on the geometric mean, {matched_larger} larger",
            (1.0 - geomean(matched.iter().copied())) * 100.0
        );
        let saved = 1.0 - geomean(webp_ratios.iter().copied());
        let met = saved >= 0.25 && larger == 0;
        println!(
            "WebP: geometric mean {:.0}% smaller than JPEG, {larger} photo(s) larger; encode {:.1} ms against JPEG's {:.1} ms (geometric means) \
             -> target (>= 25 % smaller, none larger) {}",
            saved * 100.0,
            geomean(webp_ms_all.iter().copied()),
            geomean(jpeg_ms_all.iter().copied()),
            if met { "met" } else { "MISSED: keep JPEG only at this size" }
        );
        if !avif_ratios.is_empty() {
            let further = 1.0 - geomean(avif_ratios.iter().copied());
            println!(
                "AVIF: geometric mean {:.0}% smaller than WebP at equal score; encode {:.1} ms (geometric mean) \
                 -> threshold (a further >= 15 %) {}",
                further * 100.0,
                geomean(avif_ms_all.iter().copied()),
                if further >= 0.15 { "reached" } else { "not reached" }
            );
        }
    }

    // Completion: the same in-memory work with and without the WebP variants.
    println!();
    println!("== completion (decode once, both boxes, encode) ==");
    let kept: Vec<(u32, u8)> = webp_choice.iter().filter_map(|&(s, q)| Some((s, q?))).collect();
    let mut ratios = Vec::new();
    for path in &args.photos {
        let bytes = std::fs::read(path)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let work = |with_webp: bool| -> Result<usize> {
            let decoded = decode_scaled(&bytes, largest)?;
            let mut total = 0;
            for &size in &args.sizes {
                let (w, h) = fit_within(decoded.width, decoded.height, size, size);
                let small = resize(&decoded, w, h)?;
                total += encode_jpeg(&small)?.len();
                if with_webp && let Some(&(_, q)) = kept.iter().find(|(s, _)| *s == size) {
                    total += encode_webp(&small, q, args.webp)?.len();
                }
            }
            Ok(total)
        };
        let (mut jpeg_only, mut both) = (Vec::new(), Vec::new());
        for i in 0..args.runs {
            for with_webp in if i % 2 == 0 { [false, true] } else { [true, false] } {
                let start = Instant::now();
                work(with_webp)?;
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                if with_webp { both.push(ms) } else { jpeg_only.push(ms) }
            }
        }
        let (j, b) = (median(jpeg_only), median(both));
        ratios.push(b / j);
        println!("  {name:<42} JPEG only {j:8.1} ms   JPEG + WebP {b:8.1} ms   {:.2}x", b / j);
    }
    let worst = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "completion with WebP: {:.2}x JPEG-only (geometric mean), worst {worst:.2}x -> target (<= 1.5x) {}",
        geomean(ratios.iter().copied()),
        if worst <= 1.5 { "met" } else { "MISSED" }
    );
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}
