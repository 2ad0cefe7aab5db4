use super::*;
use crate::clip::bf16_gemm::tests::values;

impl I16Weights {
    /// Weight (k, n) as the product sees it: its integer times its column's scale.
    fn value(&self, k: usize, n: usize) -> f64 {
        let nr = self.kernel.columns();
        let packed = self.panels()[((n / nr) * self.pairs + k / 2) * nr + n % nr];
        f64::from(halves(packed)[k % 2]) * f64::from(self.scales[n])
    }
}

/// The product of the quantized inputs and weights, summed in f64, plus the bias.
fn reference(a: &I16Rows, w: &I16Weights, bias: &[f32]) -> Vec<f64> {
    let mut out = vec![0.0; a.rows() * w.outputs];
    for r in 0..a.rows() {
        let row = a.values(r);
        for n in 0..w.outputs {
            let dot: f64 = row.iter().enumerate().map(|(k, &x)| f64::from(x) * w.value(k, n)).sum();
            out[r * w.outputs + n] = dot + f64::from(bias[n]);
        }
    }
    out
}

fn worst_relative(got: &[f32], expected: &[f64]) -> f64 {
    let scale = expected.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
    got.iter().zip(expected).map(|(g, e)| (f64::from(*g) - e).abs()).fold(0.0, f64::max) / scale
}

#[test]
fn the_product_matches_the_quantized_values_summed_in_f64() {
    // Odd sizes: a row tail, an odd number of inputs (a half pair), a partial panel, several
    // chunks of pairs, two row groups and two panel groups (300 x 601 x 200).
    for (rows, inputs, outputs) in [(19, 301, 77), (6, 2, 16), (1, 64, 5), (300, 601, 200), (7, 129, 16)] {
        let x = values(rows * inputs, 1 + rows as u32);
        let bias = values(outputs, 3);
        let weight = values(inputs * outputs, 7 + outputs as u32);
        let a = I16Rows::from_f32(&x, rows, inputs);
        for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512Vnni] {
            let w = I16Weights::pack_for(kernel, &weight, inputs, outputs, Some(&bias));
            let expected = reference(&a, &w, &bias);
            let mut portable = vec![0.0; rows * outputs];
            w.product_portable(&a, |r, n, sum| portable[r * outputs + n] = sum);
            let fast = w.apply(&a, None);
            for (name, got) in [("portable", &portable), ("apply", &fast)] {
                // Only the f32 additions of the chunks' sums differ from the f64 sum.
                let worst = worst_relative(got, &expected);
                assert!(worst < 1e-5, "{kernel:?} {name} {rows}x{inputs}x{outputs}: {worst:e}");
            }
            // The kernel does the portable product's arithmetic, in the same order.
            assert_eq!(fast, portable, "{kernel:?} {rows}x{inputs}x{outputs}");
            // Both layouts quantize the weights alike.
            assert_eq!(
                w.value(inputs - 1, outputs - 1),
                I16Weights::pack_for(Kernel::Portable, &weight, inputs, outputs, None).value(inputs - 1, outputs - 1)
            );
        }
    }
    eprintln!("integer kernels checked: AVX2 {}, AVX-512 VNNI {}", Kernel::Avx2.runs_here(), Kernel::Avx512Vnni.runs_here());
}

#[test]
fn quantizing_keeps_each_value_within_half_a_level_and_the_largest_exact() {
    let mut row = values(77, 5);
    row[40] = -9.5;
    let a = I16Rows::from_f32(&row, 1, row.len());
    assert_eq!(a.scale(0), 9.5 / ACTIVATION_LEVELS as f32);
    let back = a.values(0);
    assert_eq!(back[40], -9.5);
    for (x, b) in row.iter().zip(&back) {
        assert!((x - b).abs() <= 0.5 * a.scale(0) * 1.0001, "{x} came back as {b}");
    }
    // The same integers with or without AVX2 (ties, a tail past 16 values, an odd count).
    let mut ties: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.5 * 9.5 / ACTIVATION_LEVELS as f32).collect();
    ties.push(-9.5);
    for row in [row.as_slice(), &ties] {
        let mut portable = vec![7u32; row.len().div_ceil(2) + 1];
        let scale = 9.5 / ACTIVATION_LEVELS as f32;
        rows::quantize_portable(row, 1.0 / scale, &mut portable);
        let mut fast = vec![7u32; row.len().div_ceil(2) + 1];
        assert_eq!(quantize_row(row, &mut fast), scale);
        assert_eq!(fast, portable);
        assert_eq!(fast[row.len().div_ceil(2)], 7, "a pair past the row was written");
    }
}

#[test]
fn a_zero_row_gives_the_bias_and_a_non_finite_one_nan_in_its_own_row_only() {
    let (inputs, outputs) = (40, 20);
    let bias = values(outputs, 9);
    let w = I16Weights::pack(&values(inputs * outputs, 8), inputs, outputs, Some(&bias));
    let mut x = values(3 * inputs, 4);
    x[..inputs].fill(0.0);
    x[inputs + 7] = f32::INFINITY;
    let out = w.matmul(&x, 3);
    assert_eq!(&out[..outputs], &bias[..]);
    assert!(out[outputs..2 * outputs].iter().all(|v| v.is_nan()));
    assert!(out[2 * outputs..].iter().all(|v| v.is_finite()));
    // A NaN weight makes its own column NaN.
    let mut weight = values(inputs * outputs, 8);
    weight[5 * outputs + 3] = f32::NAN;
    let out = I16Weights::pack(&weight, inputs, outputs, None).matmul(&values(inputs, 4), 1);
    assert!(out[3].is_nan() && out.iter().enumerate().all(|(n, v)| n == 3 || v.is_finite()));
}

#[test]
fn the_product_onto_a_residual_and_through_a_step_agree_with_the_plain_one() {
    for (rows, inputs, outputs) in [(300, 300, 161), (5, 40, 32), (9, 3, 1)] {
        let x = values(rows * inputs, 21);
        let w = I16Weights::pack(&values(inputs * outputs, 23), inputs, outputs, Some(&values(outputs, 22)));
        let a = I16Rows::from_f32(&x, rows, inputs);
        let product = w.apply(&a, None);
        let residual = values(rows * outputs, 24);
        let mut onto = residual.clone();
        w.apply_onto(&a, &mut onto);
        for ((o, r), p) in onto.iter().zip(&residual).zip(&product) {
            // The residual joins the sum at the first chunk: a few f32 roundings apart.
            assert!((o - (r + p)).abs() <= 1e-5 * (r.abs() + p.abs()).max(1.0), "{o} against {r} + {p}");
        }
        let stepped = w.apply(&a, Some(|v: &mut [f32]| v.iter_mut().for_each(|x| *x = 2.0 * *x + 1.0)));
        for (s, p) in stepped.iter().zip(&product) {
            assert_eq!(*s, 2.0 * p + 1.0);
        }
    }
}

/// The error against the f32 product, for rows like a ViT's: Gaussian-like values, and the
/// same rows with one channel 100 times larger (the "massive activations" of large ViTs).
#[test]
fn the_error_against_f32_stays_within_its_bound_with_and_without_an_outlier_channel() {
    let (rows, inputs, outputs) = (64, 1024, 256);
    let w_values = values(inputs * outputs, 31);
    let w = I16Weights::pack(&w_values, inputs, outputs, None);
    let exact = |x: &[f32]| -> Vec<f64> {
        let mut out = vec![0.0; rows * outputs];
        for r in 0..rows {
            for n in 0..outputs {
                out[r * outputs + n] = (0..inputs).map(|k| f64::from(x[r * inputs + k]) * f64::from(w_values[k * outputs + n])).sum();
            }
        }
        out
    };
    let bf16 = super::super::bf16_gemm::Bf16Weights::pack(&w_values, inputs, outputs, None);
    // Relative to each row's largest output, of the integer product (or the bf16 one).
    let row_error = |x: &[f32], of_bf16: bool| {
        let (got, expected) = (if of_bf16 { bf16.matmul(x, rows) } else { w.matmul(x, rows) }, exact(x));
        (0..rows)
            .map(|r| {
                let row = r * outputs..(r + 1) * outputs;
                let scale = expected[row.clone()].iter().fold(0.0f64, |m, v| m.max(v.abs()));
                got[row.clone()].iter().zip(&expected[row]).map(|(g, e)| (f64::from(*g) - e).abs()).fold(0.0, f64::max) / scale
            })
            .fold(0.0, f64::max)
    };
    let mut x = values(rows * inputs, 32);
    let (plain, plain_bf16) = (row_error(&x, false), row_error(&x, true));
    for r in 0..rows {
        x[r * inputs + 17] = 100.0 * 2.0;
    }
    let (outlier, outlier_bf16) = (row_error(&x, false), row_error(&x, true));
    eprintln!(
        "against f32: integer {plain:e}, bf16 {plain_bf16:e} (plain rows); integer {outlier:e}, bf16 {outlier_bf16:e} (an outlier channel 100x)"
    );
    // Measured 3.9e-4 and 2.4e-3; bf16 operands 2.8e-3 and 2.2e-3.
    assert!(plain < 1e-3 && outlier < 5e-3, "{plain:e}, {outlier:e}");
}
