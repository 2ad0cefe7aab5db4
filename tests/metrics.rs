//! Metrics against scikit-learn and AnomalyCLIP's AUPRO (scripts/make_metrics_reference.py).

use cue::eval::metrics::{auroc, average_precision};
use serde_json::Value;

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/metrics_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference file")).expect("JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array().unwrap().iter().map(|x| x.as_bool().unwrap()).collect()
}

#[test]
fn classification_metrics_match_scikit_learn() {
    let reference = reference();
    for (n, case) in reference["classification"].as_array().unwrap().iter().enumerate() {
        let (scores, labels) = (floats(&case["scores"]), bools(&case["labels"]));
        let checks = [
            ("auroc", auroc(&scores, &labels).unwrap()),
            ("average_precision", average_precision(&scores, &labels).unwrap()),
        ];
        for (name, value) in checks {
            let expected = case[name].as_f64().unwrap();
            assert!((value - expected).abs() < 1e-9, "case {n} {name}: {value} vs {expected}");
        }
    }
}

/// The streaming (histogram) metrics `cue eval` reports, on the same references: within 1e-4
/// of scikit-learn, and AUPRO within 1e-4 of AnomalyCLIP's `cal_pro_score`.
#[test]
fn streaming_metrics_match_scikit_learn_and_anomalyclip() {
    use cue::eval::stream::ScoreHistogram;
    let reference = reference();
    for (n, case) in reference["classification"].as_array().unwrap().iter().enumerate() {
        let (scores, labels) = (floats(&case["scores"]), bools(&case["labels"]));
        let mut histogram = ScoreHistogram::default();
        histogram.add_pixels(scores.iter().copied().zip(labels.iter().copied()));
        let checks = [
            ("auroc", histogram.auroc().unwrap()),
            ("average_precision", histogram.average_precision().unwrap()),
            ("best_dice", histogram.best_dice().unwrap().0),
        ];
        for (name, value) in checks {
            let expected = case[name].as_f64().unwrap();
            assert!((value - expected).abs() < 1e-4, "case {n} {name}: {value} vs {expected}");
        }
    }
    let seg = &reference["segmentation"];
    let width = seg["width"].as_u64().unwrap() as usize;
    let mut histogram = ScoreHistogram::default();
    for (map, mask) in seg["maps"].as_array().unwrap().iter().zip(seg["masks"].as_array().unwrap()) {
        histogram.add_map(&floats(map), &bools(mask), width);
    }
    let value = histogram.aupro(0.3, 200).unwrap();
    let expected = seg["aupro_anomalyclip"].as_f64().unwrap();
    assert!((value - expected).abs() < 1e-4, "AnomalyCLIP AUPRO: {value} vs {expected}");
}
