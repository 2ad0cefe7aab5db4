//! The patient-disjoint train / validation / test split, written to a file and reused, so every
//! result names the cases it was computed on and no patient is on two sides.
//!
//! Cases are grouped by patient before splitting: BraTS 2023 names a case
//! `BraTS-GLI-00000-000` (patient 00000, time point 000), so the time points of one patient
//! stay together; BraTS 2021 (`BraTS2021_00000`) and other names are one patient per case.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cue_volume::phantom::Rng;

/// Format tag of split files.
pub const SPLIT_FORMAT: &str = "cue-split-1";

/// Case folder names per part.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    /// [`SPLIT_FORMAT`].
    pub format: String,
    /// The seed of the shuffle.
    pub seed: u64,
    /// Fractions of patients for validation and test (training gets the rest).
    pub validation_fraction: f64,
    /// See `validation_fraction`.
    pub test_fraction: f64,
    /// Training cases.
    pub train: Vec<String>,
    /// Validation cases (epoch, threshold and hyper-parameters are chosen on these only).
    pub validation: Vec<String>,
    /// Test cases (reported only).
    pub test: Vec<String>,
}

/// Split problems.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// Reading or writing.
    #[error("split file: {detail}: {}", path.display())]
    File {
        /// What went wrong.
        detail: String,
        /// The file.
        path: PathBuf,
    },
    /// Too few patients for three parts.
    #[error("{patients} patients cannot be split into training, validation and test (3 needed)")]
    TooFew {
        /// Patients found.
        patients: usize,
    },
}

/// The patient a case belongs to (see the module documentation).
pub fn patient_id(case: &str) -> String {
    let parts: Vec<&str> = case.split('-').collect();
    let is_time_point = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if parts.len() >= 4 && parts[0].eq_ignore_ascii_case("brats") && is_time_point(parts[parts.len() - 1]) && is_time_point(parts[parts.len() - 2]) {
        return parts[..parts.len() - 1].join("-");
    }
    case.to_string()
}

impl Split {
    /// Splits `cases` (folder names) by patient: a seeded shuffle of the patients, the first
    /// `test_fraction` for test, the next `validation_fraction` for validation (each at least
    /// one patient), the rest for training. Case lists are sorted.
    pub fn by_patient(cases: &[String], validation_fraction: f64, test_fraction: f64, seed: u64) -> Result<Self, SplitError> {
        let mut patients: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for case in cases {
            patients.entry(patient_id(case)).or_default().push(case.clone());
        }
        let mut order: Vec<Vec<String>> = patients.into_values().collect();
        if order.len() < 3 {
            return Err(SplitError::TooFew { patients: order.len() });
        }
        let mut rng = Rng::new(seed);
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let n = order.len();
        let count = |fraction: f64| ((n as f64 * fraction).round() as usize).max(1);
        let test = count(test_fraction).min(n - 2);
        let validation = count(validation_fraction).min(n - 1 - test);
        let flatten = |groups: &[Vec<String>]| {
            let mut cases: Vec<String> = groups.iter().flatten().cloned().collect();
            cases.sort();
            cases
        };
        Ok(Self {
            format: SPLIT_FORMAT.into(),
            seed,
            validation_fraction,
            test_fraction,
            test: flatten(&order[..test]),
            validation: flatten(&order[test..test + validation]),
            train: flatten(&order[test + validation..]),
        })
    }

    /// Reads a split file.
    pub fn read(path: &Path) -> Result<Self, SplitError> {
        let error = |detail: String| SplitError::File { detail, path: path.to_path_buf() };
        let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read ({e})")))?;
        let split: Self = serde_json::from_str(&text).map_err(|e| error(format!("not a split ({e})")))?;
        if split.format != SPLIT_FORMAT {
            return Err(error(format!("format {} (expected {SPLIT_FORMAT})", split.format)));
        }
        Ok(split)
    }

    /// Writes it atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<(), SplitError> {
        let error = |detail: String| SplitError::File { detail, path: path.to_path_buf() };
        let text = serde_json::to_string_pretty(self).map_err(|e| error(e.to_string()))?;
        cue_volume::write_file_atomically(path, (text + "\n").as_bytes()).map_err(|e| error(format!("cannot write ({e})")))
    }

    /// The cases of one part: `train`, `validation` or `test`.
    pub fn part(&self, name: &str) -> Option<&[String]> {
        match name {
            "train" => Some(&self.train),
            "validation" => Some(&self.validation),
            "test" => Some(&self.test),
            _ => None,
        }
    }

    /// `{"train": [...], "validation": [...], "test": [...]}` for results.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"train": self.train, "validation": self.validation, "test": self.test, "seed": self.seed})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_points_of_one_patient_stay_together() {
        assert_eq!(patient_id("BraTS-GLI-00012-001"), "BraTS-GLI-00012");
        assert_eq!(patient_id("BraTS2021_00012"), "BraTS2021_00012");
        assert_eq!(patient_id("case-7"), "case-7");
        let mut cases: Vec<String> = (0..10).map(|i| format!("BraTS-GLI-{i:05}-000")).collect();
        cases.push("BraTS-GLI-00003-001".into());
        let split = Split::by_patient(&cases, 0.2, 0.2, 4).unwrap();
        let parts = [&split.train, &split.validation, &split.test];
        for part in parts {
            assert!(!part.is_empty());
        }
        let side = |case: &str| parts.iter().position(|p| p.iter().any(|c| c == case)).unwrap();
        assert_eq!(side("BraTS-GLI-00003-000"), side("BraTS-GLI-00003-001"));
        let total: usize = parts.iter().map(|p| p.len()).sum();
        assert_eq!(total, cases.len());
        assert_eq!(Split::by_patient(&cases, 0.2, 0.2, 4).unwrap(), split);
        assert!(Split::by_patient(&cases[..2], 0.2, 0.2, 4).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("split.json");
        split.write(&path).unwrap();
        assert_eq!(Split::read(&path).unwrap(), split);
    }
}
