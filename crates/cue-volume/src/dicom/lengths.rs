//! Every declared length of a DICOM file checked against the bytes that follow it, before
//! dicom-object parses the file. dicom-object 0.10.1 allocates and zeroes an element's declared
//! length before it reads the value, so a 10 KB file whose one element claims 4 GB took 25 s
//! and 4.1 GB of memory to be refused (found by `fuzz/` read_dicom). This walk reads only the
//! element headers (and seeks over the values), so a lie is refused at once, naming the element.
//!
//! The walk knows the four encodings (explicit and implicit VR little endian, explicit VR big
//! endian, deflate), sequences and items of defined and undefined length, and encapsulated
//! pixel data. Anything else it leaves to dicom-object, which reports it in its own words.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_core::VR;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_dictionary_std::StandardDataDictionary;
use flate2::read::DeflateDecoder;

use crate::error::Problem;

const PREAMBLE_AND_MARKER: u64 = 132;
const UNDEFINED: u32 = u32::MAX;
const MAX_DEPTH: usize = 32;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);

/// Checks the file at `path` (preamble and `DICM` marker included).
pub fn check_file(path: &Path) -> Result<(), Problem> {
    let file = std::fs::File::open(path).map_err(|e| Problem::Dicom(format!("cannot open ({e})")))?;
    let size = file.metadata().map_err(|e| Problem::Dicom(format!("cannot read ({e})")))?.len();
    // `at` keeps the position within the file, however short it is.
    check(Seekable { reader: BufReader::with_capacity(8192, file), position: 0, size }.at(PREAMBLE_AND_MARKER)?)
}

/// Checks a file held in memory, starting after its 128-byte preamble (at `DICM`).
pub fn check_bytes(after_preamble: &[u8]) -> Result<(), Problem> {
    let size = after_preamble.len() as u64;
    check(Seekable { reader: io::Cursor::new(after_preamble), position: 0, size }.at(4)?)
}

fn check<R: Read + Seek>(mut source: Seekable<R>) -> Result<(), Problem> {
    let syntax = walk_meta(&mut source)?;
    let Some(syntax) = syntax else { return Ok(()) };
    if syntax.deflated {
        let mut rest = Streamed { reader: DeflateDecoder::new(source.reader), position: 0 };
        return Walk { encoding: syntax.encoding, source: &mut rest }.dataset(None, 0);
    }
    Walk { encoding: syntax.encoding, source: &mut source }.dataset(None, 0)
}

fn io_problem(error: io::Error) -> Problem {
    Problem::Dicom(format!("cannot read ({error})"))
}

/// Where the walk reads: a file or buffer whose end is known, or a stream (deflate) whose end
/// shows only when it is reached.
trait Source {
    /// Fills `buf`; `Ok(false)` at a clean end before the first byte.
    fn read_or_end(&mut self, buf: &mut [u8]) -> io::Result<bool>;
    /// Passes over `count` bytes; returns how many there were.
    fn skip(&mut self, count: u64) -> io::Result<u64>;
    /// Bytes read so far.
    fn position(&self) -> u64;
    /// Bytes left, when known.
    fn left(&self) -> Option<u64>;
}

struct Seekable<R> {
    reader: R,
    position: u64,
    size: u64,
}

impl<R: Read + Seek> Seekable<R> {
    fn at(mut self, position: u64) -> Result<Self, Problem> {
        self.position = position.min(self.size);
        self.reader.seek(SeekFrom::Start(self.position)).map_err(io_problem)?;
        Ok(self)
    }
}

fn read_or_end(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn whole_or_end(filled: usize, wanted: usize) -> io::Result<bool> {
    match filled {
        0 => Ok(false),
        n if n == wanted => Ok(true),
        _ => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

impl<R: Read + Seek> Source for Seekable<R> {
    fn read_or_end(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let filled = read_or_end(&mut self.reader, buf)?;
        self.position += filled as u64;
        whole_or_end(filled, buf.len())
    }

    fn skip(&mut self, count: u64) -> io::Result<u64> {
        let skipped = count.min(self.size - self.position);
        self.reader.seek_relative(skipped as i64)?;
        self.position += skipped;
        Ok(skipped)
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn left(&self) -> Option<u64> {
        Some(self.size - self.position)
    }
}

struct Streamed<R> {
    reader: R,
    position: u64,
}

impl<R: Read> Source for Streamed<R> {
    fn read_or_end(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let filled = read_or_end(&mut self.reader, buf)?;
        self.position += filled as u64;
        whole_or_end(filled, buf.len())
    }

    fn skip(&mut self, count: u64) -> io::Result<u64> {
        let skipped = io::copy(&mut (&mut self.reader).take(count), &mut io::sink())?;
        self.position += skipped;
        Ok(skipped)
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn left(&self) -> Option<u64> {
        None
    }
}

#[derive(Clone, Copy)]
struct Encoding {
    explicit_vr: bool,
    big_endian: bool,
}

struct Syntax {
    encoding: Encoding,
    deflated: bool,
}

/// Walks the file meta group (explicit VR little endian, group 0002) and returns the data
/// set's transfer syntax; `None` when the file ends inside the group (dicom-object says how).
fn walk_meta<R: Read + Seek>(source: &mut Seekable<R>) -> Result<Option<Syntax>, Problem> {
    let mut uid = String::new();
    loop {
        let start = source.position;
        let mut head = [0u8; 8];
        if !source.read_or_end(&mut head).map_err(io_problem)? {
            return Ok(None);
        }
        if u16::from_le_bytes([head[0], head[1]]) != 0x0002 {
            source.reader.seek(SeekFrom::Start(start)).map_err(io_problem)?;
            source.position = start;
            break;
        }
        let tag = (0x0002, u16::from_le_bytes([head[2], head[3]]));
        let vr = [head[4], head[5]];
        let length = if long_length(vr) {
            let mut four = [0u8; 4];
            source.read_or_end(&mut four).map_err(io_problem)?;
            u32::from_le_bytes(four)
        } else {
            u16::from_le_bytes([head[6], head[7]]) as u32
        };
        let left = source.left().unwrap_or(u64::MAX);
        if length == UNDEFINED || length as u64 > left {
            return Err(overrun(tag, length, left));
        }
        if tag.1 == 0x0010 && length <= 64 {
            let mut value = vec![0u8; length as usize];
            source.read_or_end(&mut value).map_err(io_problem)?;
            uid = String::from_utf8_lossy(&value).trim_end_matches(['\0', ' ']).to_owned();
        } else {
            source.skip(length as u64).map_err(io_problem)?;
        }
    }
    let encoding = match uid.as_str() {
        "1.2.840.10008.1.2" => Encoding { explicit_vr: false, big_endian: false },
        "1.2.840.10008.1.2.2" => Encoding { explicit_vr: true, big_endian: true },
        _ => Encoding { explicit_vr: true, big_endian: false },
    };
    Ok(Some(Syntax { encoding, deflated: uid == "1.2.840.10008.1.2.1.99" }))
}

/// Whether an explicit VR has two reserved bytes and a 4-byte length: every VR but those with
/// a 2-byte length (PS3.5 7.1.2), unknown ones included, as dicom-parser reads them (it takes
/// an unknown VR for UN), so that this walk reads each length where the parser will.
fn long_length(vr: [u8; 2]) -> bool {
    const SHORT: [&[u8; 2]; 21] = [
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM",
        b"UI", b"UL", b"US",
    ];
    !SHORT.contains(&&vr)
}

/// Refuses nesting past [`MAX_DEPTH`] (data sets and item lists each count a level), so a
/// crafted file cannot exhaust the stack.
fn within_depth(depth: usize) -> Result<(), Problem> {
    if depth > MAX_DEPTH { Err(Problem::Dicom(format!("sequences nested deeper than {MAX_DEPTH} levels"))) } else { Ok(()) }
}

fn overrun(tag: (u16, u16), length: u32, left: u64) -> Problem {
    let declared = if length == UNDEFINED { "an undefined length".to_owned() } else { format!("{length} bytes") };
    Problem::Dicom(format!("element ({:04X},{:04X}) declares {declared}, only {left} bytes follow", tag.0, tag.1))
}

struct Walk<'a, S: Source> {
    encoding: Encoding,
    source: &'a mut S,
}

impl<S: Source> Walk<'_, S> {
    fn u16(&self, bytes: [u8; 2]) -> u16 {
        if self.encoding.big_endian { u16::from_be_bytes(bytes) } else { u16::from_le_bytes(bytes) }
    }

    fn u32(&self, bytes: [u8; 4]) -> u32 {
        if self.encoding.big_endian { u32::from_be_bytes(bytes) } else { u32::from_le_bytes(bytes) }
    }

    /// Bytes left before `end` (a defined-length container's end) and the end of the source.
    fn left(&self, end: Option<u64>) -> u64 {
        let in_container = end.map_or(u64::MAX, |e| e.saturating_sub(self.source.position()));
        in_container.min(self.source.left().unwrap_or(u64::MAX))
    }

    /// Reads `buf`; `Ok(false)` at a clean end. A file cut inside an element header is left
    /// to dicom-object to report.
    fn read(&mut self, buf: &mut [u8]) -> Result<bool, Problem> {
        match self.source.read_or_end(buf) {
            Ok(whole) => Ok(whole),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(io_problem(e)),
        }
    }

    /// Where a value or container of `length` bytes starting here ends, refused when fewer
    /// bytes follow before `end` and the end of the source.
    fn end_of(&self, tag: (u16, u16), length: u32, end: Option<u64>) -> Result<u64, Problem> {
        let left = self.left(end);
        if length as u64 > left {
            return Err(overrun(tag, length, left));
        }
        Ok(self.source.position() + length as u64)
    }

    /// Passes over a value of `length` bytes, refusing it when fewer follow.
    fn skip_value(&mut self, tag: (u16, u16), length: u32, end: Option<u64>) -> Result<(), Problem> {
        self.end_of(tag, length, end)?;
        let skipped = self.source.skip(length as u64).map_err(io_problem)?;
        if skipped < length as u64 {
            return Err(overrun(tag, length, skipped));
        }
        Ok(())
    }

    /// Walks data elements until `end` (a defined length), an item's end marker, or the end
    /// of the source.
    fn dataset(&mut self, end: Option<u64>, depth: usize) -> Result<(), Problem> {
        within_depth(depth)?;
        while end.is_none_or(|e| self.source.position() < e) {
            let mut tag_bytes = [0u8; 4];
            if !self.read(&mut tag_bytes)? {
                return Ok(());
            }
            let tag = (self.u16([tag_bytes[0], tag_bytes[1]]), self.u16([tag_bytes[2], tag_bytes[3]]));
            if tag.0 == 0xFFFE {
                // Item markers carry a 4-byte length and no VR in every encoding.
                let mut four = [0u8; 4];
                if !self.read(&mut four)? {
                    return Ok(());
                }
                // A delimiter ends an item or a sequence; at the top level it ends nothing, for
                // the parser reads on past it, and so must this walk (the fuzzer's third finding).
                if depth > 0 && (tag == ITEM_END || tag == SEQUENCE_END) {
                    return Ok(());
                }
                // A stray item or delimiter outside a sequence: passed over by its length.
                let length = self.u32(four);
                if length != UNDEFINED {
                    self.skip_value(tag, length, end)?;
                }
                continue;
            }
            let (vr, length) = match self.element_header(tag)? {
                Some(header) => header,
                None => return Ok(()),
            };
            let sequence = vr == Some(VR::SQ) || (vr == Some(VR::UN) && length == UNDEFINED);
            if length == UNDEFINED {
                // A sequence, or encapsulated pixel data (fragments in items).
                let nested = if vr == Some(VR::UN) { Encoding { explicit_vr: false, big_endian: false } } else { self.encoding };
                let mut inner = Walk { encoding: nested, source: &mut *self.source };
                inner.items(tag, sequence || vr.is_none(), None, depth + 1)?;
            } else if sequence {
                let container_end = self.end_of(tag, length, end)?;
                self.items(tag, true, Some(container_end), depth + 1)?;
            } else {
                self.skip_value(tag, length, end)?;
            }
        }
        Ok(())
    }

    /// The element's VR (explicit, or the dictionary's in implicit VR) and declared length;
    /// `None` when the source ends inside the header.
    fn element_header(&mut self, tag: (u16, u16)) -> Result<Option<(Option<VR>, u32)>, Problem> {
        if !self.encoding.explicit_vr {
            let mut four = [0u8; 4];
            if !self.read(&mut four)? {
                return Ok(None);
            }
            let entry = StandardDataDictionary.by_tag(dicom_core::Tag(tag.0, tag.1));
            let vr = match entry.map(|e| e.vr()) {
                Some(VirtualVr::Exact(vr)) => Some(vr),
                _ => None,
            };
            return Ok(Some((vr, self.u32(four))));
        }
        let mut head = [0u8; 4];
        if !self.read(&mut head)? {
            return Ok(None);
        }
        let vr_bytes = [head[0], head[1]];
        let vr = Some(std::str::from_utf8(&vr_bytes).ok().and_then(|s| s.parse::<VR>().ok()).unwrap_or(VR::UN));
        if long_length(vr_bytes) {
            let mut four = [0u8; 4];
            if !self.read(&mut four)? {
                return Ok(None);
            }
            Ok(Some((vr, self.u32(four))))
        } else {
            Ok(Some((vr, self.u16([head[2], head[3]]) as u32)))
        }
    }

    /// Walks the items of a sequence (`nested`: each item a data set) or of encapsulated pixel
    /// data (each item a fragment), until the sequence's end marker or `end`.
    fn items(&mut self, owner: (u16, u16), nested: bool, end: Option<u64>, depth: usize) -> Result<(), Problem> {
        within_depth(depth)?;
        while end.is_none_or(|e| self.source.position() < e) {
            let mut head = [0u8; 8];
            if !self.read(&mut head)? {
                return Ok(());
            }
            let tag = (self.u16([head[0], head[1]]), self.u16([head[2], head[3]]));
            let length = self.u32([head[4], head[5], head[6], head[7]]);
            if tag == SEQUENCE_END {
                return Ok(());
            }
            if tag != ITEM {
                return Err(Problem::Dicom(format!(
                    "element ({:04X},{:04X}) holds ({:04X},{:04X}) where an item should begin",
                    owner.0, owner.1, tag.0, tag.1
                )));
            }
            match (length, nested) {
                (UNDEFINED, _) => self.dataset(None, depth + 1)?,
                (length, true) => {
                    let item_end = self.end_of(owner, length, end)?;
                    self.dataset(Some(item_end), depth + 1)?;
                }
                (length, false) => self.skip_value(owner, length, end)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file after its preamble: the marker, a meta group naming `syntax`, then `body`.
    fn file(syntax: &str, body: &[u8]) -> Vec<u8> {
        let mut uid = syntax.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let mut out = b"DICM".to_vec();
        out.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        out.extend_from_slice(&(uid.len() as u16).to_le_bytes());
        out.extend_from_slice(&uid);
        out.extend_from_slice(body);
        out
    }

    fn explicit(tag: (u16, u16), vr: &[u8; 2], value_length: u32, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(vr);
        if long_length(*vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&value_length.to_le_bytes());
        } else {
            out.extend_from_slice(&(value_length as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    fn item(length: u32, content: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFE, 0xFF, 0x00, 0xE0];
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(content);
        out
    }

    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

    #[test]
    fn honest_lengths_pass_and_a_lie_is_named() {
        let name = explicit((0x0010, 0x0010), b"PN", 4, b"A^B ");
        let pixels = explicit((0x7FE0, 0x0010), b"OW", 8, &[0; 8]);
        check_bytes(&file(EXPLICIT_LE, &[name.clone(), pixels].concat())).unwrap();
        let lie = explicit((0x7FE0, 0x0010), b"OW", 4_227_858_432, &[0; 8]);
        let error = check_bytes(&file(EXPLICIT_LE, &[name, lie].concat())).unwrap_err().to_string();
        assert!(error.contains("element (7FE0,0010) declares 4227858432 bytes, only 8 bytes follow"), "{error}");
    }

    #[test]
    fn lengths_inside_sequences_are_checked_against_their_item() {
        // A defined-length sequence whose item holds an element claiming more than the item.
        let inner = explicit((0x0008, 0x0100), b"SH", 40, b"abcd");
        let sequence = explicit((0x0008, 0x1140), b"SQ", 8 + inner.len() as u32, &item(inner.len() as u32, &inner));
        let tail = explicit((0x0010, 0x0010), b"PN", 40, &[b' '; 40]);
        let error = check_bytes(&file(EXPLICIT_LE, &[sequence, tail.clone()].concat())).unwrap_err().to_string();
        assert!(error.contains("(0008,0100) declares 40 bytes, only 4 bytes follow"), "{error}");
        // The same, honest, in an undefined-length sequence and item.
        let honest = explicit((0x0008, 0x0100), b"SH", 4, b"abcd");
        let mut undefined = explicit((0x0008, 0x1140), b"SQ", UNDEFINED, &item(UNDEFINED, &honest));
        undefined.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        check_bytes(&file(EXPLICIT_LE, &[undefined, tail].concat())).unwrap();
    }

    #[test]
    fn encapsulated_fragments_and_implicit_vr_are_walked() {
        let fragments = [item(0, &[]), item(4, &[1, 2, 3, 4]), item(1_000_000, &[0; 16])].concat();
        let pixels = explicit((0x7FE0, 0x0010), b"OB", UNDEFINED, &fragments);
        let error = check_bytes(&file("1.2.840.10008.1.2.4.50", &pixels)).unwrap_err().to_string();
        assert!(error.contains("(7FE0,0010) declares 1000000 bytes, only 16 bytes follow"), "{error}");
        // Implicit VR: a 2-byte-length VR's element is read with a 4-byte length.
        let mut implicit = vec![0x10, 0x00, 0x10, 0x00];
        implicit.extend_from_slice(&3_000_000u32.to_le_bytes());
        implicit.extend_from_slice(b"A^B ");
        let error = check_bytes(&file("1.2.840.10008.1.2", &implicit)).unwrap_err().to_string();
        assert!(error.contains("(0010,0010) declares 3000000 bytes, only 4 bytes follow"), "{error}");
    }

    #[test]
    fn an_unknown_vr_is_read_as_un_with_a_four_byte_length() {
        // Tag (0000,0000), VR bytes 00 00: dicom-parser reads UN, two reserved bytes and a
        // 4-byte length (the fuzzer's second finding, 4,294,770,684 bytes claimed).
        let mut element = vec![0u8; 8];
        element.extend_from_slice(&4_294_770_684u32.to_le_bytes());
        element.extend_from_slice(&[0; 20]);
        let error = check_bytes(&file(EXPLICIT_LE, &element)).unwrap_err().to_string();
        assert!(error.contains("(0000,0000) declares 4294770684 bytes, only 20 bytes follow"), "{error}");
    }

    #[test]
    fn a_delimiter_at_the_top_level_does_not_end_the_walk() {
        // Pixel data of length 0, its fragments and delimiter at the top level, then a lie.
        let pixels = explicit((0x7FE0, 0x0010), b"OB", 0, &[]);
        let stray = [item(0, &[]), item(4, &[1, 2, 3, 4]), vec![0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]].concat();
        let lie = explicit((0xFFFF, 0xFFFF), &[0xFF, 0xFF], 4_294_770_684, &[0; 12]);
        let error = check_bytes(&file("1.2.840.10008.1.2.4.90", &[pixels, stray, lie].concat())).unwrap_err().to_string();
        assert!(error.contains("(FFFF,FFFF) declares 4294770684 bytes, only 12 bytes follow"), "{error}");
    }

    #[test]
    fn files_shorter_than_the_preamble_leave_the_parser_to_say_so() {
        let dir = tempfile::tempdir().unwrap();
        for length in [0, 10, 131, 132, 140] {
            let path = dir.path().join(format!("short{length}.dcm"));
            std::fs::write(&path, vec![0x44; length]).unwrap();
            check_file(&path).unwrap();
            check_bytes(&vec![0x44; length.saturating_sub(128)]).unwrap();
        }
    }

    #[test]
    fn a_deflated_data_set_is_walked_as_it_inflates() {
        use std::io::Write;
        let lie = explicit((0x0010, 0x0010), b"PN", 50_000, b"A^B ");
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&lie).unwrap();
        let error = check_bytes(&file("1.2.840.10008.1.2.1.99", &encoder.finish().unwrap())).unwrap_err().to_string();
        assert!(error.contains("(0010,0010) declares 50000 bytes, only 4 bytes follow"), "{error}");
    }
}
