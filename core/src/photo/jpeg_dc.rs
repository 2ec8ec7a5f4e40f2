//! JPEG decoding at 1/8 scale from the DC coefficients alone, for the large camera photos the model sees at
//! 224x224.
//!
//! At 1/8 scale every 8x8 block becomes one pixel, its DC value (the 1x1 inverse DCT), so the AC coefficients need
//! only be skipped: their Huffman codes are read, their values neither sign-extended, dequantized, stored nor
//! transformed. jpeg-decoder decodes, stores and zeroes all 64 coefficients of every block even when scaling by
//! 1/8; on a 12 MP photo this path takes half its time (BENCHMARKS.md). The result is the same, byte for byte, as
//! jpeg-decoder's own 1/8-scale output (same DC arithmetic, same chroma upsampling, same colour conversion;
//! tested on real photos). Only the common case is handled here — baseline or extended sequential Huffman coding,
//! 8-bit samples, one interleaved scan, grayscale or YCbCr (component ids 1, 2, 3) with chroma subsampled by 1 or 2
//! — and anything else, or any data that does not decode cleanly, returns `None` so that the caller falls back to
//! jpeg-decoder (which reports the error, if there is one).
//!
//! On more than one thread a large scan without restart markers is cut into parts decoded at once, all but the
//! first speculatively from a guessed start, then stitched where the true decoder meets each part's run
//! ([`decode_parallel`]); upsampling and colour conversion split the rows.

/// An RGB8 image: `width x height` pixels, rows top to bottom.
pub(crate) struct Rgb {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Decodes `bytes` (a whole JPEG file) at 1/8 scale, or `None` when this decoder does not handle it. On the threads
/// of the current executor when the photo is large enough to gain from them.
pub(crate) fn decode_eighth(bytes: &[u8]) -> Option<Rgb> {
    decode_eighth_in_parts(bytes, parts_for(bytes.len(), crate::kernels::parallel::threads()))
}

/// [`decode_eighth`], its entropy-coded data cut into `parts` decoded in parallel ([`decode_parallel`]) when it has
/// no restart markers.
fn decode_eighth_in_parts(bytes: &[u8], parts: usize) -> Option<Rgb> {
    let mut tables = Tables::default();
    let mut frame: Option<Frame> = None;
    let mut restart_interval = 0usize;
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut pos = 2;
    loop {
        // A marker: 0xFF (any fill bytes), then its code.
        if *bytes.get(pos)? != 0xFF {
            return None;
        }
        while *bytes.get(pos)? == 0xFF {
            pos += 1;
        }
        let code = bytes[pos];
        pos += 1;
        let len = u16::from_be_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]) as usize;
        let segment = bytes.get(pos + 2..pos + len.checked_sub(2)?.checked_add(2)?)?;
        pos += len;
        match code {
            0xC0 | 0xC1 => frame = Some(Frame::parse(segment)?),
            // Progressive, lossless, hierarchical or arithmetic-coded: jpeg-decoder's business.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            0xC4 => tables.parse_huffman(segment)?,
            0xDB => tables.parse_quantization(segment)?,
            0xDD => restart_interval = u16::from_be_bytes([*segment.first()?, *segment.get(1)?]) as usize,
            0xDA => {
                let frame = frame.as_ref()?;
                let scan = Scan::parse(segment, frame, &tables)?;
                let data = bytes.get(pos..)?;
                let values = if parts > 1 && restart_interval == 0 && data.len() < u32::MAX as usize / 16 {
                    decode_parallel(data, frame, &scan, parts)?
                } else {
                    decode_scan(data, frame, &scan, restart_interval)?
                };
                return assemble(frame, &values);
            }
            0xE0..=0xEF | 0xFE => {}
            // DNL, EOI before a scan, or anything unexpected.
            _ => return None,
        }
    }
}

#[derive(Default)]
struct Tables {
    /// Huffman tables by class (0 DC, 1 AC) and id.
    huffman: [[Option<Huffman>; 4]; 2],
    /// The DC entry (zig-zag index 0) of each quantization table.
    dc_quant: [Option<u16>; 4],
}

impl Tables {
    fn parse_huffman(&mut self, mut s: &[u8]) -> Option<()> {
        while !s.is_empty() {
            let (class, id) = ((s[0] >> 4) as usize, (s[0] & 15) as usize);
            let counts: [u8; 16] = s.get(1..17)?.try_into().ok()?;
            let n: usize = counts.iter().map(|c| *c as usize).sum();
            let symbols = s.get(17..17 + n)?;
            if class > 1 || id > 3 {
                return None;
            }
            self.huffman[class][id] = Some(Huffman::new(&counts, symbols, class == 1)?);
            s = &s[17 + n..];
        }
        Some(())
    }

    fn parse_quantization(&mut self, mut s: &[u8]) -> Option<()> {
        while !s.is_empty() {
            let (precision, id) = (s[0] >> 4, (s[0] & 15) as usize);
            let size = match precision {
                0 => 64,
                1 => 128,
                _ => return None,
            };
            let table = s.get(1..1 + size)?;
            let dc = if precision == 0 { table[0] as u16 } else { u16::from_be_bytes([table[0], table[1]]) };
            *self.dc_quant.get_mut(id)? = Some(dc);
            s = &s[1 + size..];
        }
        Some(())
    }
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant: usize,
}

struct Frame {
    width: usize,
    height: usize,
    components: Vec<Component>,
    h_max: usize,
    v_max: usize,
    /// MCUs per row and per column.
    mcus: [usize; 2],
}

impl Frame {
    fn parse(s: &[u8]) -> Option<Frame> {
        let (precision, height, width, n) = (
            *s.first()?,
            u16::from_be_bytes([*s.get(1)?, *s.get(2)?]) as usize,
            u16::from_be_bytes([*s.get(3)?, *s.get(4)?]) as usize,
            *s.get(5)? as usize,
        );
        if precision != 8 || height == 0 || width == 0 || !(n == 1 || n == 3) {
            return None;
        }
        let mut components = Vec::with_capacity(n);
        for c in s.get(6..6 + 3 * n)?.chunks_exact(3) {
            let (h, v) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
            if !(1..=2).contains(&h) || !(1..=2).contains(&v) || c[2] > 3 {
                return None;
            }
            components.push(Component { id: c[0], h, v, quant: c[2] as usize });
        }
        if n == 1 && (components[0].h != 1 || components[0].v != 1) {
            return None;
        }
        // YCbCr as jpeg-decoder reads it (ids 1, 2, 3), chroma at full or half resolution of the luma.
        if n == 3 {
            let ids: Vec<u8> = components.iter().map(|c| c.id).collect();
            if ids != [1, 2, 3]
                || components[1].h != 1
                || components[1].v != 1
                || components[2].h != 1
                || components[2].v != 1
            {
                return None;
            }
        }
        let h_max = components.iter().map(|c| c.h).max()?;
        let v_max = components.iter().map(|c| c.v).max()?;
        let mcus = [width.div_ceil(8 * h_max), height.div_ceil(8 * v_max)];
        Some(Frame { width, height, components, h_max, v_max, mcus })
    }

    /// Each block of an MCU, in scan order: its component and its row and column in the MCU.
    fn layout(&self) -> Vec<(usize, usize, usize)> {
        (self.components.iter().enumerate())
            .flat_map(|(c, comp)| (0..comp.v).flat_map(move |by| (0..comp.h).map(move |bx| (c, by, bx))))
            .collect()
    }

    /// Blocks per row and rows of blocks of component `c`'s plane (whole MCUs, as jpeg-decoder stores it).
    fn blocks(&self, c: usize) -> [usize; 2] {
        [self.mcus[0] * self.components[c].h, self.mcus[1] * self.components[c].v]
    }
}

/// One interleaved scan over every component of the frame: per component, its DC and AC tables and DC quantizer.
struct Scan<'t> {
    tables: Vec<(&'t Huffman, &'t Huffman, i32)>,
}

impl<'t> Scan<'t> {
    fn parse(s: &[u8], frame: &Frame, tables: &'t Tables) -> Option<Scan<'t>> {
        let n = *s.first()? as usize;
        if n != frame.components.len() {
            return None;
        }
        let mut scan = Vec::with_capacity(n);
        for (c, entry) in frame.components.iter().zip(s.get(1..1 + 2 * n)?.chunks_exact(2)) {
            if entry[0] != c.id {
                return None;
            }
            let (dc, ac) = ((entry[1] >> 4) as usize, (entry[1] & 15) as usize);
            let dc_table = tables.huffman[0].get(dc)?.as_ref()?;
            let ac_table = tables.huffman[1].get(ac)?.as_ref()?;
            scan.push((dc_table, ac_table, *tables.dc_quant[c.quant].as_ref()? as i32));
        }
        // Spectral selection 0..63, no successive approximation: a sequential scan.
        if s.get(1 + 2 * n..4 + 2 * n)? != [0, 63, 0] {
            return None;
        }
        Some(Scan { tables: scan })
    }
}

/// A Huffman table: a 9-bit lookup for short codes, the canonical per-length limits for the rest.
#[cfg_attr(test, derive(Clone))]
struct Huffman {
    /// Indexed by the next 9 bits: `(code length, symbol)`, length 0 when the code is longer.
    lookup: Box<[(u8, u8); 1 << LOOKUP_BITS]>,
    /// The same for an AC table read past: `(code length + extra bits, coefficients advanced)`, the advance
    /// [`END_OF_BLOCK`] for EOB. One load and one shift per coefficient.
    skip: Box<[(u8, u8); 1 << LOOKUP_BITS]>,
    /// For an AC table, indexed by the next [`MULTI_BITS`] bits: as many whole symbols (code and extra bits) as
    /// fit in them, up to an EOB and at most 64 coefficients, read at once — the bits they take in the low 4 bits,
    /// the coefficients they advance in the next 7 (an EOB counting as one), bit 11 set when the last is the EOB;
    /// 0 when not even the first fits. Taken only when the block's coefficients read so far plus that advance
    /// stay within 64: otherwise the block ends inside them, and they are read one by one. A photo's blocks are
    /// mostly short codes for small values: several symbols per load.
    multi: Box<[u16; 1 << MULTI_BITS]>,
    /// For a DC table, indexed by the next 9 bits: `(code length + extra bits, DC difference)` when both lie in them,
    /// length 0 otherwise — a block's DC difference in one load and one shift.
    dc: Box<[(u8, i16); 1 << LOOKUP_BITS]>,
    /// For each length 1..=16: the largest code of that length + 1 (0 when none), and the symbol index offset.
    max_code: [i32; 17],
    offset: [i32; 17],
    symbols: Vec<u8>,
}

const LOOKUP_BITS: u32 = 9;
/// Bits of the multi-symbol AC lookup ([`Huffman::multi`]): 8 KB a table, two tables in the L1 cache.
const MULTI_BITS: u32 = 12;
/// [`Huffman::multi`]'s flag for a run of symbols ending with the EOB.
const MULTI_EOB: u32 = 1 << 11;

impl Huffman {
    fn new(counts: &[u8; 16], symbols: &[u8], ac: bool) -> Option<Huffman> {
        let mut lookup = Box::new([(0u8, 0u8); 1 << LOOKUP_BITS]);
        let mut skip = Box::new([(0u8, 0u8); 1 << LOOKUP_BITS]);
        let (mut max_code, mut offset) = ([0i32; 17], [0i32; 17]);
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16usize {
            let n = counts[len - 1] as usize;
            offset[len] = k as i32 - code;
            for _ in 0..n {
                if len as u32 <= LOOKUP_BITS {
                    let shift = LOOKUP_BITS - len as u32;
                    let first = (code as usize) << shift;
                    let sym = *symbols.get(k)?;
                    lookup.get_mut(first..first + (1 << shift))?.fill((len as u8, sym));
                    skip.get_mut(first..first + (1 << shift))?.fill(ac_skip(len as u32, sym));
                }
                code += 1;
                k += 1;
            }
            if code > 1 << len {
                return None;
            }
            max_code[len] = if n > 0 { code } else { 0 };
            code <<= 1;
        }
        let multi = if ac { multi_skip(&skip) } else { Box::new([0; 1 << MULTI_BITS]) };
        let dc = if ac { Box::new([(0, 0); 1 << LOOKUP_BITS]) } else { dc_differences(&lookup) };
        Some(Huffman { lookup, skip, multi, dc, max_code, offset, symbols: symbols.to_vec() })
    }
}

/// [`Huffman::dc`] from the `lookup` table: for each 9-bit window whose code and the extra bits its symbol (a
/// size of at most 11) asks for both lie in it, their bit count and the DC difference they code.
fn dc_differences(lookup: &[(u8, u8); 1 << LOOKUP_BITS]) -> Box<[(u8, i16); 1 << LOOKUP_BITS]> {
    let mut dc = Box::new([(0u8, 0i16); 1 << LOOKUP_BITS]);
    for (index, entry) in dc.iter_mut().enumerate() {
        let (len, size) = (lookup[index].0 as u32, lookup[index].1 as u32);
        if len == 0 || size > 11 || len + size > LOOKUP_BITS {
            continue;
        }
        let extra = (index as u32 >> (LOOKUP_BITS - len - size)) & ((1 << size) - 1);
        *entry = ((len + size) as u8, if size == 0 { 0 } else { extend(extra, size) });
    }
    dc
}

/// [`Huffman::multi`] from the single-symbol `skip` table (whose entries are valid when the code and its extra bits
/// are among the bits that are really there: the rest of a window read past the [`MULTI_BITS`] is zeros).
fn multi_skip(skip: &[(u8, u8); 1 << LOOKUP_BITS]) -> Box<[u16; 1 << MULTI_BITS]> {
    let mut multi = Box::new([0u16; 1 << MULTI_BITS]);
    for (index, entry) in multi.iter_mut().enumerate() {
        let (mut used, mut advanced) = (0u32, 0u32);
        loop {
            let window = ((index << used) & ((1 << MULTI_BITS) - 1)) >> (MULTI_BITS - LOOKUP_BITS);
            let (total, advance) = skip[window];
            if total == 0 || used + total as u32 > MULTI_BITS {
                break;
            }
            if advance == END_OF_BLOCK {
                // Counted as one more coefficient: an EOB is read only while the block is not yet full.
                if advanced < 64 {
                    *entry = (used + total as u32 | (advanced + 1) << 4 | MULTI_EOB) as u16;
                }
                break;
            }
            if advanced + advance as u32 > 64 {
                break;
            }
            used += total as u32;
            advanced += advance as u32;
            *entry = (used | advanced << 4) as u16;
        }
    }
    multi
}

/// Coefficients an AC symbol stands for before the next symbol, or this for end of block.
const END_OF_BLOCK: u8 = 0xFF;

/// `(bits to skip, coefficients advanced)` for AC symbol `sym` (run in the high nibble, size in the low) with a
/// code of `len` bits: a run of zeros then one coefficient of `size` extra bits; ZRL (15, 0) is sixteen zeros.
fn ac_skip(len: u32, sym: u8) -> (u8, u8) {
    let (run, size) = (sym >> 4, sym & 15);
    match (run, size) {
        (15, 0) => (len as u8, 16),
        (_, 0) => (len as u8, END_OF_BLOCK),
        _ => ((len + size as u32) as u8, run + 1),
    }
}

/// The entropy-coded bits, MSB first, with 0xFF00 stuffing removed. At a marker (or the end) it feeds zeros and
/// counts them, so that running past the data is detected.
#[derive(Clone)]
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    /// Valid bits at the top of `acc`.
    n: u32,
    /// Zero bytes fed after the data ended (at a marker or the end of the file).
    padding: u32,
    /// 0xFF00 pairs before `pos` (each one byte of the bit stream).
    stuffed: usize,
}

impl<'a> Bits<'a> {
    /// The bits from byte `from` of the scan's data on (from the next byte when `from` is a stuffed pair's zero).
    fn at(data: &'a [u8], from: usize) -> Bits<'a> {
        let from = if from > 0 && data.get(from - 1) == Some(&0xFF) { from + 1 } else { from }.min(data.len());
        let stuffed = count_ff(&data[..from]);
        Bits { data, pos: from, acc: 0, n: 0, padding: 0, stuffed }
    }

    /// Where the next bit is in the bit stream (stuffing removed, padding counted): the same number for any two
    /// readers at the same bit, whatever they have buffered.
    fn position(&self) -> u64 {
        8 * (self.pos - self.stuffed + self.padding as usize) as u64 - self.n as u64
    }

    /// The data byte the next bit comes from, about (buffered stuffing not counted): where a reader has got to.
    fn byte(&self) -> usize {
        self.pos.saturating_sub(self.n as usize / 8)
    }

    /// Tops the buffer up to at least 56 bits (it may hold up to 63).
    #[inline(always)]
    fn refill(&mut self) {
        // Fast path, without a branch on how full the buffer is: the next 8 bytes hold no 0xFF (no stuffing, no
        // marker): they go in below the valid bits, and the whole bytes that fit count as read. The bits of the
        // next, partly fitting byte are its true bits, so a later refill that ORs it in again changes nothing.
        if let Some(next) = self.data.get(self.pos..self.pos + 8) {
            let w = u64::from_be_bytes(next.try_into().unwrap_or([0xFF; 8]));
            let ones = !w;
            let has_ff = ones.wrapping_sub(0x0101_0101_0101_0101) & !ones & 0x8080_8080_8080_8080 != 0;
            if !has_ff && self.padding == 0 {
                self.acc |= w >> self.n;
                let k = (63 - self.n) >> 3;
                self.pos += k as usize;
                self.n += 8 * k;
                return;
            }
        }
        while self.n <= 55 {
            let mut byte = 0u8;
            if self.padding == 0 {
                match self.data.get(self.pos) {
                    Some(0xFF) if self.data.get(self.pos + 1) == Some(&0) => {
                        byte = 0xFF;
                        self.pos += 2;
                        self.stuffed += 1;
                    }
                    Some(0xFF) | None => self.padding = 1,
                    Some(b) => {
                        byte = *b;
                        self.pos += 1;
                    }
                }
            } else {
                self.padding += 1;
            }
            self.acc |= (byte as u64) << (56 - self.n);
            self.n += 8;
        }
    }

    /// Whether bits fed as padding have been consumed (the data ran out): the zero bytes are the last
    /// `8 * padding` bits of the buffer.
    fn overran(&self) -> bool {
        self.n < 8 * self.padding
    }

    /// Drops the next `count` bits (callers keep at least that many buffered).
    #[inline(always)]
    fn consume(&mut self, count: u32) {
        self.acc <<= count;
        self.n -= count;
    }

    #[inline(always)]
    fn bits(&mut self, count: u32) -> u32 {
        // Callers keep at least 32 bits in the buffer; 1 <= count <= 16.
        let v = (self.acc >> (64 - count)) as u32;
        self.acc <<= count;
        self.n -= count;
        v
    }

    #[inline(always)]
    fn symbol(&mut self, table: &Huffman) -> Option<u8> {
        if self.n < 32 {
            self.refill();
        }
        let (len, sym) = table.lookup[(self.acc >> (64 - LOOKUP_BITS)) as usize];
        if len > 0 {
            self.acc <<= len;
            self.n -= len as u32;
            return Some(sym);
        }
        for len in LOOKUP_BITS as usize + 1..=16 {
            let code = (self.acc >> (64 - len)) as i32;
            if code < table.max_code[len] {
                self.acc <<= len;
                self.n -= len as u32;
                return table.symbols.get((code + table.offset[len]) as usize).copied();
            }
        }
        None
    }

    /// Drops the buffered bits and steps over the restart marker `RST(index % 8)`.
    fn restart(&mut self, index: usize) -> Option<()> {
        if self.overran() {
            return None;
        }
        // Bits still buffered belong to the segment's last byte (its padding ones): the marker follows.
        while self.data.get(self.pos)? != &0xFF {
            self.pos += 1;
        }
        while self.data.get(self.pos + 1)? == &0xFF {
            self.pos += 1;
        }
        if *self.data.get(self.pos + 1)? != 0xD0 + (index % 8) as u8 {
            return None;
        }
        self.pos += 2;
        (self.acc, self.n, self.padding) = (0, 0, 0);
        Some(())
    }
}

/// How many 0xFF bytes `s` holds. In byte-wide counters over 255-byte chunks, which the compiler vectorises: a plain
/// filter and count ran at about a byte per nanosecond, and counting up to each part's start made decoding in more
/// parts slower than in fewer.
fn count_ff(s: &[u8]) -> usize {
    s.chunks(255).map(|c| c.iter().fold(0u8, |n, &b| n + (b == 0xFF) as u8) as usize).sum()
}

/// The Huffman-coded extra bits of a DC difference: `count` bits, negative when the first is 0 (F.2.2.1).
#[inline(always)]
fn extend(value: u32, count: u32) -> i16 {
    if value < 1 << (count - 1) {
        (value as i32 + (-1i32 << count) + 1) as i16
    } else {
        value as i16
    }
}

/// Reads one block: its DC difference, its AC coefficients skipped. `None` when the data does not decode.
#[inline(always)]
fn read_block(bits: &mut Bits, dc_table: &Huffman, ac_table: &Huffman) -> Option<i16> {
    // Topped up at every block, not when it runs low: its fast path has no branch on the fill, and a branch on it
    // here was mispredicted often.
    bits.refill();
    let (total, diff) = dc_table.dc[(bits.acc >> (64 - LOOKUP_BITS)) as usize];
    let diff = if total > 0 {
        bits.consume(total as u32);
        diff
    } else {
        // A longer code, or more extra bits than fit: the symbol, then its extra bits.
        let s = bits.symbol(dc_table)? as u32;
        if s > 11 {
            return None;
        }
        if s == 0 {
            0
        } else {
            extend(bits.bits(s), s)
        }
    };
    // The AC coefficients: read past them, several symbols at a time while they stay within the block.
    let mut k = 1u32;
    while k < 64 {
        if bits.n < 32 {
            bits.refill();
        }
        let many = ac_table.multi[(bits.acc >> (64 - MULTI_BITS)) as usize] as u32;
        if many != 0 && k + (many >> 4 & 127) <= 64 {
            bits.consume(many & 15);
            k += many >> 4 & 127;
            if many & MULTI_EOB != 0 {
                break;
            }
            continue;
        }
        let (total, advance) = ac_table.skip[(bits.acc >> (64 - LOOKUP_BITS)) as usize];
        let advance = if total > 0 {
            bits.consume(total as u32);
            advance
        } else {
            // A code longer than the lookup: the slow path, then its extra bits.
            let sym = bits.symbol(ac_table)?;
            // Skipped, not read: `bits(0)` would shift by 64 (a panic where overflow is checked, in debug builds).
            bits.consume((sym & 15) as u32);
            ac_skip(0, sym).1
        };
        if advance == END_OF_BLOCK {
            break;
        }
        k += advance as u32;
    }
    (k <= 64).then_some(diff)
}

/// A block's value at 1/8 scale from its component's DC coefficient: its 1x1 inverse DCT, `(DC * q + 1024) / 8`
/// clamped to 0..=255 (jpeg-decoder's arithmetic).
#[inline(always)]
fn dc_value(dc: i16, q: i32) -> u8 {
    ((dc as i32 * q + 1024) / 8).clamp(0, 255) as u8
}

/// The blocks' values being filled in scan order (MCU after MCU, each MCU's blocks in [`Frame::layout`] order),
/// one byte per block ([`dc_value`]) — the order both decoders produce them in; [`assemble`] reads the
/// components' rows out of it.
struct Blocks {
    values: Vec<u8>,
    /// Per place in the MCU: the block's component, and that component's DC quantizer.
    components: Vec<usize>,
    quant: Vec<i32>,
    /// Each component's DC predictor.
    predictors: [i16; 3],
    /// Blocks written, and the next one's place in the MCU.
    next: usize,
    phase: usize,
}

impl Blocks {
    fn new(frame: &Frame, scan: &Scan) -> Blocks {
        let components: Vec<usize> = frame.layout().iter().map(|b| b.0).collect();
        let quant = components.iter().map(|&c| scan.tables[c].2).collect();
        let values = vec![0u8; frame.mcus[0] * frame.mcus[1] * components.len()];
        Blocks { values, components, quant, predictors: [0; 3], next: 0, phase: 0 }
    }

    /// Component of the next block.
    #[inline(always)]
    fn component(&self) -> usize {
        self.components[self.phase]
    }

    /// Steps past `count` blocks.
    fn advance(&mut self, count: usize) {
        self.next += count;
        self.phase = (self.phase + count) % self.components.len();
    }

    /// Steps past one block (no division: this is once per block in the decoding loop).
    #[inline(always)]
    fn advance_one(&mut self) {
        self.next += 1;
        self.phase += 1;
        if self.phase == self.components.len() {
            self.phase = 0;
        }
    }

    /// Reads and writes the next block. `None` when the data does not decode.
    #[inline(always)]
    fn decode(&mut self, bits: &mut Bits, scan: &Scan) -> Option<()> {
        let c = self.component();
        let (dc, ac, _) = scan.tables[c];
        let diff = read_block(bits, dc, ac)?;
        self.predictors[c] = self.predictors[c].wrapping_add(diff);
        *self.values.get_mut(self.next)? = dc_value(self.predictors[c], self.quant[self.phase]);
        self.advance_one();
        Some(())
    }
}

/// Decodes the scan into one value per block, in scan order ([`Blocks`]).
fn decode_scan(data: &[u8], frame: &Frame, scan: &Scan, restart_interval: usize) -> Option<Vec<u8>> {
    let mut out = Blocks::new(frame, scan);
    let mut bits = Bits::at(data, 0);
    let total = frame.mcus[0] * frame.mcus[1];
    let mut restarts = 0;
    for mcu in 0..total {
        if restart_interval > 0 && mcu > 0 && mcu % restart_interval == 0 {
            bits.restart(restarts)?;
            restarts += 1;
            out.predictors = [0; 3];
        }
        for _ in 0..out.components.len() {
            out.decode(&mut bits, scan)?;
        }
    }
    (!bits.overran()).then_some(out.values)
}

/// Photos below this many bytes are decoded on one thread.
const PARALLEL_BYTES: usize = 64 << 10;
/// On more than one thread the scan is cut into this many parts per thread, taken by the threads as they come free.
/// One: finer parts cost more than they gain in balance (measured on the 12 MP photo, BENCHMARKS.md session 10).
const PARTS_PER_THREAD: usize = 1;
/// Taken runs' values are written in pieces of at most this many blocks, split over the threads (small enough
/// that the test photos, decoded in parts, are written in several pieces too).
const FILL_PIECE: usize = 1 << 10;
/// Parts are at least this long (each costs a few blocks to resynchronise, and a task).
const MIN_PART_BYTES: usize = 8 << 10;

/// How many parts [`decode_parallel`] cuts `bytes` of data into on `threads` threads.
fn parts_for(bytes: usize, threads: usize) -> usize {
    if threads < 2 || bytes < PARALLEL_BYTES {
        return 1;
    }
    (threads * PARTS_PER_THREAD).min(bytes / MIN_PART_BYTES).max(2)
}

/// A decoder's run from a guessed start, part way into the data: a byte boundary, taken for the start of an MCU.
/// Huffman codes resynchronise: after a few blocks such a run usually reads the very blocks the true decoder
/// reads, from the same bit on. Per block: where it started, its place in the MCU, and the running sum of the DC
/// differences of its component (by that place) up to it — from which, once the true decoder's predictors where
/// it meets the run are known, every later block's DC follows.
struct Run<'a> {
    starts: Vec<u32>,
    phases: Vec<u8>,
    sums: Vec<i16>,
    /// Record indices at which a block did not decode (the run then went on one bit further, as a new MCU).
    errors: Vec<usize>,
    /// Where the run stopped (at the end of its part, or of the data), and the bit position where the data ended,
    /// if it got there.
    end: Bits<'a>,
    data_end: Option<u64>,
}

impl Run<'_> {
    /// Each component's running sum before record `record` (0 where none of its blocks comes before).
    fn sums_before(&self, record: usize, components: &[usize], count: usize) -> [i16; 3] {
        let (mut sums, mut found) = ([0i16; 3], [false; 3]);
        let mut left = count;
        for r in (0..record).rev() {
            let c = components[self.phases[r] as usize];
            if !found[c] {
                (found[c], sums[c]) = (true, self.sums[r]);
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
        sums
    }
}

/// Speculates over data bytes `from..to` (see [`Run`]).
fn speculate<'a>(data: &'a [u8], from: usize, to: usize, scan: &Scan, components: &[usize]) -> Run<'a> {
    let mut bits = Bits::at(data, from);
    let blocks_guess = (to - from) / 2;
    let mut run = Run {
        starts: Vec::with_capacity(blocks_guess),
        phases: Vec::with_capacity(blocks_guess),
        sums: Vec::with_capacity(blocks_guess),
        errors: Vec::new(),
        end: bits.clone(),
        data_end: None,
    };
    let (mut phase, mut sums) = (0, [0i16; 3]);
    // No refill here: `read_block` tops the buffer up at every block, and `byte` and `overran` do not need one.
    loop {
        if bits.byte() >= to || bits.overran() {
            break;
        }
        let c = components[phase];
        let (dc, ac, _) = scan.tables[c];
        let start = bits.position();
        match read_block(&mut bits, dc, ac) {
            Some(diff) => {
                sums[c] = sums[c].wrapping_add(diff);
                run.starts.push(start as u32);
                run.phases.push(phase as u8);
                run.sums.push(sums[c]);
                phase = if phase + 1 == components.len() { 0 } else { phase + 1 };
            }
            None => {
                run.errors.push(run.starts.len());
                if bits.n < 32 {
                    bits.refill();
                }
                bits.bits(1);
                phase = 0;
            }
        }
    }
    if bits.padding > 0 {
        run.data_end = Some(8 * (bits.pos - bits.stuffed) as u64);
    }
    run.end = bits;
    run
}

/// The true decoder from the start of the data until it has read past byte `to` (or read every block): the blocks
/// so far, and where it stands. `None` when the data does not decode.
fn decode_head<'a>(data: &'a [u8], to: usize, frame: &Frame, scan: &Scan) -> Option<(Blocks, Bits<'a>)> {
    let mut out = Blocks::new(frame, scan);
    let mut bits = Bits::at(data, 0);
    let total = out.values.len();
    // No refill here: `read_block` tops the buffer up at every block.
    loop {
        if out.next == total || bits.byte() >= to {
            return Some((out, bits));
        }
        out.decode(&mut bits, scan)?;
    }
}

/// A run's blocks taken as the true decoder's: its records `records`, blocks `first..` of the scan; per place in
/// the MCU, what to add to the run's running sum to get the block's DC (the true predictor where they met, less
/// the run's sum there).
struct Taken {
    run: usize,
    records: std::ops::Range<usize>,
    first: usize,
    offsets: Vec<i16>,
}

/// [`decode_scan`] on the current executor's threads: the data cut into `parts` by bytes, each part taken by
/// whichever thread is free — the first decoded for real ([`decode_head`]), the others speculatively ([`Run`]).
/// Then the true decoder goes on from the end of the first part until it stands where the next run has a block
/// start in the same place of the MCU — from there on the run read what it would read, and its blocks are taken
/// as they are — steps to that run's end, and so on to the last part; where a run never meets it (no
/// resynchronisation), the true decoder reads that part itself. This walk touches only the few blocks before each
/// meeting point and a few records per run; the taken runs' values are then written in parallel. Same values as
/// decoding on one thread.
fn decode_parallel(data: &[u8], frame: &Frame, scan: &Scan, parts: usize) -> Option<Vec<u8>> {
    let bounds: Vec<usize> = (0..=parts).map(|i| i * data.len() / parts).collect();
    let components: Vec<usize> = frame.layout().iter().map(|b| b.0).collect();
    let count = frame.components.len();
    // The first part is the true decoder's own start: it is decoded, not speculated (no records to keep, no values
    // to fill in afterwards). The others are speculated.
    let head = std::sync::OnceLock::new();
    let runs: Vec<std::sync::OnceLock<Run>> = (1..parts).map(|_| std::sync::OnceLock::new()).collect();
    crate::kernels::parallel::for_each_index(parts, |i| match i {
        0 => {
            let _ = head.set(decode_head(data, bounds[1], frame, scan));
        }
        _ => {
            let _ = runs[i - 1].set(speculate(data, bounds[i], bounds[i + 1], scan, &components));
        }
    });
    let (mut out, mut bits) = head.into_inner()??;
    let runs: Vec<Run> = runs.into_iter().map(|r| r.into_inner()).collect::<Option<_>>()?;
    let total = out.values.len();
    let mut taken = Vec::with_capacity(parts);
    let mut finished = false;
    'runs: for (i, run) in runs.iter().enumerate() {
        let mut next = 0;
        while out.next < total {
            let at = bits.position();
            while next < run.starts.len() && (run.starts[next] as u64) < at {
                next += 1;
            }
            if next == run.starts.len() {
                break;
            }
            if run.starts[next] as u64 == at && run.phases[next] as usize == out.phase {
                let take = (run.starts.len() - next).min(total - out.next);
                let whole = take == run.starts.len() - next;
                // A block the run could not read, after the meeting point: the true decoder would fail there too
                // (unless it lies past the last block).
                if run.errors.iter().any(|&e| e > next && (whole || e < next + take)) {
                    return None;
                }
                let (before, after) =
                    (run.sums_before(next, &components, count), run.sums_before(next + take, &components, count));
                let offsets = components.iter().map(|&c| out.predictors[c].wrapping_sub(before[c])).collect();
                for c in 0..count {
                    out.predictors[c] = out.predictors[c].wrapping_add(after[c].wrapping_sub(before[c]));
                }
                taken.push(Taken { run: i, records: next..next + take, first: out.next, offsets });
                out.advance(take);
                if whole {
                    bits = run.end.clone();
                    break;
                }
                // The scan's last block was read: the data must not have run out before its end.
                let end = run.starts[next + take] as u64;
                if run.data_end.is_some_and(|e| end > e) {
                    return None;
                }
                finished = true;
                break 'runs;
            }
            out.decode(&mut bits, scan)?;
        }
    }
    if !finished {
        while out.next < total {
            out.decode(&mut bits, scan)?;
        }
        if bits.overran() {
            return None;
        }
    }
    // The taken runs' values, in pieces of at most FILL_PIECE blocks (one run is often most of the work), each
    // written by whichever thread is free.
    let (mut values, quant) = (out.values, out.quant);
    let mut slots = Vec::with_capacity(taken.len());
    let (mut rest, mut at) = (&mut values[..], 0);
    for t in &taken {
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(t.first - at);
        let (mine, tail) = tail.split_at_mut(t.records.len());
        for (k, piece) in mine.chunks_mut(FILL_PIECE).enumerate() {
            let from = t.records.start + k * FILL_PIECE;
            slots.push(std::sync::Mutex::new(Some((t, from..from + piece.len(), piece))));
        }
        (rest, at) = (tail, t.first + t.records.len());
    }
    crate::kernels::parallel::for_each_index(slots.len(), |i| {
        let Some((t, records, out)) = slots[i].lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let run = &runs[t.run];
        for (value, (sum, phase)) in out.iter_mut().zip(run.sums[records.clone()].iter().zip(&run.phases[records])) {
            let p = *phase as usize;
            *value = dc_value(sum.wrapping_add(t.offsets[p]), quant[p]);
        }
    });
    Some(values)
}

/// The blocks' values (in scan order, [`Blocks`]) upsampled and colour-converted as jpeg-decoder does at 1/8 scale.
fn assemble(frame: &Frame, values: &[u8]) -> Option<Rgb> {
    let (ow, oh) = (frame.width.div_ceil(8), frame.height.div_ceil(8));
    let mut pixels = vec![0u8; ow * oh * 3];
    if frame.components.len() == 1 {
        // One component: scan order is the plane's.
        let stride = frame.mcus[0];
        for (y, row) in pixels.chunks_exact_mut(ow * 3).enumerate() {
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                px.fill(values[y * stride + x]);
            }
        }
        return Some(Rgb { width: ow as u32, height: oh as u32, pixels });
    }
    // Each component's size at 1/8 scale, as jpeg-decoder computes it.
    let sizes: Vec<[usize; 2]> = frame
        .components
        .iter()
        .map(|c| [(frame.width * c.h).div_ceil(frame.h_max * 8), (frame.height * c.v).div_ceil(frame.v_max * 8)])
        .collect();
    let line_len = sizes.iter().map(|s| s[0]).max()? * frame.h_max;
    let layout = frame.layout();
    // jpeg-decoder converts with SSSE3 on x86 CPUs that have it (all pixels of a row but its last 8 to 15), in
    // 16-bit arithmetic that rounds differently from its scalar code.
    let vector_pixels = if crate::kernels::isa().ssse3 { (ow / 8).saturating_sub(1) * 8 } else { 0 };
    let assembly = Assembly { frame, values, sizes, layout, width: ow, height: oh, line_len, vector_pixels };
    // Rows split over the current executor's threads, each with its own line buffers.
    crate::kernels::parallel::for_each_chunk(&mut pixels, ow * 3, 1, |first_row, rows| assembly.rows(first_row, rows));
    Some(Rgb { width: ow as u32, height: oh as u32, pixels })
}

/// What [`assemble`] needs to make output rows: the frame, the block values in scan order, each component's plane
/// size at 1/8 scale, the MCU layout, the output size, the line buffers' length, and how many pixels of a row
/// jpeg-decoder converts with its SSSE3 arithmetic.
struct Assembly<'a> {
    frame: &'a Frame,
    values: &'a [u8],
    sizes: Vec<[usize; 2]>,
    layout: Vec<(usize, usize, usize)>,
    width: usize,
    height: usize,
    line_len: usize,
    vector_pixels: usize,
}

impl Assembly<'_> {
    /// Output rows `first_row..` into `rows` (whole rows of RGB), compiled for AVX2 where the CPU has it: the
    /// upsampling and colour conversion loops vectorise twice as wide, with the byte shuffles they need.
    fn rows(&self, first_row: usize, rows: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::isa().avx2 {
            #[target_feature(enable = "avx2")]
            fn avx2(assembly: &Assembly, first_row: usize, rows: &mut [u8]) {
                assembly.rows_portable(first_row, rows)
            }
            // SAFETY: the CPU has AVX2.
            return unsafe { avx2(self, first_row, rows) };
        }
        self.rows_portable(first_row, rows)
    }

    #[inline(always)]
    fn rows_portable(&self, first_row: usize, rows: &mut [u8]) {
        let (frame, ow, oh) = (self.frame, self.width, self.height);
        let mut lines = vec![vec![0u8; self.line_len]; 3];
        // Per component, the input rows gathered lately, row r in slot r % 4: an output row reads at most two
        // neighbouring input rows, and a vertically upsampled row is read by about four output rows.
        let mut gathered: Vec<[(usize, Vec<u8>); 4]> =
            (0..3).map(|_| std::array::from_fn(|_| (usize::MAX, vec![0u8; self.line_len]))).collect();
        let mut sums = vec![0u16; self.line_len];
        for (row, out) in (first_row..).zip(rows.chunks_exact_mut(ow * 3)) {
            for (c, comp) in frame.components.iter().enumerate() {
                let h2 = comp.h * 2 == frame.h_max && ow != 1;
                let v2 = comp.v * 2 == frame.v_max && oh != 1;
                let (near_row, far_row) = source_rows(row, v2, self.sizes[c][1]);
                let width = frame.blocks(c)[0];
                for r in [near_row, far_row] {
                    let slot = &mut gathered[c][r % 4];
                    if slot.0 != r {
                        gather_row(frame, &self.layout, self.values, c, r, &mut slot.1[..width]);
                        slot.0 = r;
                    }
                }
                let (near, far) = (&gathered[c][near_row % 4].1, &gathered[c][far_row % 4].1);
                upsample_row(near, far, self.sizes[c][0], h2, v2, ow, &mut sums, &mut lines[c]);
            }
            let (vector_out, scalar_out) = out.split_at_mut(self.vector_pixels * 3);
            let inputs =
                |from: usize, to: usize| lines[0][from..to].iter().zip(&lines[1][from..to]).zip(&lines[2][from..to]);
            // Two branch-free loops (the first vectorises).
            for (px, ((y, cb), cr)) in vector_out.chunks_exact_mut(3).zip(inputs(0, self.vector_pixels)) {
                px.copy_from_slice(&ycbcr_to_rgb_16bit(*y, *cb, *cr));
            }
            for (px, ((y, cb), cr)) in scalar_out.chunks_exact_mut(3).zip(inputs(self.vector_pixels, ow)) {
                px.copy_from_slice(&ycbcr_to_rgb(*y, *cb, *cr));
            }
        }
    }
}

/// The rows of a component's plane that output row `row` reads: itself, or when upsampled vertically
/// (`v2`) the nearer and the farther input row of jpeg-decoder's triangle filter (the previous input row for even
/// output rows, the next for odd ones; `height` input rows).
fn source_rows(row: usize, v2: bool, height: usize) -> (usize, usize) {
    if !v2 {
        return (row, row);
    }
    let row_near = row as f32 / 2.0;
    let row_far = (row_near + row_near.fract() * 3.0 - 0.25).min((height - 1) as f32);
    (row_near as usize, row_far as usize)
}

/// Row `row` of component `c`'s plane (whole MCUs wide: `out.len()` blocks), gathered from the values in scan
/// order.
fn gather_row(frame: &Frame, layout: &[(usize, usize, usize)], values: &[u8], c: usize, row: usize, out: &mut [u8]) {
    let comp = &frame.components[c];
    let (mcu_row, by) = (row / comp.v, row % comp.v);
    let per_mcu = layout.len();
    let mcus = &values[mcu_row * frame.mcus[0] * per_mcu..(mcu_row + 1) * frame.mcus[0] * per_mcu];
    for bx in 0..comp.h {
        let Some(place) = layout.iter().position(|b| *b == (c, by, bx)) else { continue };
        for (x, mcu) in mcus.chunks_exact(per_mcu).enumerate() {
            out[x * comp.h + bx] = mcu[place];
        }
    }
}

/// An output row of one component, upsampled by 2 horizontally (`h2`) and/or vertically (`v2`, from its `near` and
/// `far` input rows, [`source_rows`]) with jpeg-decoder's triangle filters (its `UpsamplerH1V1`, `H2V1`, `H1V2`,
/// `H2V2`); `width` input values. `sums` is scratch space for the 2x2 filter's column sums.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn upsample_row(
    near: &[u8],
    far: &[u8],
    width: usize,
    h2: bool,
    v2: bool,
    out_width: usize,
    sums: &mut [u16],
    out: &mut [u8],
) {
    match (h2, v2) {
        (false, false) => out[..out_width].copy_from_slice(&near[..out_width]),
        (false, true) => {
            for i in 0..out_width {
                out[i] = ((3 * near[i] as u32 + far[i] as u32 + 2) >> 2) as u8;
            }
        }
        (true, false) => {
            if width == 1 {
                out[0] = near[0];
                out[1] = near[0];
                return;
            }
            out[0] = near[0];
            out[1] = ((near[0] as u32 * 3 + near[1] as u32 + 2) >> 2) as u8;
            for i in 1..width - 1 {
                let sample = 3 * near[i] as u32 + 2;
                out[i * 2] = ((sample + near[i - 1] as u32) >> 2) as u8;
                out[i * 2 + 1] = ((sample + near[i + 1] as u32) >> 2) as u8;
            }
            out[(width - 1) * 2] = ((near[width - 1] as u32 * 3 + near[width - 2] as u32 + 2) >> 2) as u8;
            out[(width - 1) * 2 + 1] = near[width - 1];
        }
        (true, true) => {
            if width == 1 {
                let value = ((3 * near[0] as u32 + far[0] as u32 + 2) >> 2) as u8;
                out[0] = value;
                out[1] = value;
                return;
            }
            // The column sums first, then each output pair from two neighbouring sums: two loops with no carried
            // value, which vectorise (one loop carrying the last sum did not).
            let t = &mut sums[..width];
            for ((t, &n), &f) in t.iter_mut().zip(&near[..width]).zip(&far[..width]) {
                *t = 3 * n as u16 + f as u16;
            }
            out[0] = ((t[0] + 2) >> 2) as u8;
            for (pair, t) in out[1..width * 2 - 1].chunks_exact_mut(2).zip(t.windows(2)) {
                let (t0, t1) = (t[0], t[1]);
                pair[0] = ((3 * t0 + t1 + 8) >> 4) as u8;
                pair[1] = ((3 * t1 + t0 + 8) >> 4) as u8;
            }
            out[width * 2 - 1] = ((t[width - 1] + 2) >> 2) as u8;
        }
    }
}

/// jpeg-decoder's SSSE3 YCbCr to RGB, one pixel at a time: 6 fractional bits, saturating 16-bit adds and
/// rounding high multiplies (`pmulhrsw`).
#[inline(always)]
fn ycbcr_to_rgb_16bit(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    const SHIFT: u32 = 6;
    let mulhrs = |a: i16, b: i16| ((a as i32 * b as i32 + 0x4000) >> 15) as i16;
    let y = ((y as i16) << SHIFT).saturating_add(1 << (SHIFT - 1));
    let cb = ((cb as i16) << SHIFT).saturating_sub(128 << SHIFT);
    let cr = ((cr as i16) << SHIFT).saturating_sub(128 << SHIFT);
    let r = y.saturating_add(mulhrs(cr, 13173).saturating_add(cr));
    let g = y.saturating_sub(mulhrs(cb, 11276).saturating_add(mulhrs(cr, 23401)));
    let b = y.saturating_add(mulhrs(cb, 25297).saturating_add(cb));
    [r, g, b].map(|v| (v >> SHIFT).clamp(0, 255) as u8)
}

/// jpeg-decoder's fixed-point YCbCr to RGB (20 fractional bits).
#[inline(always)]
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    const SHIFT: i32 = 20;
    // stbi__f2f: (x * 2^20 + 0.5) as i32, for 1.402, 0.34414, 0.71414 and 1.772.
    const F: [i32; 4] = [1_470_104, 360_857, 748_830, 1_858_077];
    let clamp = |v: i32| (v >> SHIFT).clamp(0, 255) as u8;
    let y = y as i32 * (1 << SHIFT) + (1 << (SHIFT - 1));
    let (cb, cr) = (cb as i32 - 128, cr as i32 - 128);
    [clamp(y + F[0] * cr), clamp(y - F[1] * cb - F[2] * cr), clamp(y + F[3] * cb)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn photos() -> Vec<PathBuf> {
        let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
        let mut files: Vec<PathBuf> = ["photos", "jpeg"]
            .iter()
            .flat_map(|d| std::fs::read_dir(data.join(d)).unwrap().map(|e| e.unwrap().path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect();
        files.sort();
        assert!(files.len() >= 8, "test JPEGs missing: {files:?}");
        files
    }

    /// jpeg-decoder's own 1/8-scale decoding, as RGB.
    fn reference(bytes: &[u8]) -> Rgb {
        let mut d = jpeg_decoder::Decoder::new(bytes);
        d.read_info().unwrap();
        let (w, h) = d.scale(1, 1).unwrap();
        let data = d.decode().unwrap();
        let pixels = match d.info().unwrap().pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => data,
            jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|v| [*v; 3]).collect(),
            other => panic!("unexpected {other:?}"),
        };
        Rgb { width: w as u32, height: h as u32, pixels }
    }

    #[test]
    fn gives_jpeg_decoders_eighth_scale_byte_for_byte() {
        for path in photos() {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let ours = decode_eighth(&bytes);
            if name.contains("progressive") {
                assert!(ours.is_none(), "{name}: progressive JPEGs are left to jpeg-decoder");
                continue;
            }
            let ours = ours.unwrap_or_else(|| panic!("{name}: not decoded"));
            let want = reference(&bytes);
            assert_eq!((ours.width, ours.height), (want.width, want.height), "{name}");
            // jpeg-decoder's WebAssembly SIMD colour conversion rounds green one step off its scalar and SSSE3 ones
            // (its own comment says so); ours is the scalar one's, so there the reference is within one step.
            let tolerance = if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) { 1 } else { 0 };
            let off = |(a, b): &(&u8, &u8)| a.abs_diff(**b) > tolerance;
            let differ = ours.pixels.iter().zip(&want.pixels).filter(off).count();
            for (i, (a, b)) in ours.pixels.iter().zip(&want.pixels).enumerate().filter(|(_, ab)| off(ab)).take(40) {
                eprintln!(
                    "{name} px {} ({}, {}) c{}: ours {a} want {b}",
                    i / 3,
                    (i / 3) % ours.width as usize,
                    (i / 3) / ours.width as usize,
                    i % 3
                );
            }
            assert_eq!(differ, 0, "{name}: {differ} of {} values differ", want.pixels.len());
        }
    }

    /// The multi-symbol AC lookup and the DC lookup of code and extra bits at once read what reading one symbol at
    /// a time reads — same DC differences, same bit after each block, same failures — on real photos' data, and
    /// on that data read with the wrong tables (bit streams of any kind).
    #[test]
    fn reading_several_symbols_at_once_reads_what_one_at_a_time_reads() {
        let mut blocks = 0;
        for path in photos() {
            let bytes = std::fs::read(&path).unwrap();
            let mut tables = Tables::default();
            let mut pos = 2;
            let data = loop {
                let (code, len) = (bytes[pos + 1], u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]) as usize);
                if code == 0xC4 {
                    tables.parse_huffman(&bytes[pos + 4..pos + 2 + len]).unwrap();
                }
                pos += 2 + len;
                if code == 0xDA {
                    break &bytes[pos..];
                }
            };
            let Some(dc) = tables.huffman[0][0].as_ref() else { continue };
            let mut dc_single = dc.clone();
            dc_single.dc.fill((0, 0));
            for ac in tables.huffman[1].iter().flatten() {
                let mut single = ac.clone();
                single.multi.fill(0);
                let (mut a, mut b) = (Bits::at(data, 0), Bits::at(data, 0));
                while !a.overran() {
                    let (x, y) = (read_block(&mut a, dc, ac), read_block(&mut b, &dc_single, &single));
                    assert_eq!((x, a.position()), (y, b.position()), "{}: block {blocks}", path.display());
                    if x.is_none() {
                        for bits in [&mut a, &mut b] {
                            if bits.n < 32 {
                                bits.refill();
                            }
                        }
                        a.bits(1);
                        b.bits(1);
                    }
                    blocks += 1;
                }
            }
        }
        assert!(blocks > 50_000, "{blocks} blocks read");
    }

    /// The scan cut into parts, decoded speculatively and stitched where the true decoder meets each part's run:
    /// the same bytes as one decoder, for any number of parts (more parts than a small photo has MCUs included),
    /// on a pool of threads or on one.
    #[test]
    fn decoding_in_parts_gives_the_same_bytes() {
        for path in photos() {
            let bytes = std::fs::read(&path).unwrap();
            let Some(want) = decode_eighth_in_parts(&bytes, 1) else { continue };
            for parts in [2, 3, 4, 7, 16, 64] {
                let got = decode_eighth_in_parts(&bytes, parts)
                    .unwrap_or_else(|| panic!("{}: {parts} parts: not decoded", path.display()));
                assert!(got.pixels == want.pixels, "{}: {parts} parts differ", path.display());
            }
            for parts in [3, 24] {
                let pooled =
                    crate::kernels::parallel::with_threads(3, || decode_eighth_in_parts(&bytes, parts)).unwrap();
                assert!(pooled.pixels == want.pixels, "{}: {parts} parts on 3 threads", path.display());
            }
        }
    }

    #[test]
    fn truncated_or_corrupted_data_is_declined_or_decoded_never_a_panic() {
        for path in photos() {
            let bytes = std::fs::read(&path).unwrap();
            for cut in [300, bytes.len() / 2, bytes.len() - 200] {
                for parts in [1, 3] {
                    assert!(
                        decode_eighth_in_parts(&bytes[..cut], parts).is_none(),
                        "{}: cut at {cut} decoded in {parts}",
                        path.display()
                    );
                }
            }
            // Flipped bits anywhere: whatever comes back, it comes back.
            let mut seed = 99u32;
            for _ in 0..200 {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let mut b = bytes.clone();
                let i = (seed as usize >> 4) % b.len();
                b[i] ^= 1 << (seed % 8);
                // In parts: the same answer as one decoder, whatever the damage.
                let (one, three) = (decode_eighth_in_parts(&b, 1), decode_eighth_in_parts(&b, 3));
                assert_eq!(one.map(|r| r.pixels), three.map(|r| r.pixels), "{}: flipped bit at {i}", path.display());
            }
        }
    }
}
