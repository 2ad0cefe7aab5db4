//! Where the bytes of a NIfTI image come from: single files or `.hdr`/`.img` pairs, plain or
//! gzipped (detected by the gzip magic bytes, never by the file name).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use super::error::{Problem, Result, VolumeError};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Deflate cannot expand data by more than this factor (a 258-byte match per two bits,
/// rounded up), so a gzip stream of n bytes holds at most this many times n.
const MAX_DEFLATE_RATIO: u64 = 1032;
const READ_BUFFER_BYTES: usize = 1 << 20;

/// A readable byte stream with an upper bound on how many bytes it can yield.
pub struct ByteSource {
    /// The decoded stream.
    pub reader: Box<dyn Read + Send>,
    /// The most bytes the stream can produce (exact for plain files).
    pub max_bytes: u64,
    /// Whether the stream is gzip-compressed.
    pub gzipped: bool,
}

impl ByteSource {
    /// Wraps an in-memory buffer (used by the fuzzer and tests).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Problem> {
        let gzipped = bytes.starts_with(&GZIP_MAGIC);
        let len = bytes.len() as u64;
        let cursor = std::io::Cursor::new(bytes);
        Ok(if gzipped {
            Self { reader: Box::new(MultiGzDecoder::new(cursor)), max_bytes: len.saturating_mul(MAX_DEFLATE_RATIO), gzipped }
        } else {
            Self { reader: Box::new(cursor), max_bytes: len, gzipped }
        })
    }

    /// Opens a file, decompressing it when it starts with the gzip magic bytes.
    pub fn open(path: &Path) -> Result<Self> {
        crate::threads::debug_assert_may_block("reading a file");
        let file = File::open(path).map_err(|e| VolumeError::io("open", e, path))?;
        let len = file.metadata().map_err(|e| VolumeError::io("read", e, path))?.len();
        let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let head = buffered.fill_buf().map_err(|e| VolumeError::io("read", e, path))?;
        let gzipped = head.starts_with(&GZIP_MAGIC);
        Ok(if gzipped {
            Self {
                reader: Box::new(MultiGzDecoder::new(buffered)),
                max_bytes: len.saturating_mul(MAX_DEFLATE_RATIO),
                gzipped,
            }
        } else {
            Self { reader: Box::new(buffered), max_bytes: len, gzipped }
        })
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub fn read_fully(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Skips `count` bytes; returns how many were skipped (fewer at the end of the stream).
pub fn skip(reader: &mut dyn Read, count: u64) -> std::io::Result<u64> {
    std::io::copy(&mut reader.take(count), &mut std::io::sink())
}

/// Turns a decoding failure into the problem it is: gzip corruption or a plain I/O error.
pub fn classify_read_error(error: std::io::Error, gzipped: bool) -> Problem {
    if gzipped && matches!(error.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData) {
        Problem::CorruptGzip(error.to_string())
    } else {
        Problem::InvalidHeader(format!("read failed: {error}"))
    }
}

/// The lower-case file name with `.gz` removed, used to recognise pair members.
fn stem_and_ext(path: &Path) -> Option<(String, &'static str, bool)> {
    let name = path.file_name()?.to_str()?;
    let lower = name.to_ascii_lowercase();
    let (base, gz) = match lower.strip_suffix(".gz") {
        Some(b) => (b.to_owned(), true),
        None => (lower.clone(), false),
    };
    for ext in [".hdr", ".img"] {
        if let Some(stem) = base.strip_suffix(ext) {
            // Keep the original spelling of the stem.
            let stem_len = stem.len();
            return Some((name[..stem_len].to_owned(), if ext == ".hdr" { "hdr" } else { "img" }, gz));
        }
    }
    None
}

/// The other member of the NIfTI pair `path` belongs to, found by the rules above, when it
/// is a pair member and its partner exists.
pub(crate) fn pair_partner(path: &Path) -> Option<PathBuf> {
    match stem_and_ext(path)? {
        (_, "img", _) => header_path_for(path).ok().map(|(header, _)| header),
        _ => image_path_for(path).ok(),
    }
}

/// The header and, when `path` is the image member of a NIfTI pair, the image itself.
///
/// A header is looked for with the image's own compression only (`.img.gz` pairs with
/// `.hdr.gz`, as nibabel pairs them): a folder holding both `x.img` and `x.img.gz` holds two
/// images, and opening one must never read the other's header or voxels.
pub fn header_path_for(path: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    let Some((stem, "img", gz)) = stem_and_ext(path) else {
        return Ok((path.to_path_buf(), None));
    };
    let suffix = if gz { ".gz" } else { "" };
    let candidates = [format!("{stem}.hdr{suffix}"), format!("{stem}.HDR{suffix}")];
    match candidates.iter().map(|c| path.with_file_name(c)).find(|p| p.is_file()) {
        Some(header) => Ok((header, Some(path.to_path_buf()))),
        None => Err(VolumeError::MissingHeaderFile { looked_for: candidates[0].clone(), path: path.to_path_buf() }),
    }
}

/// The image file of a NIfTI pair whose header is `header_path`: `.hdr` pairs with `.img`,
/// `.hdr.gz` with `.img.gz` (as nibabel, a compressed image does not stand in for a plain one).
pub fn image_path_for(header_path: &Path) -> Result<PathBuf> {
    let file_name = header_path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let (stem, gz) = match stem_and_ext(header_path) {
        Some((stem, _, gz)) => (stem, gz),
        None => (header_path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned(), false),
    };
    let upper = file_name.contains(".HDR");
    let ext = match (upper, gz) {
        (false, false) => "img",
        (false, true) => "img.gz",
        (true, false) => "IMG",
        (true, true) => "IMG.gz",
    };
    let candidate = header_path.with_file_name(format!("{stem}.{ext}"));
    if candidate.is_file() {
        return Ok(candidate);
    }
    Err(VolumeError::MissingImageFile { looked_for: candidate.display().to_string(), path: header_path.to_path_buf() })
}
