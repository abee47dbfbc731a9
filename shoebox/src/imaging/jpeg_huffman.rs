//! Optimal Huffman tables for a sequential JPEG, found after the file is written.
//!
//! libjpeg optimises its tables by keeping every block's coefficients until the last row
//! (2 bytes a sample, and MozJPEG's fork, which the `mozjpeg` crate builds, keeps them
//! twice): 14.7 MB for a 1280×1920 variant, most of a large rendition's memory. Yet the
//! symbols a block is coded with do not depend on the tables, so the same tables can be
//! found from the file: the encoder streams it with the standard tables, and this module
//! reads its entropy-coded data once to count the symbols, builds the tables as libjpeg
//! does (ITU-T T.81 Annex K.2 and K.3, with libjpeg's tie-breaks, so the result is the very
//! file libjpeg would have optimised), then reads it again and writes each symbol with its
//! new code and its extra bits unchanged. It holds the two files and nothing else: the
//! lossless optimisers we know of (jpegtran, and the Rust encoders with an optimising mode)
//! hold the coefficients, which is what this avoids.
//!
//! Only what Shoebox's encoder writes is taken: baseline or extended sequential Huffman,
//! 8-bit, one scan holding every component, restart markers allowed. Anything else is an
//! error, and the caller keeps the file it has.

use std::ops::Range;

/// Codes up to this long are decoded with one table lookup; longer ones (rare: the
/// standard tables' AC codes run to 16 bits) bit-length by bit-length.
const LOOKAHEAD: u32 = 9;

/// The file with its Huffman tables optimised, or why it cannot be done.
pub(crate) fn optimise(jpeg: &[u8]) -> Result<Vec<u8>, String> {
    let file = parse(jpeg)?;
    // The file's own tables read it in both passes.
    let decoders =
        file.tables.iter().map(|t| t.as_ref().map(Decoder::new).transpose()).collect::<Result<Vec<_>, _>>()?;
    let mut counts = [[0u64; 257]; 8];
    run_scan(jpeg, &file, &decoders, &mut Counter(&mut counts))?;

    let mut optimal: [Option<Spec>; 8] = Default::default();
    for slot in file.scan.iter().flat_map(|c| [c.dc, c.ac]) {
        if optimal[slot].is_none() {
            optimal[slot] = Some(optimal_spec(&counts[slot]));
        }
    }
    let mut encoders: [Option<Encoder>; 8] = Default::default();
    for (slot, spec) in optimal.iter().enumerate() {
        if let Some(spec) = spec {
            encoders[slot] = Some(Encoder::new(spec)?);
        }
    }

    let mut out = Vec::with_capacity(jpeg.len());
    let mut copied = 0;
    for (range, tables) in &file.huffman_segments {
        out.extend_from_slice(&jpeg[copied..range.start]);
        write_dht(&mut out, tables.iter().map(|(slot, spec)| (*slot, optimal[*slot].as_ref().unwrap_or(spec))));
        copied = range.end;
    }
    out.extend_from_slice(&jpeg[copied..file.entropy.start]);
    let mut writer = Writer { out, acc: 0, bits: 0, encoders };
    run_scan(jpeg, &file, &decoders, &mut writer)?;
    writer.flush();
    let mut out = writer.out;
    out.extend_from_slice(&jpeg[file.entropy.end..]);
    Ok(out)
}

/// A table as a DHT segment gives it: how many codes of each length 1 to 16, and the
/// symbols in code order.
#[derive(Clone, Debug, PartialEq)]
struct Spec {
    lengths: [u8; 16],
    symbols: Vec<u8>,
}

/// One component of the scan: its sampling, and its tables as slots (DC 0 to 3, AC 4 to 7).
struct ScanComponent {
    h: u32,
    v: u32,
    dc: usize,
    ac: usize,
}

/// A DHT segment's place in the file, and the tables it defines (slot and table) in order.
type HuffmanSegment = (Range<usize>, Vec<(usize, Spec)>);

/// A frame header: width, height, and each component's id and sampling (h, v).
struct Frame {
    width: u32,
    height: u32,
    components: Vec<(u8, u32, u32)>,
}

/// What the file's headers say, and where its parts are.
struct File {
    size: (u32, u32),
    max_sampling: (u32, u32),
    restart_interval: u32,
    tables: [Option<Spec>; 8],
    /// Each DHT segment before the scan, with the tables it defines in order.
    huffman_segments: Vec<HuffmanSegment>,
    scan: Vec<ScanComponent>,
    /// The entropy-coded data with its restart markers, up to the marker that ends the scan.
    entropy: Range<usize>,
}

fn be16(data: &[u8], at: usize) -> Result<usize, String> {
    match data.get(at..at + 2) {
        Some(&[a, b]) => Ok((usize::from(a) << 8) | usize::from(b)),
        _ => Err("the file ends inside a segment".to_owned()),
    }
}

fn parse(jpeg: &[u8]) -> Result<File, String> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG".to_owned());
    }
    let mut at = 2;
    let mut frame: Option<Frame> = None;
    let mut tables: [Option<Spec>; 8] = Default::default();
    let mut huffman_segments = Vec::new();
    let mut restart_interval = 0;
    loop {
        if jpeg.get(at) != Some(&0xFF) {
            return Err(format!("no marker at byte {at}"));
        }
        while jpeg.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let marker = *jpeg.get(at + 1).ok_or("the file ends before its scan")?;
        let length = be16(jpeg, at + 2)?;
        let body = jpeg.get(at + 4..at + 2 + length).filter(|_| length >= 2).ok_or("a segment runs past the file")?;
        let segment = at..at + 2 + length;
        match marker {
            0xC0 | 0xC1 => {
                if frame.is_some() {
                    return Err("two frames".to_owned());
                }
                frame = Some(parse_frame(body)?);
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err("not a sequential Huffman JPEG".to_owned());
            }
            0xC4 => {
                let defined = parse_dht(body)?;
                for (slot, spec) in &defined {
                    tables[*slot] = Some(spec.clone());
                }
                huffman_segments.push((segment.clone(), defined));
            }
            0xDD => restart_interval = be16(body, 0)? as u32,
            0xDA => {
                let Frame { width, height, components } = frame.ok_or("a scan before the frame")?;
                let scan = parse_scan(body, &components, &tables)?;
                let entropy = segment.end..scan_end(jpeg, segment.end)?;
                if jpeg[entropy.end..].windows(2).any(|w| w == [0xFF, 0xDA]) {
                    return Err("more than one scan".to_owned());
                }
                let max_sampling = components.iter().fold((1, 1), |(h, v), c| (h.max(c.1), v.max(c.2)));
                return Ok(File {
                    size: (width, height),
                    max_sampling,
                    restart_interval,
                    tables,
                    huffman_segments,
                    scan,
                    entropy,
                });
            }
            0xD8 | 0xD9 | 0xD0..=0xD7 | 0x01 => return Err(format!("marker {marker:02X} before the scan")),
            _ => {}
        }
        at = segment.end;
    }
}

fn parse_frame(body: &[u8]) -> Result<Frame, String> {
    if body.first() != Some(&8) {
        return Err("not 8-bit".to_owned());
    }
    let height = be16(body, 1)? as u32;
    let width = be16(body, 3)? as u32;
    let count = usize::from(*body.get(5).ok_or("a short frame header")?);
    let components = body
        .get(6..6 + 3 * count)
        .ok_or("a short frame header")?
        .chunks(3)
        .map(|c| (c[0], u32::from(c[1] >> 4), u32::from(c[1] & 15)))
        .collect::<Vec<_>>();
    if width == 0
        || height == 0
        || count == 0
        || components.iter().any(|c| !(1..=4).contains(&c.1) || !(1..=4).contains(&c.2))
    {
        return Err("an impossible frame header".to_owned());
    }
    Ok(Frame { width, height, components })
}

fn parse_dht(mut body: &[u8]) -> Result<Vec<(usize, Spec)>, String> {
    let mut defined = Vec::new();
    while let Some(&class_id) = body.first() {
        let (class, id) = (usize::from(class_id >> 4), usize::from(class_id & 15));
        if class > 1 || id > 3 {
            return Err("a Huffman table of no known class or slot".to_owned());
        }
        let lengths: [u8; 16] = body.get(1..17).and_then(|l| l.try_into().ok()).ok_or("a short DHT")?;
        let count = lengths.iter().map(|&n| usize::from(n)).sum::<usize>();
        let symbols = body.get(17..17 + count).ok_or("a short DHT")?.to_vec();
        defined.push((class * 4 + id, Spec { lengths, symbols }));
        body = &body[17 + count..];
    }
    Ok(defined)
}

fn parse_scan(
    body: &[u8],
    components: &[(u8, u32, u32)],
    tables: &[Option<Spec>; 8],
) -> Result<Vec<ScanComponent>, String> {
    let count = usize::from(*body.first().ok_or("a short scan header")?);
    let selectors = body.get(1..1 + 2 * count).ok_or("a short scan header")?;
    if body.get(1 + 2 * count..4 + 2 * count) != Some(&[0, 63, 0]) {
        return Err("not a sequential scan".to_owned());
    }
    if count != components.len() {
        return Err("a scan without every component".to_owned());
    }
    selectors
        .chunks(2)
        .map(|s| {
            let &(_, h, v) = components.iter().find(|c| c.0 == s[0]).ok_or("a scan of an unknown component")?;
            let (dc, ac) = (usize::from(s[1] >> 4), 4 + usize::from(s[1] & 15));
            if dc > 3 || ac > 7 || tables[dc].is_none() || tables[ac].is_none() {
                return Err("a scan with an undefined table".to_owned());
            }
            Ok(ScanComponent { h, v, dc, ac })
        })
        .collect()
}

/// Where the entropy-coded data starting at `start` ends: the first marker that is neither
/// a stuffed 0xFF nor a restart marker.
fn scan_end(jpeg: &[u8], start: usize) -> Result<usize, String> {
    let mut at = start;
    while at + 1 < jpeg.len() {
        if jpeg[at] == 0xFF && !matches!(jpeg[at + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
            return Ok(at);
        }
        at += 1;
    }
    Err("the scan has no end".to_owned())
}

/// Where the decoded symbols go: counted, or written again with other codes.
trait Symbols {
    fn symbol(&mut self, slot: usize, symbol: u8, extra: u32, extra_bits: u32) -> Result<(), String>;
    fn restart(&mut self, number: u8);
}

struct Counter<'a>(&'a mut [[u64; 257]; 8]);

impl Symbols for Counter<'_> {
    fn symbol(&mut self, slot: usize, symbol: u8, _: u32, _: u32) -> Result<(), String> {
        self.0[slot][usize::from(symbol)] += 1;
        Ok(())
    }
    fn restart(&mut self, _: u8) {}
}

/// Decodes every block of the scan, in order, with the file's `decoders` (by slot), into `sink`.
fn run_scan(jpeg: &[u8], file: &File, decoders: &[Option<Decoder>], sink: &mut impl Symbols) -> Result<(), String> {
    let (width, height) = file.size;
    let (h_max, v_max) = file.max_sampling;
    // One component alone in its scan is coded block by block, not in MCUs (T.81 A.2.2).
    let (mcus, blocks_per_mcu) = if let [only] = &file.scan[..] {
        let blocks_w = (width * only.h).div_ceil(h_max).div_ceil(8);
        let blocks_h = (height * only.v).div_ceil(v_max).div_ceil(8);
        (u64::from(blocks_w) * u64::from(blocks_h), vec![(only, 1)])
    } else {
        let mcus = u64::from(width.div_ceil(8 * h_max)) * u64::from(height.div_ceil(8 * v_max));
        (mcus, file.scan.iter().map(|c| (c, c.h * c.v)).collect())
    };
    let mut reader = Reader::new(&jpeg[file.entropy.clone()]);
    let interval = u64::from(file.restart_interval);
    for mcu in 0..mcus {
        if interval > 0 && mcu > 0 && mcu % interval == 0 {
            let number = ((mcu / interval - 1) % 8) as u8;
            reader.restart(number)?;
            sink.restart(number);
        }
        for &(component, blocks) in &blocks_per_mcu {
            let (Some(dc), Some(ac)) = (&decoders[component.dc], &decoders[component.ac]) else {
                return Err("a scan with an undefined table".to_owned());
            };
            for _ in 0..blocks {
                block(&mut reader, (dc, component.dc), (ac, component.ac), sink)?;
            }
        }
    }
    reader.finish()
}

/// One 8×8 block: a DC difference, then AC run/size symbols up to the end of the block.
fn block(
    reader: &mut Reader,
    dc: (&Decoder, usize),
    ac: (&Decoder, usize),
    sink: &mut impl Symbols,
) -> Result<(), String> {
    let size = reader.decode(dc.0)?;
    if size > 11 {
        return Err("a DC difference too large for 8 bits".to_owned());
    }
    let extra = reader.bits(u32::from(size))?;
    sink.symbol(dc.1, size, extra, u32::from(size))?;
    let mut k = 1;
    while k < 64 {
        let run_size = reader.decode(ac.0)?;
        let (run, size) = (u32::from(run_size >> 4), u32::from(run_size & 15));
        let extra = reader.bits(size)?;
        sink.symbol(ac.1, run_size, extra, size)?;
        match (run, size) {
            (0, 0) => break,
            (15, 0) => k += 16,
            (_, 0) => return Err("an AC symbol of no meaning".to_owned()),
            _ => k += run + 1,
        }
    }
    if k > 64 {
        return Err("a run past the end of a block".to_owned());
    }
    Ok(())
}

/// Canonical codes for a table: each symbol's code, and its length (T.81 Annex C).
fn codes(spec: &Spec) -> Result<Vec<(u8, u32, u32)>, String> {
    let mut codes = Vec::with_capacity(spec.symbols.len());
    let mut code = 0u32;
    let mut symbols = spec.symbols.iter();
    for (length, &count) in (1..=16).zip(&spec.lengths) {
        for _ in 0..count {
            let &symbol = symbols.next().ok_or("a table with fewer symbols than codes")?;
            codes.push((symbol, code, length));
            code += 1;
        }
        if code > 1 << length {
            return Err("a table with more codes than fit".to_owned());
        }
        code <<= 1;
    }
    Ok(codes)
}

struct Decoder {
    /// For each LOOKAHEAD-bit prefix: the code's length (0: longer) and its symbol.
    fast: Vec<(u8, u8)>,
    /// For longer codes: per length, the largest code (or -1) and the offset from a code to
    /// its symbol's index.
    max_code: [i64; 17],
    offset: [i64; 17],
    symbols: Vec<u8>,
}

impl Decoder {
    fn new(spec: &Spec) -> Result<Decoder, String> {
        let mut fast = vec![(0, 0); 1 << LOOKAHEAD];
        let mut max_code = [-1; 17];
        let mut offset = [0; 17];
        for (index, &(symbol, code, length)) in codes(spec)?.iter().enumerate() {
            if length <= LOOKAHEAD {
                let shift = LOOKAHEAD - length;
                let first = (code << shift) as usize;
                fast[first..first + (1 << shift)].fill((length as u8, symbol));
            }
            let length = length as usize;
            if max_code[length] < 0 {
                offset[length] = index as i64 - i64::from(code);
            }
            max_code[length] = i64::from(code);
        }
        Ok(Decoder { fast, max_code, offset, symbols: spec.symbols.clone() })
    }
}

/// Reads bits of entropy-coded data, removing the stuffed zero after each 0xFF, and stops
/// at a marker.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    /// The next bits, most significant first: `bits` of them, of which the last `padding`
    /// are zeros standing in for data past a marker.
    acc: u64,
    bits: u32,
    padding: u32,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, at: 0, acc: 0, bits: 0, padding: 0 }
    }

    fn fill(&mut self) {
        while self.bits <= 56 {
            let byte = match self.data.get(self.at..) {
                Some([0xFF, 0x00, ..]) => {
                    self.at += 2;
                    0xFF
                }
                Some([0xFF, ..]) | Some([]) | None => {
                    self.padding += 8;
                    0
                }
                Some([byte, ..]) => {
                    self.at += 1;
                    *byte
                }
            };
            self.acc |= u64::from(byte) << (56 - self.bits);
            self.bits += 8;
        }
    }

    fn consume(&mut self, count: u32) -> Result<(), String> {
        if count > self.bits - self.padding {
            return Err("the data ends inside a block".to_owned());
        }
        self.acc = if count == 64 { 0 } else { self.acc << count };
        self.bits -= count;
        Ok(())
    }

    fn peek(&self, count: u32) -> u32 {
        (self.acc >> (64 - count)) as u32
    }

    fn bits(&mut self, count: u32) -> Result<u32, String> {
        if count == 0 {
            return Ok(0);
        }
        self.fill();
        let value = self.peek(count);
        self.consume(count)?;
        Ok(value)
    }

    fn decode(&mut self, table: &Decoder) -> Result<u8, String> {
        self.fill();
        let (length, symbol) = table.fast[self.peek(LOOKAHEAD) as usize];
        if length > 0 {
            self.consume(u32::from(length))?;
            return Ok(symbol);
        }
        for length in LOOKAHEAD + 1..=16 {
            let code = i64::from(self.peek(length));
            if code <= table.max_code[length as usize] {
                self.consume(length)?;
                let index = code + table.offset[length as usize];
                return table.symbols.get(index as usize).copied().ok_or_else(|| "a bad Huffman code".to_owned());
            }
        }
        Err("a bad Huffman code".to_owned())
    }

    /// Drops the bits that pad the last byte, which must leave no data unread.
    fn align(&mut self) -> Result<(), String> {
        self.consume(self.bits % 8)?;
        if self.bits > self.padding {
            return Err("data after the last block".to_owned());
        }
        Ok(())
    }

    fn restart(&mut self, number: u8) -> Result<(), String> {
        self.align()?;
        if self.data.get(self.at..self.at + 2) != Some(&[0xFF, 0xD0 + number]) {
            return Err("a restart marker missing or out of order".to_owned());
        }
        *self = Reader { data: self.data, at: self.at + 2, acc: 0, bits: 0, padding: 0 };
        Ok(())
    }

    fn finish(mut self) -> Result<(), String> {
        self.align()?;
        if self.at != self.data.len() {
            return Err("data after the last block".to_owned());
        }
        Ok(())
    }
}

/// Each symbol's code and length, for writing.
struct Encoder {
    code: [(u32, u32); 256],
}

impl Encoder {
    fn new(spec: &Spec) -> Result<Encoder, String> {
        let mut code = [(0, 0); 256];
        for (symbol, bits, length) in codes(spec)? {
            code[usize::from(symbol)] = (bits, length);
        }
        Ok(Encoder { code })
    }
}

/// Writes entropy-coded data: codes and extra bits, a stuffed zero after each 0xFF, ones
/// to pad the last byte (T.81 F.1.2.3).
struct Writer {
    out: Vec<u8>,
    acc: u64,
    bits: u32,
    encoders: [Option<Encoder>; 8],
}

impl Writer {
    fn put(&mut self, value: u32, count: u32) {
        self.acc = (self.acc << count) | u64::from(value);
        self.bits += count;
        while self.bits >= 8 {
            self.bits -= 8;
            let byte = (self.acc >> self.bits) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0);
            }
        }
        self.acc &= (1 << self.bits) - 1;
    }

    fn flush(&mut self) {
        if self.bits > 0 {
            let pad = 8 - self.bits;
            self.put((1 << pad) - 1, pad);
        }
    }
}

impl Symbols for Writer {
    fn symbol(&mut self, slot: usize, symbol: u8, extra: u32, extra_bits: u32) -> Result<(), String> {
        let (code, length) = self.encoders[slot].as_ref().map_or((0, 0), |e| e.code[usize::from(symbol)]);
        if length == 0 {
            return Err("a symbol the counting pass never saw".to_owned());
        }
        // At most 16 + 16 bits, on fewer than 8 left over: one call.
        self.put((code << extra_bits) | extra, length + extra_bits);
        Ok(())
    }

    fn restart(&mut self, number: u8) {
        self.flush();
        self.out.extend_from_slice(&[0xFF, 0xD0 + number]);
    }
}

/// The optimal table for these symbol counts, limited to 16-bit codes, exactly as libjpeg
/// builds it (`jpeg_gen_optimal_table`): a reserved symbol 256 of count 1 keeps any code from
/// being all ones, ties go to the higher symbol, and over-long codes are shortened as in
/// T.81 Figure K.3.
fn optimal_spec(counts: &[u64; 257]) -> Spec {
    let mut freq = *counts;
    freq[256] = 1;
    let mut size = [0usize; 257];
    let mut next: [Option<usize>; 257] = [None; 257];
    let smallest = |freq: &[u64; 257], not: Option<usize>| {
        let mut best: Option<(u64, usize)> = None;
        for (symbol, &f) in freq.iter().enumerate() {
            if f > 0 && Some(symbol) != not && best.is_none_or(|(b, _)| f <= b) {
                best = Some((f, symbol));
            }
        }
        best.map(|(_, symbol)| symbol)
    };
    while let Some(c1) = smallest(&freq, None) {
        let Some(c2) = smallest(&freq, Some(c1)) else { break };
        freq[c1] += freq[c2];
        freq[c2] = 0;
        // Every symbol in c1's chain and in c2's goes one level deeper; then the chains join.
        let mut last = c1;
        size[last] += 1;
        while let Some(n) = next[last] {
            last = n;
            size[last] += 1;
        }
        next[last] = Some(c2);
        let mut walk = Some(c2);
        while let Some(n) = walk {
            size[n] += 1;
            walk = next[n];
        }
    }
    let mut per_length = [0u32; 258];
    for &s in size.iter().filter(|&&s| s > 0) {
        per_length[s] += 1;
    }
    for length in (17..per_length.len()).rev() {
        while per_length[length] > 0 {
            let mut shorter = length - 2;
            while per_length[shorter] == 0 {
                shorter -= 1;
            }
            per_length[length] -= 2;
            per_length[length - 1] += 1;
            per_length[shorter + 1] += 2;
            per_length[shorter] -= 1;
        }
    }
    // Give up the reserved code, the longest.
    if let Some(longest) = (1..=16).rev().find(|&l| per_length[l] > 0) {
        per_length[longest] -= 1;
    }
    let mut lengths = [0u8; 16];
    for (l, n) in lengths.iter_mut().zip(&per_length[1..=16]) {
        *l = *n as u8;
    }
    let mut symbols = Vec::new();
    for length in 1..=size.iter().copied().max().unwrap_or(0) {
        symbols.extend((0..256).filter(|&s| size[s] == length).map(|s| s as u8));
    }
    Spec { lengths, symbols }
}

fn write_dht<'a>(out: &mut Vec<u8>, tables: impl Iterator<Item = (usize, &'a Spec)> + Clone) {
    let length = 2 + tables.clone().map(|(_, spec)| 17 + spec.symbols.len()).sum::<usize>();
    out.extend_from_slice(&[0xFF, 0xC4, (length >> 8) as u8, length as u8]);
    for (slot, spec) in tables {
        out.push((((slot / 4) << 4) | (slot % 4)) as u8);
        out.extend_from_slice(&spec.lengths);
        out.extend_from_slice(&spec.symbols);
    }
}

#[cfg(test)]
mod tests {
    use mozjpeg::{ColorSpace, Compress};

    use super::*;

    /// A photo-like image: gradients, edges and noise, so every kind of symbol occurs.
    fn scene(width: u32, height: u32, channels: usize) -> Vec<u8> {
        let mut seed = 0x2545_F491_u32;
        let mut data = Vec::with_capacity(width as usize * height as usize * channels);
        for y in 0..height {
            for x in 0..width {
                for c in 0..channels as u32 {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let edge = if (x / 37 + y / 23) % 2 == 0 { 60 } else { 0 };
                    let value = (x * (c + 1) + y * 2) / 3 + edge + (seed % 24);
                    data.push(value.min(255) as u8);
                }
            }
        }
        data
    }

    /// libjpeg's own file, optimised by libjpeg, with the settings `jpeg_encode` uses.
    fn libjpeg(data: &[u8], (width, height): (u32, u32), grey: bool, quality: u8, optimise: bool) -> Vec<u8> {
        let mut compress = Compress::new(if grey { ColorSpace::JCS_GRAYSCALE } else { ColorSpace::JCS_RGB });
        compress.set_fastest_defaults();
        compress.set_size(width as usize, height as usize);
        compress.set_quality(f32::from(quality));
        compress.set_optimize_coding(optimise);
        if !grey {
            let chroma = if quality >= 90 { (1, 1) } else { (2, 2) };
            compress.set_chroma_sampling_pixel_sizes(chroma, chroma);
        }
        let mut started = compress.start_compress(Vec::new()).expect("start");
        started.write_scanlines(data).expect("rows");
        started.finish().expect("finish")
    }

    fn pixels(jpeg: &[u8]) -> Vec<u8> {
        jpeg_decoder::Decoder::new(jpeg).decode().expect("decodes")
    }

    #[test]
    fn the_result_is_the_file_libjpeg_optimises_itself() {
        // Odd sizes (partial MCUs at both edges), 4:2:0 and full chroma, grey, a high quality
        // whose coefficients need long codes.
        for (size, grey, quality) in [
            ((333, 517), false, 80),
            ((64, 48), false, 82),
            ((201, 99), false, 95),
            ((130, 77), true, 80),
            ((97, 300), false, 100),
        ] {
            let data = scene(size.0, size.1, if grey { 1 } else { 3 });
            let standard = libjpeg(&data, size, grey, quality, false);
            let optimised = optimise(&standard).expect("optimises");
            assert_eq!(optimised, libjpeg(&data, size, grey, quality, true), "{size:?} grey {grey} q{quality}");
            assert!(optimised.len() < standard.len(), "{size:?}: {} against {}", optimised.len(), standard.len());
        }
    }

    #[test]
    fn restart_markers_and_another_encoders_tables_are_kept_losslessly() {
        let (width, height) = (211, 133);
        let data = scene(width, height, 3);
        for interval in [0, 1, 3, 40] {
            let mut file = Vec::new();
            let mut encoder = jpeg_encoder::Encoder::new(&mut file, 85);
            encoder.set_restart_interval(interval);
            encoder.encode(&data, width as u16, height as u16, jpeg_encoder::ColorType::Rgb).expect("encode");
            let optimised = optimise(&file).expect("optimises");
            let markers = |f: &[u8]| f.windows(2).filter(|w| w[0] == 0xFF && (0xD0..=0xD7).contains(&w[1])).count();
            assert_eq!(markers(&optimised), markers(&file), "interval {interval}");
            assert!(interval == 0 || markers(&file) > 0, "the fixture has restart markers");
            assert_eq!(pixels(&optimised), pixels(&file), "interval {interval}: the same image");
            assert!(optimised.len() < file.len(), "interval {interval}");
        }
    }

    #[test]
    fn what_it_does_not_take_is_an_error_never_a_panic() {
        let data = scene(120, 90, 3);
        let good = libjpeg(&data, (120, 90), false, 80, false);
        let mut progressive = Compress::new(ColorSpace::JCS_RGB);
        progressive.set_fastest_defaults();
        progressive.set_size(120, 90);
        progressive.set_progressive_mode();
        let mut started = progressive.start_compress(Vec::new()).expect("start");
        started.write_scanlines(&data).expect("rows");
        let progressive = started.finish().expect("finish");
        assert!(optimise(&progressive).is_err_and(|why| why.contains("sequential")));
        assert!(optimise(b"GIF89a").is_err());
        assert!(optimise(&good[..good.len() / 2]).is_err(), "cut in the scan");
        // Every cut, and every byte replaced: an answer each time, and a file that is
        // accepted still holds the same image as before optimisation.
        for cut in (0..good.len()).step_by(7) {
            let _ = optimise(&good[..cut]);
        }
        for at in (2..good.len()).step_by(3) {
            let mut bad = good.clone();
            bad[at] ^= 0x5A;
            if let Ok(file) = optimise(&bad)
                && let Ok(before) = jpeg_decoder::Decoder::new(&bad[..]).decode()
            {
                assert_eq!(pixels(&file), before, "byte {at}");
            }
        }
    }

    #[test]
    fn optimal_tables_are_prefix_codes_no_longer_than_16_bits() {
        // Fibonacci counts make the deepest possible tree: codes far over 16 bits before
        // they are limited.
        let mut counts = [0u64; 257];
        let (mut a, mut b) = (1u64, 1u64);
        for count in counts.iter_mut().take(40) {
            *count = a;
            (a, b) = (b, a + b);
        }
        let spec = optimal_spec(&counts);
        assert_eq!(spec.symbols.len(), 40);
        let kraft: f64 = (1..=16).zip(spec.lengths).map(|(l, n)| f64::from(n) / f64::from(1u32 << l)).sum();
        assert!(kraft < 1.0, "room is left for the reserved all-ones code: {kraft}");
        assert!(codes(&spec).is_ok());
        // The two most frequent symbols (38 and 39, almost equally so) get the shortest codes,
        // the least frequent the longest.
        assert!(spec.lengths[0] + spec.lengths[1] >= 2, "{:?}", spec.lengths);
        assert!(spec.symbols[..2].contains(&39) && spec.symbols[..2].contains(&38), "{:?}", spec.symbols);
        // The tree was 39 levels deep: its deepest codes were shortened to 16 bits.
        assert!(spec.lengths[15] > 0, "{:?}", spec.lengths);
        // One symbol alone: one code, one bit long.
        let mut one = [0u64; 257];
        one[7] = 1000;
        assert_eq!(
            optimal_spec(&one),
            Spec { lengths: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], symbols: vec![7] }
        );
    }
}
