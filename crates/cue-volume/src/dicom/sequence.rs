//! Which sequence (T1, T1CE, T2, FLAIR) a DICOM series is: from its SeriesDescription and
//! ProtocolName first (what the technologist named it), then from the acquisition parameters
//! when the text says nothing.

use super::header::SequenceParams;
use crate::study::SequenceKind;

/// The sequence of a series, `None` when neither its text nor its parameters say.
pub fn recognise(description: &str, protocol: &str, params: &SequenceParams) -> Option<SequenceKind> {
    from_text(description).or_else(|| from_text(protocol)).or_else(|| from_params(params)).map(|kind| {
        // A T1 acquired after contrast is T1CE whatever its name forgot to say.
        if kind == SequenceKind::T1 && params.contrast_agent.is_some() { SequenceKind::T1ce } else { kind }
    })
}

/// Words of a description, lower-case, split at anything that is not a letter, digit or `+`.
fn words(text: &str) -> Vec<String> {
    text.to_ascii_lowercase()
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '+'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn from_text(text: &str) -> Option<SequenceKind> {
    let words = words(text);
    let has = |w: &str| words.iter().any(|x| x == w);
    let starts = |p: &str| words.iter().any(|x| x.starts_with(p));
    // FLAIR first: "T2 FLAIR" and Siemens' "tirm_dark-fluid" are FLAIR, not T2.
    if starts("flair") || has("tirm") || (has("dark") && has("fluid")) || has("t2f") || has("darkfluid") {
        return Some(SequenceKind::Flair);
    }
    let t1 = starts("t1") || has("mprage") || has("spgr") || has("bravo") || has("mpr") || has("tfl") || has("vibe");
    let contrast = ["post", "gd", "gad", "gado", "contrast", "+c", "c+", "+gd", "ce", "t1ce", "t1c", "t1gd", "postcontrast", "mdc"]
        .iter()
        .any(|w| has(w))
        || starts("post")
        || text.contains("+C")
        || text.to_ascii_lowercase().contains("+gd");
    if t1 {
        return Some(if contrast { SequenceKind::T1ce } else { SequenceKind::T1 });
    }
    if starts("t2") || has("tse") && !has("t1") {
        return Some(SequenceKind::T2);
    }
    None
}

/// The classic contrast rules: a short echo is T1-weighted; a long echo is T2-weighted, and
/// FLAIR when a long inversion nulls the fluid.
fn from_params(params: &SequenceParams) -> Option<SequenceKind> {
    let te = params.echo_time_ms?;
    let ti = params.inversion_time_ms.unwrap_or(0.0);
    if te < 30.0 {
        return Some(SequenceKind::T1);
    }
    if te >= 60.0 {
        return Some(if ti >= 1500.0 { SequenceKind::Flair } else { SequenceKind::T2 });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(te: Option<f64>, ti: Option<f64>, agent: Option<&str>) -> SequenceParams {
        SequenceParams {
            echo_time_ms: te,
            inversion_time_ms: ti,
            contrast_agent: agent.map(str::to_owned),
            ..SequenceParams::default()
        }
    }

    #[test]
    fn descriptions_scanners_write() {
        let none = SequenceParams::default();
        let cases = [
            ("T1 MPRAGE AX", Some(SequenceKind::T1)),
            ("T1 MPRAGE AX POST GD", Some(SequenceKind::T1ce)),
            ("T2 TSE AX", Some(SequenceKind::T2)),
            ("T2 FLAIR AX", Some(SequenceKind::Flair)),
            ("t1_mprage_sag_p2_iso", Some(SequenceKind::T1)),
            ("t2_tirm_tra_dark-fluid", Some(SequenceKind::Flair)),
            ("AX T1 +C", Some(SequenceKind::T1ce)),
            ("Ax T1 SE post", Some(SequenceKind::T1ce)),
            ("SAG T1 BRAVO", Some(SequenceKind::T1)),
            ("AX T2 PROPELLER", Some(SequenceKind::T2)),
            ("Sag CUBE FLAIR", Some(SequenceKind::Flair)),
            ("localizer", None),
            ("DWI b1000", None),
        ];
        for (text, expected) in cases {
            assert_eq!(recognise(text, "", &none), expected, "{text}");
        }
    }

    #[test]
    fn parameters_decide_when_the_text_does_not() {
        assert_eq!(recognise("series 3", "", &params(Some(3.0), Some(900.0), None)), Some(SequenceKind::T1));
        assert_eq!(recognise("series 3", "", &params(Some(3.0), None, Some("Gadovist"))), Some(SequenceKind::T1ce));
        assert_eq!(recognise("", "", &params(Some(100.0), None, None)), Some(SequenceKind::T2));
        assert_eq!(recognise("", "", &params(Some(120.0), Some(2500.0), None)), Some(SequenceKind::Flair));
        assert_eq!(recognise("", "", &params(Some(45.0), None, None)), None);
        // The protocol name speaks when the description is empty.
        assert_eq!(recognise("", "t2_flair_tra", &SequenceParams::default()), Some(SequenceKind::Flair));
    }
}
