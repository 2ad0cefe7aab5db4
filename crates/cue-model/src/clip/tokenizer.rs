//! CLIP's byte-pair-encoding tokenizer (OpenAI's algorithm), with its vocabulary embedded.
//!
//! Text is cleaned as OpenAI does (HTML entities unescaped twice, curly quotes straightened,
//! whitespace collapsed, lower-cased), split by CLIP's pattern, mapped byte-wise to unicode,
//! then merged by rank. Not reproduced: `ftfy`'s mojibake repair and NFC normalisation, which
//! change nothing for well-formed UTF-8 text in composed form.

use std::collections::HashMap;
use std::io::Read;

use regex::Regex;

/// `<|startoftext|>`.
pub const START_OF_TEXT: u32 = 49406;
/// `<|endoftext|>`.
pub const END_OF_TEXT: u32 = 49407;
/// CLIP's context length.
pub const CONTEXT_LENGTH: usize = 77;
/// Merges used from the vocabulary file (49,152 - 256 - 2).
const MERGES: usize = 49152 - 256 - 2;

static EMBEDDED_BPE: &[u8] = include_bytes!("../../../../assets/clip/bpe_simple_vocab_16e6.txt.gz");

/// Problems building a tokenizer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// The vocabulary file cannot be decoded.
    #[error("invalid CLIP BPE vocabulary ({0})")]
    Vocabulary(String),
}

/// A prompt's ids padded to the context length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    /// `<|startoftext|>`, the text's ids, `<|endoftext|>`, then zeros.
    pub ids: Vec<u32>,
    /// Index of `<|endoftext|>`, where the text tower pools.
    pub end_position: usize,
}

/// CLIP's tokenizer.
pub struct ClipTokenizer {
    encoder: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_encoder: [char; 256],
    pattern: Regex,
}

/// OpenAI's reversible map of bytes to printable unicode characters, and the order of the
/// bytes in the vocabulary (printable ones first, as Python's dict keeps them).
fn bytes_to_unicode() -> ([char; 256], Vec<u8>) {
    let mut order: Vec<u32> = (u32::from('!')..=u32::from('~')).collect();
    order.extend(0xA1..=0xAC);
    order.extend(0xAE..=0xFF);
    let mut table = ['\0'; 256];
    for &b in &order {
        table[b as usize] = char::from_u32(b).unwrap_or('?');
    }
    let mut extra = 0;
    for b in 0..256u32 {
        if !order.contains(&b) {
            table[b as usize] = char::from_u32(256 + extra).unwrap_or('?');
            extra += 1;
            order.push(b);
        }
    }
    (table, order.into_iter().map(|b| b as u8).collect())
}

impl ClipTokenizer {
    /// The tokenizer with CLIP's embedded vocabulary.
    pub fn embedded() -> Result<Self, TokenizerError> {
        Self::from_bpe_gz(EMBEDDED_BPE)
    }

    /// A tokenizer from a gzipped `bpe_simple_vocab_16e6.txt`.
    pub fn from_bpe_gz(bytes: &[u8]) -> Result<Self, TokenizerError> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(|e| TokenizerError::Vocabulary(e.to_string()))?;
        let merges: Vec<(String, String)> = text
            .split('\n')
            .skip(1)
            .take(MERGES)
            .filter_map(|line| line.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
            .collect();
        if merges.len() != MERGES {
            return Err(TokenizerError::Vocabulary(format!("{} merges, expected {MERGES}", merges.len())));
        }
        let (byte_encoder, order) = bytes_to_unicode();
        let mut vocab: Vec<String> = order.iter().map(|&b| byte_encoder[b as usize].to_string()).collect();
        vocab.extend(order.iter().map(|&b| format!("{}</w>", byte_encoder[b as usize])));
        vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        vocab.push("<|startoftext|>".into());
        vocab.push("<|endoftext|>".into());
        let encoder = vocab.into_iter().enumerate().map(|(i, v)| (v, i as u32)).collect();
        let ranks = merges.into_iter().enumerate().map(|(i, m)| (m, i)).collect();
        let pattern = Regex::new(
            r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        )
        .map_err(|e| TokenizerError::Vocabulary(e.to_string()))?;
        Ok(Self { encoder, ranks, byte_encoder, pattern })
    }

    fn bpe(&self, token: &str) -> Vec<String> {
        if token == "<|startoftext|>" || token == "<|endoftext|>" {
            return vec![token.to_owned()];
        }
        let chars: Vec<char> = token.chars().collect();
        let mut word: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|pair| self.ranks.get(&(pair[0].clone(), pair[1].clone())).map(|r| (*r, pair[0].clone(), pair[1].clone())))
                .min_by_key(|(rank, _, _)| *rank);
            let Some((_, first, second)) = best else { break };
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    merged.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    merged.push(word[i].clone());
                    i += 1;
                }
            }
            word = merged;
        }
        word
    }

    /// The ids of `text`, without start and end tokens.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let cleaned = clean(text);
        let mut ids = Vec::new();
        for m in self.pattern.find_iter(&cleaned) {
            let mapped: String = m.as_str().bytes().map(|b| self.byte_encoder[b as usize]).collect();
            for piece in self.bpe(&mapped) {
                if let Some(id) = self.encoder.get(&piece) {
                    ids.push(*id);
                }
            }
        }
        ids
    }

    /// Start token, ids, end token, zero padding to `context` (77 for CLIP). Text too long is
    /// truncated so the end token stays last, as open_clip does.
    pub fn tokenize(&self, text: &str, context: usize) -> Tokens {
        let mut ids = vec![START_OF_TEXT];
        ids.extend(self.encode(text));
        ids.truncate(context.max(2) - 1);
        ids.push(END_OF_TEXT);
        let end_position = ids.len() - 1;
        ids.resize(context.max(2), 0);
        Tokens { ids, end_position }
    }
}

/// OpenAI's `basic_clean` (without ftfy), `whitespace_clean` and lower-casing.
fn clean(text: &str) -> String {
    let unescaped = unescape_html(&unescape_html(text));
    let straight: String = unescaped
        .chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => '\'',
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' => '"',
            other => other,
        })
        .collect();
    straight.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Unescapes the HTML entities that occur in captions: named basics and numeric ones.
fn unescape_html(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    static ENTITY: std::sync::LazyLock<Option<Regex>> =
        std::sync::LazyLock::new(|| Regex::new(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|amp|lt|gt|quot|apos|nbsp);").ok());
    let Some(entity) = ENTITY.as_ref() else { return text.to_owned() };
    entity
        .replace_all(text, |caps: &regex::Captures<'_>| {
            let name = &caps[1];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ if name.starts_with("#x") || name.starts_with("#X") => {
                    u32::from_str_radix(&name[2..], 16).ok().and_then(char::from_u32)
                }
                _ => name[1..].parse().ok().and_then(char::from_u32),
            };
            c.map_or_else(|| caps[0].to_owned(), |c| c.to_string())
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_open_clip_on_a_varied_sentence_set() {
        let reference: serde_json::Value = serde_json::from_str(include_str!("../../../../tests/data/clip_tokenizer_reference.json")).unwrap();
        let tokenizer = ClipTokenizer::embedded().unwrap();
        let cases = reference["cases"].as_array().unwrap();
        assert!(cases.len() >= 20);
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let expected: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let mut ids = vec![START_OF_TEXT];
            ids.extend(tokenizer.encode(text));
            ids.push(END_OF_TEXT);
            if let Some(i) = ids.iter().zip(&expected).position(|(a, b)| a != b) {
                panic!("{text:?}: first difference at token {i}: {ids:?} vs {expected:?}");
            }
            assert_eq!(ids.len(), expected.len(), "{text:?}");
        }
    }

    #[test]
    fn tokenize_pads_and_truncates_to_the_context() {
        let tokenizer = ClipTokenizer::embedded().unwrap();
        let short = tokenizer.tokenize("a photo", CONTEXT_LENGTH);
        assert_eq!(short.ids.len(), 77);
        assert_eq!(short.ids[0], START_OF_TEXT);
        assert_eq!(short.ids[short.end_position], END_OF_TEXT);
        assert!(short.ids[short.end_position + 1..].iter().all(|&id| id == 0));
        let long = tokenizer.tokenize(&"word ".repeat(200), CONTEXT_LENGTH);
        assert_eq!(long.end_position, 76);
        assert_eq!(long.ids[76], END_OF_TEXT);
        assert_eq!(clean("Caf&amp;eacute; &#8212; “Quoted”"), "caf&eacute; — \"quoted\"");
    }
}
