//! The anomaly map of one slice from patch features and the two prompt embeddings, exactly the
//! published algorithm:
//!
//! for each chosen layer l, with L2-normalised patch features F_l (P patches x D) and
//! L2-normalised prompt embeddings P_A (anomalous) and P_N (normal):
//! `M_l = cos(F_l, P_A) - cos(F_l, P_N)`; `w = softmax_l(mean over patches of M_l)`;
//! `M = sum_l w_l M_l`; then bilinear upscaling (PyTorch's `align_corners=False`) to the input
//! size and min-max normalisation for display, the raw scores kept for metrics.
//!
//! These are plain-slice functions: the post-processing the viewer and the metrics run on the
//! CPU whatever device computed the features.

/// `M_l = cos(F, P_A) - cos(F, P_N)` for patch features `features` (`patches x width`,
/// row-major). Inputs need not be normalised.
pub fn layer_map(features: &[f32], width: usize, anomalous: &[f32], normal: &[f32]) -> Vec<f32> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let (na, nn) = (norm(anomalous), norm(normal));
    features
        .chunks_exact(width)
        .map(|f| {
            let nf = norm(f);
            let dot = |p: &[f32]| f.iter().zip(p).map(|(a, b)| a * b).sum::<f32>();
            dot(anomalous) / (nf * na) - dot(normal) / (nf * nn)
        })
        .collect()
}

/// Fuses per-layer maps: weights are the softmax over layers of each map's mean; returns the
/// fused map and the weights.
pub fn fuse_layers(maps: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>) {
    if maps.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let means: Vec<f32> = maps.iter().map(|m| m.iter().sum::<f32>() / m.len().max(1) as f32).collect();
    let top = means.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = means.iter().map(|m| (m - top).exp()).collect();
    let total: f32 = exps.iter().sum();
    let weights: Vec<f32> = exps.iter().map(|e| e / total).collect();
    let mut fused = vec![0.0; maps[0].len()];
    for (map, w) in maps.iter().zip(&weights) {
        for (f, v) in fused.iter_mut().zip(map) {
            *f += w * v;
        }
    }
    (fused, weights)
}

/// Bilinear resize of a `width x height` map to `out_width x out_height`, as PyTorch's
/// `F.interpolate(mode="bilinear", align_corners=False)`.
pub fn resize_bilinear(map: &[f32], width: usize, height: usize, out_width: usize, out_height: usize) -> Vec<f32> {
    let source = |o: usize, n_in: usize, n_out: usize| {
        let s = ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        (i0, i1, (s - i0 as f64) as f32)
    };
    let mut out = Vec::with_capacity(out_width * out_height);
    for y in 0..out_height {
        let (y0, y1, fy) = source(y, height, out_height);
        for x in 0..out_width {
            let (x0, x1, fx) = source(x, width, out_width);
            let at = |x: usize, y: usize| map[y * width + x];
            let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
            let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// Gaussian smoothing of a row-major `width x height` map as `scipy.ndimage.gaussian_filter`
/// computes it (mode "reflect", truncated at 4 sigma, separable, rows then columns); sigma in
/// pixels, 0 leaves the map as it is. The CLIP anomaly papers smooth their maps with sigma 4
/// at the model input.
pub fn gaussian_smooth(map: &[f32], width: usize, height: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 || map.is_empty() {
        return map.to_vec();
    }
    let radius = (4.0 * f64::from(sigma) + 0.5) as isize;
    let mut kernel: Vec<f64> = (-radius..=radius).map(|x| (-0.5 * (x * x) as f64 / f64::from(sigma).powi(2)).exp()).collect();
    let total: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|w| *w /= total);
    // "reflect": d c b a | a b c d | d c b a.
    let reflect = |i: isize, n: usize| -> usize {
        let period = 2 * n as isize;
        let i = i.rem_euclid(period);
        (if i >= n as isize { period - 1 - i } else { i }) as usize
    };
    let pass = |input: &[f32], along_rows: bool| -> Vec<f32> {
        let mut out = vec![0f32; input.len()];
        for y in 0..height {
            for x in 0..width {
                let mut sum = 0f64;
                for (k, w) in kernel.iter().enumerate() {
                    let offset = k as isize - radius;
                    let (sx, sy) = if along_rows { (x, reflect(y as isize + offset, height)) } else { (reflect(x as isize + offset, width), y) };
                    sum += w * f64::from(input[sy * width + sx]);
                }
                out[y * width + x] = sum as f32;
            }
        }
        out
    };
    // scipy filters axis 0 (down the rows) first, then axis 1.
    pass(&pass(map, true), false)
}

/// Min-max normalisation to [0, 1] for display (a constant map becomes all zeros).
pub fn normalise_min_max(map: &[f32]) -> Vec<f32> {
    let (low, high) = map.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let range = high - low;
    map.iter().map(|v| if range > 0.0 { (v - low) / range } else { 0.0 }).collect()
}

/// The slice's image score: the mean of the `k` highest values of the raw map (k = 1 is the
/// maximum; CUE uses the top 1 % of pixels, at least one).
pub fn top_k_mean(map: &[f32], k: usize) -> f32 {
    let k = k.clamp(1, map.len().max(1));
    let mut sorted = map.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    sorted.iter().take(k).sum::<f32>() / k as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_match_the_numpy_reference() {
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/data/anomaly_reference.json")).unwrap();
        let floats = |v: &serde_json::Value| -> Vec<f32> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect() };
        let width = reference["width"].as_u64().unwrap() as usize;
        let side = reference["side"].as_u64().unwrap() as usize;
        let out = reference["out"].as_u64().unwrap() as usize;
        let (pa, pn) = (floats(&reference["prompt_anomalous"]), floats(&reference["prompt_normal"]));
        let maps: Vec<Vec<f32>> = reference["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| layer_map(&floats(f), width, &pa, &pn))
            .collect();
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len(), "{what}");
            if let Some(i) = a.iter().zip(b).position(|(x, y)| (x - y).abs() > 1e-5) {
                panic!("{what}: first mismatch at {i}: {} vs {}", a[i], b[i]);
            }
        };
        for (l, m) in maps.iter().enumerate() {
            close(m, &floats(&reference["layer_maps"][l]), "layer map");
        }
        let (fused, weights) = fuse_layers(&maps);
        close(&weights, &floats(&reference["weights"]), "weights");
        close(&fused, &floats(&reference["fused"]), "fused");
        let up = resize_bilinear(&fused, side, side, out, out);
        close(&up, &floats(&reference["upsampled"]), "upsampled");
        close(&normalise_min_max(&up), &floats(&reference["normalised"]), "normalised");
        let score = top_k_mean(&up, 10);
        assert!((score - reference["top10_mean"].as_f64().unwrap() as f32).abs() < 1e-5);
    }

    #[test]
    fn gaussian_smoothing_matches_scipy() {
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/data/gaussian_reference.json")).unwrap();
        let floats = |v: &serde_json::Value| -> Vec<f32> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect() };
        let (width, height) = (reference["width"].as_u64().unwrap() as usize, reference["height"].as_u64().unwrap() as usize);
        let map = floats(&reference["map"]);
        for sigma in ["1.5", "4.0"] {
            let mine = gaussian_smooth(&map, width, height, sigma.parse().unwrap());
            let theirs = floats(&reference["smoothed"][sigma]);
            let worst = mine.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-5, "sigma {sigma}: {worst}");
        }
        assert_eq!(gaussian_smooth(&map, width, height, 0.0), map);
    }

    #[test]
    fn identical_prompts_give_a_zero_map_and_equal_weights() {
        let features = vec![0.3, -0.2, 0.9, 0.1, 0.4, 0.4];
        let m = layer_map(&features, 3, &[1.0, 0.0, 0.0], &[1.0, 0.0, 0.0]);
        assert!(m.iter().all(|v| v.abs() < 1e-6));
        let (_, w) = fuse_layers(&[m.clone(), m]);
        assert_eq!(w, vec![0.5, 0.5]);
        assert_eq!(normalise_min_max(&[2.0, 2.0]), vec![0.0, 0.0]);
    }
}
