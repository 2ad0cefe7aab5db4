//! Which volume of a DICOM folder a command reads: by SeriesNumber when that names one volume,
//! and otherwise by a choice that always does. A multi-echo series assembles into one volume
//! per echo under one number, and a folder holding a patient's prior and current studies often
//! holds two series numbered 7: a number alone cannot pick one of those.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::scan::DicomFolder;
use super::series::Series;
use crate::error::{Result, VolumeError};

/// A volume of a DICOM folder, as `--series` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesChoice {
    /// `7`: the volume whose SeriesNumber is 7 (an error when several are).
    Number(i32),
    /// `7:2`: the second of the volumes numbered 7, in the folder's listing order.
    Part(i32, usize),
    /// `#3`: the third volume of the folder's listing (numbered or not).
    Position(usize),
}

impl FromStr for SeriesChoice {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{text:?} is not a series choice: use a SeriesNumber (7), a part of one (7:2) or a position (#3)");
        let ordinal = |s: &str| s.trim().parse::<usize>().ok().filter(|&k| k >= 1).ok_or_else(bad);
        let text = text.trim();
        if let Some(position) = text.strip_prefix('#') {
            return Ok(Self::Position(ordinal(position)?));
        }
        match text.split_once(':') {
            Some((number, part)) => Ok(Self::Part(number.trim().parse().map_err(|_| bad())?, ordinal(part)?)),
            None => Ok(Self::Number(text.parse().map_err(|_| bad())?)),
        }
    }
}

impl fmt::Display for SeriesChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Part(n, k) => write!(f, "{n}:{k}"),
            Self::Position(k) => write!(f, "#{k}"),
        }
    }
}

/// For each volume of `series` (in order), the shortest choice that names it alone: its
/// number when no other volume shares it, `number:k` when some do, `#position` without one.
pub fn choices(series: &[Arc<Series>]) -> Vec<SeriesChoice> {
    series
        .iter()
        .enumerate()
        .map(|(index, s)| match s.number {
            None => SeriesChoice::Position(index + 1),
            Some(n) => {
                let sharing: Vec<usize> = series.iter().enumerate().filter(|(_, o)| o.number == Some(n)).map(|(i, _)| i).collect();
                match sharing.iter().position(|&i| i == index) {
                    Some(k) if sharing.len() > 1 => SeriesChoice::Part(n, k + 1),
                    _ => SeriesChoice::Number(n),
                }
            }
        })
        .collect()
}

/// "7:2 T2 TSE (echo 2)" for each volume, with its study's place, date and description
/// ("[study 2, 20251104 MR BRAIN]") when the folder holds several studies: what a user reads
/// to choose.
pub fn listing(folder: &DicomFolder) -> Vec<String> {
    let studies: Vec<String> = folder.studies().into_iter().map(|(tags, _)| tags.uid).collect();
    choices(&folder.series)
        .iter()
        .zip(&folder.series)
        .map(|(choice, s)| {
            let part = s.part.as_ref().map(|p| format!(" ({p})")).unwrap_or_default();
            let study = match studies.iter().position(|uid| *uid == s.study.uid) {
                Some(index) if studies.len() > 1 => {
                    let words: Vec<&str> =
                        [s.study.date.as_str(), s.study.description.as_str()].into_iter().filter(|w| !w.is_empty()).collect();
                    format!(" [study {}{}{}]", index + 1, if words.is_empty() { "" } else { ", " }, words.join(" "))
                }
                _ => String::new(),
            };
            format!("{choice} {}{part}{study}", s.description)
        })
        .collect()
}

/// The volume `choice` names, or the folder's only one; an error lists the volumes with the
/// choice that picks each when the choice is missing, ambiguous or names none.
pub fn pick_series(folder: &DicomFolder, choice: Option<SeriesChoice>) -> Result<Arc<Series>> {
    let all = || listing(folder).join("; ");
    let study_error = |reason: String| VolumeError::Study { reason, path: folder.root.clone() };
    let numbered = |n: i32| folder.series.iter().filter(move |s| s.number == Some(n)).cloned().collect::<Vec<_>>();
    let picked = match choice {
        None => folder.series.clone(),
        Some(SeriesChoice::Number(n)) => numbered(n),
        Some(SeriesChoice::Part(n, k)) => numbered(n).into_iter().skip(k - 1).take(1).collect(),
        Some(SeriesChoice::Position(k)) => folder.series.iter().skip(k - 1).take(1).cloned().collect(),
    };
    match (picked.as_slice(), choice) {
        ([one], _) => Ok(one.clone()),
        ([], None) => Err(study_error("no DICOM series here".into())),
        ([], Some(choice)) => Err(study_error(format!("no series {choice} here (the series: {})", all()))),
        (many, None) => Err(study_error(format!("{} series here, pick one with --series: {}", many.len(), all()))),
        (many, Some(choice)) => {
            Err(study_error(format!("{} volumes are numbered {choice}, pick one with --series: {}", many.len(), all())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_print_back() {
        for text in ["7", "-3", "7:2", "#3"] {
            assert_eq!(text.parse::<SeriesChoice>().unwrap().to_string(), text);
        }
        assert_eq!(" 12 : 1 ".parse::<SeriesChoice>(), Ok(SeriesChoice::Part(12, 1)));
        for bad in ["", "x", "7:", "7:0", "#0", "#", "7:x", "7.2", "#-1"] {
            let error = bad.parse::<SeriesChoice>().unwrap_err();
            assert!(error.contains("is not a series choice"), "{bad}: {error}");
        }
    }
}
