//! Prototype for issue 17, item 4: a JPEG variant made in strips.
//!
//!     strip-proto IN --width W -o OUT.jpg [--quality 80] [--threads 1|2] [--band ROWS]
//!                 [--any-scale] [--whole] [--encoder jpeg-encoder|mozjpeg] [--from-file]
//!                 [--no-optimize]
//!     strip-proto IN --width W --decode-only mozjpeg|jpeg-decoder|zune
//!     strip-proto A.jpg --compare B.jpg        (PSNR, mean and largest sample difference)
//!
//! libjpeg-turbo (through the `mozjpeg` crate) decodes at the DCT scale that shoebox's
//! `jpeg_scale_eighths` picks (1/8, 1/4, 1/2 or 1; `--any-scale` allows any n/8), a band of
//! rows at a time (128 by default). With `--threads 2` (the default) the decoder runs on its
//! own thread and sends bands over a bounded channel; the main thread resizes each band
//! across with fast_image_resize's Lanczos3 and streams its rows through the vertical pass
//! (`vertical.rs`), which keeps only the rows still needed. Output rows are either placed
//! upright (EXIF orientation) in the output image, which jpeg-encoder then encodes whole
//! with shoebox's settings (4:2:0, optimised Huffman tables), or, with `--encoder mozjpeg`
//! and no rotation, written straight into libjpeg's encoder as they are made.
//! `--from-file` lets libjpeg read the file as it decodes instead of reading it whole first.
//!
//! `--whole` decodes the whole scaled image first and resizes it in one go (today's shape
//! of the pipeline, with this decoder), for comparison; an output named .ppm is the pixels
//! before encoding. No ICC handling, no CMYK, and libjpeg's warnings (a truncated or
//! damaged file) are silenced by the crate: a measurement tool, not the product.

mod orient;
mod vertical;

use std::process::ExitCode;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use vertical::VerticalPass;

struct Args {
    input: String,
    width: u32,
    output: Option<String>,
    quality: u8,
    threads: usize,
    band_rows: usize,
    any_scale: bool,
    whole: bool,
    mozjpeg_encoder: bool,
    decode_only: Option<String>,
    compare: Option<String>,
    from_file: bool,
    no_optimize: bool,
    verbose: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        input: String::new(),
        width: 0,
        output: None,
        quality: 80,
        threads: 2,
        band_rows: 0,
        any_scale: false,
        whole: false,
        mozjpeg_encoder: false,
        decode_only: None,
        compare: None,
        from_file: false,
        no_optimize: false,
        verbose: std::env::var_os("STRIP_PROTO_VERBOSE").is_some(),
    };
    let mut it = std::env::args().skip(1);
    let number = |v: Option<String>, name: &str| -> Result<u64, String> {
        v.ok_or(format!("{name} needs a value"))?.parse().map_err(|e| format!("{name}: {e}"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--width" => args.width = u32::try_from(number(it.next(), "--width")?).map_err(|e| e.to_string())?,
            "-o" => args.output = it.next(),
            "--quality" => args.quality = u8::try_from(number(it.next(), "--quality")?).map_err(|e| e.to_string())?,
            "--threads" => args.threads = usize::try_from(number(it.next(), "--threads")?).map_err(|e| e.to_string())?,
            "--band" => args.band_rows = usize::try_from(number(it.next(), "--band")?).map_err(|e| e.to_string())?,
            "--any-scale" => args.any_scale = true,
            "--whole" => args.whole = true,
            "--from-file" => args.from_file = true,
            "--no-optimize" => args.no_optimize = true,
            "--encoder" => match it.next().as_deref() {
                Some("mozjpeg") => args.mozjpeg_encoder = true,
                Some("jpeg-encoder") => args.mozjpeg_encoder = false,
                other => return Err(format!("--encoder: unknown {other:?}")),
            },
            "--decode-only" => args.decode_only = it.next(),
            "--compare" => args.compare = it.next(),
            "-v" => args.verbose = true,
            _ if args.input.is_empty() && !a.starts_with('-') => args.input = a,
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    if args.compare.is_some() && !args.input.is_empty() {
        return Ok(args);
    }
    if args.input.is_empty() || args.width == 0 {
        return Err("usage: strip-proto IN --width W -o OUT.jpg [--quality Q]".to_owned());
    }
    if args.from_file && (args.whole || args.decode_only.is_some()) {
        return Err("--from-file is for the streamed pipeline only".to_owned());
    }
    if args.output.is_none() && args.decode_only.is_none() {
        return Err("-o OUT is required".to_owned());
    }
    Ok(args)
}

fn main() -> ExitCode {
    match parse_args().and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strip-proto: {e}");
            ExitCode::FAILURE
        }
    }
}

/// shoebox's `fit_within` for a box `max_w` wide and unbounded in height.
fn fit_width(w: usize, h: usize, max_w: usize) -> (usize, usize) {
    if w <= max_w {
        return (w, h);
    }
    let out_h = ((2 * h * max_w + w) / (2 * w)).max(1);
    (max_w, out_h)
}

fn scaled(len: usize, eighths: usize) -> usize {
    (len * eighths).div_ceil(8)
}

/// shoebox's `jpeg_scale_eighths` (1, 2, 4 or 8), or with `any` the smallest n/8.
fn scale_eighths(w: usize, h: usize, tw: usize, th: usize, any: bool) -> usize {
    let candidates: &[usize] = if any { &[1, 2, 3, 4, 5, 6, 7] } else { &[1, 2, 4] };
    candidates.iter().copied().find(|&e| scaled(w, e) >= tw && scaled(h, e) >= th).unwrap_or(8)
}

struct Plan {
    orientation: u16,
    /// Target in stored orientation.
    tw: usize,
    th: usize,
    eighths: usize,
}

fn plan(bytes: &[u8], args: &Args) -> Result<Plan, String> {
    let orientation = orient::jpeg_orientation(bytes);
    let header = mozjpeg::Decompress::new_mem(bytes).map_err(|e| format!("header: {e}"))?;
    let (w, h) = header.size();
    let swap = orient::swaps_sides(orientation);
    let (dw, dh) = if swap { (h, w) } else { (w, h) };
    let (tdw, tdh) = fit_width(dw, dh, args.width as usize);
    let (tw, th) = if swap { (tdh, tdw) } else { (tdw, tdh) };
    let eighths = scale_eighths(w, h, tw, th, args.any_scale);
    Ok(Plan { orientation, tw, th, eighths })
}

fn pixel_type(channels: usize) -> PixelType {
    if channels == 1 { PixelType::U8 } else { PixelType::U8x3 }
}

/// What the decoder thread sends: the scaled size and channels first, then bands.
enum Msg {
    Start { width: usize, height: usize, channels: usize },
    Band(Vec<u8>),
}

/// Where the JPEG comes from: bytes in memory, or the file read as the decoder goes (so
/// the compressed file is not in memory whole either).
#[derive(Clone, Copy)]
enum Source<'a> {
    Memory(&'a [u8]),
    File(&'a str),
}

/// Decodes the source at `eighths`/8, `band_rows` rows at a time, into `send`. Buffers
/// come back through `spare` to be reused.
fn decode_bands(
    source: Source<'_>,
    eighths: usize,
    band_rows: usize,
    spare: Option<&Receiver<Vec<u8>>>,
    send: impl FnMut(Msg) -> bool,
) -> Result<(), String> {
    match source {
        Source::Memory(bytes) => {
            let d = mozjpeg::Decompress::new_mem(bytes).map_err(|e| e.to_string())?;
            decode_bands_from(d, eighths, band_rows, spare, send)
        }
        Source::File(path) => {
            let d = mozjpeg::Decompress::new_path(path).map_err(|e| e.to_string())?;
            decode_bands_from(d, eighths, band_rows, spare, send)
        }
    }
}

fn decode_bands_from<R>(
    mut d: mozjpeg::Decompress<R>,
    eighths: usize,
    band_rows: usize,
    spare: Option<&Receiver<Vec<u8>>>,
    mut send: impl FnMut(Msg) -> bool,
) -> Result<(), String> {
    d.scale(u8::try_from(eighths).unwrap_or(8));
    let (mut started, channels) = match d.image().map_err(|e| e.to_string())? {
        mozjpeg::decompress::Format::RGB(s) => (s, 3),
        mozjpeg::decompress::Format::Gray(s) => (s, 1),
        mozjpeg::decompress::Format::CMYK(_) => return Err("CMYK is not handled by the prototype".to_owned()),
    };
    let (width, height) = (started.width(), started.height());
    if !send(Msg::Start { width, height, channels }) {
        return Ok(());
    }
    let row_len = width * channels;
    let mut y = 0;
    while y < height {
        let rows = band_rows.min(height - y);
        let mut buf = spare.and_then(|s| s.try_recv().ok()).unwrap_or_default();
        buf.resize(rows * row_len, 0);
        started.read_scanlines_into::<u8>(&mut buf).map_err(|e| e.to_string())?;
        if !send(Msg::Band(buf)) {
            return Ok(());
        }
        y += rows;
    }
    started.finish().map_err(|e| e.to_string())
}

/// Where output rows go: placed upright in the whole output as they come (for
/// jpeg-encoder, or for a rotation), or straight into libjpeg's encoder.
enum Sink {
    Upright { orientation: u16, w: usize, h: usize, channels: usize, next_row: usize, out: Vec<u8> },
    Stream(mozjpeg::compress::CompressStarted<Vec<u8>>),
}

impl Sink {
    fn take(&mut self, rows: &[u8]) -> Result<(), String> {
        match self {
            Sink::Upright { orientation, w, h, channels, next_row, out } => {
                orient::place_rows(*orientation, *w, *h, *channels, *next_row, rows, out);
                *next_row += rows.len() / (*w * *channels);
            }
            Sink::Stream(c) => c.write_scanlines(rows).map_err(|e| e.to_string())?,
        }
        Ok(())
    }
}

/// The consumer side: resizes bands across, then streams their rows through the vertical
/// pass into the sink.
struct Streamer {
    tw: usize,
    src_w: usize,
    channels: usize,
    resizer: Resizer,
    vertical: VerticalPass,
    sink: Sink,
    across: Vec<u8>,
    resize_time: std::time::Duration,
    across_time: std::time::Duration,
}

impl Streamer {
    fn new(
        src: (usize, usize),
        channels: usize,
        target: (usize, usize),
        orientation: u16,
        stream: Option<(u8, bool)>,
    ) -> Result<Self, String> {
        let (tw, th) = target;
        let sink = match stream {
            Some((quality, optimize)) => Sink::Stream(start_mozjpeg(tw, th, channels, quality, optimize)?),
            None => Sink::Upright { orientation, w: tw, h: th, channels, next_row: 0, out: vec![0; tw * th * channels] },
        };
        Ok(Self {
            tw,
            src_w: src.0,
            channels,
            resizer: Resizer::new(),
            vertical: VerticalPass::new(src.1, th, tw as u32, pixel_type(channels), channels),
            sink,
            across: Vec::new(),
            resize_time: Default::default(),
            across_time: Default::default(),
        })
    }

    fn band(&mut self, band: &[u8]) -> Result<(), String> {
        let started = Instant::now();
        let row_len = self.src_w * self.channels;
        let rows = band.len() / row_len;
        let pt = pixel_type(self.channels);
        let across: &[u8] = if self.tw == self.src_w {
            band
        } else {
            let src = ImageRef::new(self.src_w as u32, rows as u32, band, pt).map_err(|e| e.to_string())?;
            self.across.resize(rows * self.tw * self.channels, 0);
            let mut dst = Image::from_slice_u8(self.tw as u32, rows as u32, &mut self.across, pt)
                .map_err(|e| e.to_string())?;
            let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).use_alpha(false);
            self.resizer.resize(&src, &mut dst, &options).map_err(|e| e.to_string())?;
            &self.across
        };
        self.across_time += started.elapsed();
        let sink = &mut self.sink;
        self.vertical.push(across, |chunk| sink.take(chunk))?;
        self.resize_time += started.elapsed();
        Ok(())
    }

    /// The encoded file when streamed, else the upright pixels.
    fn finish(self) -> Result<Result<Vec<u8>, Vec<u8>>, String> {
        if self.vertical.done() != self.vertical.out_rows() {
            return Err(format!("only {} of {} rows", self.vertical.done(), self.vertical.out_rows()));
        }
        match self.sink {
            Sink::Upright { out, .. } => Ok(Err(out)),
            Sink::Stream(c) => c.finish().map(Ok).map_err(|e| e.to_string()),
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if let Some(other) = &args.compare {
        return compare(&args.input, other);
    }
    let t0 = Instant::now();
    let bytes = if args.from_file {
        // The header and EXIF only (mozjpeg reads the rest from the file).
        let mut head = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(&args.input).map_err(|e| e.to_string())?, 256 * 1024),
            &mut head,
        )
        .map_err(|e| e.to_string())?;
        head
    } else {
        std::fs::read(&args.input).map_err(|e| format!("{}: {e}", args.input))?
    };
    let p = plan(&bytes, args)?;
    let source = if args.from_file { Source::File(&args.input) } else { Source::Memory(&bytes) };
    if let Some(decoder) = &args.decode_only {
        return decode_only(decoder, &bytes, &p);
    }
    let target = (p.tw, p.th);
    // fast_image_resize computes its horizontal weights again on every call, so small bands
    // would spend their time there; 128 rows is about 1 MB a band at 1280 px.
    let band_rows = if args.band_rows > 0 { args.band_rows } else { 128 };
    // Streaming into the encoder needs the rows in their final order: not for a rotation.
    let stream = (args.mozjpeg_encoder && p.orientation == 1).then_some((args.quality, !args.no_optimize));

    let (channels, made, stats) = if args.whole {
        let (channels, pixels, stats) = whole(&bytes, &p)?;
        let (_, _, upright) = orient::apply(p.orientation, p.tw, p.th, channels, pixels);
        (channels, Err(upright), stats)
    } else if args.threads <= 1 {
        let mut streamer: Option<Streamer> = None;
        let mut failure = None;
        decode_bands(source, p.eighths, band_rows, None, |msg| {
            let step = match msg {
                Msg::Start { width, height, channels } => {
                    Streamer::new((width, height), channels, target, p.orientation, stream).map(|s| streamer = Some(s))
                }
                Msg::Band(band) => streamer.as_mut().ok_or_else(|| "band before start".to_owned()).and_then(|s| s.band(&band)),
            };
            match step {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let s = streamer.ok_or("no image")?;
        let stats = format!("resize {:?} (across {:?}), rows held {}", s.resize_time, s.across_time, s.vertical.max_held);
        let channels = s.channels;
        (channels, s.finish()?, stats)
    } else {
        let (tx, rx) = sync_channel::<Msg>(2);
        let (spare_tx, spare_rx): (SyncSender<Vec<u8>>, Receiver<Vec<u8>>) = sync_channel(4);
        std::thread::scope(|scope| -> Result<(usize, Result<Vec<u8>, Vec<u8>>, String), String> {
            let decoder = scope.spawn(move || {
                let started = Instant::now();
                let r = decode_bands(source, p.eighths, band_rows, Some(&spare_rx), |m| tx.send(m).is_ok());
                (r, started.elapsed())
            });
            let mut streamer: Option<Streamer> = None;
            let mut waited = std::time::Duration::ZERO;
            let mut failure = None;
            loop {
                let w = Instant::now();
                let Ok(msg) = rx.recv() else { break };
                waited += w.elapsed();
                let step = match msg {
                    Msg::Start { width, height, channels } => {
                        Streamer::new((width, height), channels, target, p.orientation, stream).map(|s| streamer = Some(s))
                    }
                    Msg::Band(band) => {
                        let r = streamer.as_mut().ok_or_else(|| "band before start".to_owned()).and_then(|s| s.band(&band));
                        let _ = spare_tx.try_send(band);
                        r
                    }
                };
                if let Err(e) = step {
                    failure = Some(e);
                    break;
                }
            }
            // Dropping the receiver stops the decoder at its next band.
            drop(rx);
            let (decoded, decode_time) = decoder.join().map_err(|_| "the decoder panicked".to_owned())?;
            if let Some(e) = failure {
                return Err(e);
            }
            decoded?;
            let s = streamer.ok_or("no image")?;
            let stats = format!(
                "decode thread {decode_time:?}, resize {:?} (across {:?}), resize thread waited {waited:?}, rows held {}",
                s.resize_time, s.across_time, s.vertical.max_held
            );
            let channels = s.channels;
            Ok((channels, s.finish()?, stats))
        })?
    };
    let t_pixels = t0.elapsed();
    let (w, h) = orient::upright_size(p.orientation, p.tw, p.th);
    let output = args.output.as_deref().unwrap_or("out.jpg");
    let encoded = match made {
        // The pixels before encoding, to compare resizes without the encoder's noise.
        Err(upright) if output.ends_with(".ppm") || output.ends_with(".pgm") => {
            let mut ppm = format!("P{}\n{w} {h}\n255\n", if channels == 1 { 5 } else { 6 }).into_bytes();
            ppm.extend_from_slice(&upright);
            ppm
        }
        Ok(encoded) => encoded,
        Err(upright) if args.mozjpeg_encoder => {
            let mut c = start_mozjpeg(w, h, channels, args.quality, !args.no_optimize)?;
            c.write_scanlines(&upright).map_err(|e| e.to_string())?;
            c.finish().map_err(|e| e.to_string())?
        }
        Err(upright) => encode(&upright, w, h, channels, args.quality)?,
    };
    std::fs::write(output, &encoded).map_err(|e| format!("{output}: {e}"))?;
    if args.verbose {
        eprintln!(
            "{}: scale {}/8, {}x{} -> {w}x{h}, pixels at {t_pixels:?} ({stats}), total {:?}, {} bytes",
            args.input,
            p.eighths,
            p.tw,
            p.th,
            t0.elapsed(),
            encoded.len()
        );
    }
    Ok(())
}

/// Today's shape, with libjpeg-turbo: the whole scaled image, then one resize.
fn whole(bytes: &[u8], p: &Plan) -> Result<(usize, Vec<u8>, String), String> {
    let started = Instant::now();
    let mut d = mozjpeg::Decompress::new_mem(bytes).map_err(|e| e.to_string())?;
    d.scale(u8::try_from(p.eighths).unwrap_or(8));
    let (mut s, channels) = match d.image().map_err(|e| e.to_string())? {
        mozjpeg::decompress::Format::RGB(s) => (s, 3),
        mozjpeg::decompress::Format::Gray(s) => (s, 1),
        mozjpeg::decompress::Format::CMYK(_) => return Err("CMYK".to_owned()),
    };
    let (w, h) = (s.width(), s.height());
    let data: Vec<u8> = s.read_scanlines().map_err(|e| e.to_string())?;
    s.finish().map_err(|e| e.to_string())?;
    let decoded = started.elapsed();
    let pt = pixel_type(channels);
    let src = ImageRef::new(w as u32, h as u32, &data, pt).map_err(|e| e.to_string())?;
    let mut dst = Image::new(p.tw as u32, p.th as u32, pt);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).use_alpha(false);
    Resizer::new().resize(&src, &mut dst, &options).map_err(|e| e.to_string())?;
    Ok((channels, dst.into_vec(), format!("whole: decode {decoded:?}, resize {:?}", started.elapsed() - decoded)))
}

/// As shoebox encodes variants: 4:2:0 below quality 90, optimised Huffman tables.
fn encode(data: &[u8], w: usize, h: usize, channels: usize, quality: u8) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() / 8);
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(if quality >= 90 {
        jpeg_encoder::SamplingFactor::F_1_1
    } else {
        jpeg_encoder::SamplingFactor::F_2_2
    });
    encoder.set_optimized_huffman_tables(true);
    let color = if channels == 1 { jpeg_encoder::ColorType::Luma } else { jpeg_encoder::ColorType::Rgb };
    let (w, h) = (u16::try_from(w).map_err(|e| e.to_string())?, u16::try_from(h).map_err(|e| e.to_string())?);
    encoder.encode(data, w, h, color).map_err(|e| e.to_string())?;
    Ok(out)
}

/// libjpeg-turbo's encoder (mozjpeg's "fastest" profile: no trellis, the standard tables),
/// 4:2:0, optimised Huffman tables (which makes libjpeg keep the coefficients of the
/// whole output, 3 bytes a pixel at 4:2:0, to write them at the end).
fn start_mozjpeg(
    w: usize,
    h: usize,
    channels: usize,
    quality: u8,
    optimize: bool,
) -> Result<mozjpeg::compress::CompressStarted<Vec<u8>>, String> {
    let space = if channels == 1 { mozjpeg::ColorSpace::JCS_GRAYSCALE } else { mozjpeg::ColorSpace::JCS_RGB };
    let mut c = mozjpeg::Compress::new(space);
    c.set_fastest_defaults();
    c.set_size(w, h);
    c.set_quality(f32::from(quality));
    c.set_optimize_coding(optimize);
    if channels == 3 {
        c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
    }
    c.start_compress(Vec::with_capacity(w * h / 4)).map_err(|e| e.to_string())
}

/// Times one decoder alone on the whole image (at the DCT scale where it has one).
fn decode_only(decoder: &str, bytes: &[u8], p: &Plan) -> Result<(), String> {
    let started = Instant::now();
    let (w, h) = match decoder {
        "mozjpeg" => {
            let mut d = mozjpeg::Decompress::new_mem(bytes).map_err(|e| e.to_string())?;
            d.scale(u8::try_from(p.eighths).unwrap_or(8));
            let mut s = d.rgb().map_err(|e| e.to_string())?;
            let (w, h) = (s.width(), s.height());
            let data: Vec<u8> = s.read_scanlines().map_err(|e| e.to_string())?;
            s.finish().map_err(|e| e.to_string())?;
            std::hint::black_box(data);
            (w, h)
        }
        "jpeg-decoder" => {
            let mut d = jpeg_decoder::Decoder::new(bytes);
            if p.eighths < 8 {
                let header = mozjpeg::Decompress::new_mem(bytes).map_err(|e| e.to_string())?;
                let (w, h) = header.size();
                let (sw, sh) = (scaled(w, p.eighths), scaled(h, p.eighths));
                d.scale(sw as u16, sh as u16).map_err(|e| e.to_string())?;
            }
            let data = d.decode().map_err(|e| e.to_string())?;
            let info = d.info().ok_or("no info")?;
            std::hint::black_box(data);
            (usize::from(info.width), usize::from(info.height))
        }
        "zune" => {
            let mut d = zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(bytes));
            let data = d.decode().map_err(|e| format!("{e:?}"))?;
            let (w, h) = d.dimensions().ok_or("no dimensions")?;
            std::hint::black_box(data);
            (w, h)
        }
        other => return Err(format!("unknown decoder {other}")),
    };
    println!("{decoder} {w}x{h} {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    Ok(())
}

/// `strip-proto A --compare B`: both decoded (jpeg-decoder), same size required; prints the
/// PSNR and the mean and largest absolute difference of the samples.
fn compare(a: &str, b: &str) -> Result<(), String> {
    let decode = |path: &str| -> Result<(u16, u16, Vec<u8>), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let mut d = jpeg_decoder::Decoder::new(&bytes[..]);
        let data = d.decode().map_err(|e| format!("{path}: {e}"))?;
        let info = d.info().ok_or("no info")?;
        Ok((info.width, info.height, data))
    };
    let (aw, ah, ad) = decode(a)?;
    let (bw, bh, bd) = decode(b)?;
    if (aw, ah) != (bw, bh) || ad.len() != bd.len() {
        println!("size differs: {aw}x{ah} vs {bw}x{bh}");
        return Ok(());
    }
    let (mut sq, mut abs, mut max) = (0f64, 0u64, 0u8);
    for (&x, &y) in ad.iter().zip(&bd) {
        let d = x.abs_diff(y);
        sq += f64::from(d) * f64::from(d);
        abs += u64::from(d);
        max = max.max(d);
    }
    let n = ad.len() as f64;
    let psnr = 10.0 * (255.0f64 * 255.0 / (sq / n)).log10();
    println!("{aw}x{ah} psnr {psnr:.2} dB, mean abs {:.3}, max {max}", abs as f64 / n);
    Ok(())
}
