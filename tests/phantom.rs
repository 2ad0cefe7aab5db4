//! The synthetic glioma phantom: labels in the brain, contrasts in the intended order,
//! deterministic per seed.

mod common;

use common::shared_data;
use cue::volume::phantom::{PhantomConfig, Template, generate, write_case};
use cue::volume::{NiftiImage, SequenceKind};

fn template() -> Option<Template> {
    let data = shared_data("phantom")?;
    Some(Template::load(&data.join("templates/mni152-2009a")).expect("template"))
}

fn mean(values: &[f32], mask: impl Fn(usize) -> bool) -> f64 {
    let (sum, n) = (0..values.len()).filter(|&i| mask(i)).fold((0.0, 0usize), |(s, n), i| (s + f64::from(values[i]), n + 1));
    assert!(n > 0, "empty region");
    sum / n as f64
}

#[test]
fn labels_lie_in_the_brain_and_contrasts_follow_the_sequences() {
    let Some(template) = template() else { return };
    let phantom = generate(&template, &PhantomConfig { seed: 7, downsample: 2, ..Default::default() });
    let labels = &phantom.labels;
    for (i, &l) in labels.iter().enumerate() {
        assert!(l <= 3);
        assert!(l == 0 || phantom.brain[i], "label {l} outside the brain at {i}");
    }
    for label in 1..=3 {
        assert!(labels.iter().filter(|&&l| l == label).count() > 20, "label {label} (almost) missing");
    }
    // White matter: brain voxels, unlabelled, whose template probability is high.
    let white = |i: usize| phantom.brain[i] && labels[i] == 0 && {
        // Index into the downsampled grid: recompute from the full-resolution template.
        let [nx, ny, _] = phantom.shape;
        let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
        template.white[template.t1.index([2 * x, 2 * y, 2 * z])] > 0.9
    };
    let image = |kind: SequenceKind| &phantom.images.iter().find(|(k, _)| *k == kind).expect("sequence").1;
    let region = |data: &[f32], label: u8| mean(data, |i| labels[i] == label);
    let (t1, t1ce, t2, flair) = (image(SequenceKind::T1), image(SequenceKind::T1ce), image(SequenceKind::T2), image(SequenceKind::Flair));
    // Enhancing rim: brighter than white matter after contrast, not before.
    assert!(region(t1ce, 3) > 1.2 * mean(t1ce, white));
    assert!(region(t1, 3) < 0.8 * mean(t1, white));
    // Oedema: brighter than white matter on FLAIR and T2.
    assert!(region(flair, 2) > 1.3 * mean(flair, white));
    assert!(region(t2, 2) > 1.3 * mean(t2, white));
    // Necrosis: dark on T1CE next to the enhancing rim.
    assert!(region(t1ce, 1) < 0.5 * region(t1ce, 3));
}

#[test]
fn same_seed_same_bytes_different_seed_different_tumour() {
    let Some(template) = template() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = |seed| PhantomConfig { seed, downsample: 2, ..Default::default() };
    let a = write_case(&generate(&template, &config(3)), &dir.path().join("a"), "case").unwrap();
    let b = write_case(&generate(&template, &config(3)), &dir.path().join("b"), "case").unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap(), "{} differs", x.display());
    }
    let c = generate(&template, &config(4));
    let seg_a = NiftiImage::read(a.last().unwrap()).unwrap();
    assert_ne!(seg_a.data, cue::volume::VoxelData::U8(c.labels.clone()), "seeds 3 and 4 gave the same tumour");
    // The written study loads in the BraTS 2023 layout.
    let study = cue::volume::Study::load_folder(&dir.path().join("a")).unwrap();
    let kinds: Vec<_> = study.sequences.iter().map(|s| s.kind.clone()).collect();
    assert_eq!(kinds, [SequenceKind::T1, SequenceKind::T1ce, SequenceKind::T2, SequenceKind::Flair, SequenceKind::Segmentation]);
}
