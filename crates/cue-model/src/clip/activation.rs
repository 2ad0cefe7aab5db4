//! The MLP blocks' activation, with a one-pass CPU path for QuickGELU.
//!
//! burn's CPU backend computes `h * sigmoid(1.702 h)` as three passes over the activation (a
//! scalar multiply, a sigmoid calling libm's `expf` one value at a time, a product), each with
//! a fresh buffer: 8 % of a ViT-L/14 forward at batch 8 went to `expf` alone, much of it
//! here. On the CPU, outside autodiff and in f32, CUE takes burn's buffer over and applies the
//! whole function in place in one pass, with an `exp` the compiler vectorises (AVX-512 or AVX2
//! chosen at run time), on every core.

use burn::tensor::activation::{gelu, gelu_approximate, sigmoid};
use burn::tensor::{DType, Tensor};

use super::config::Activation;

/// `activation` applied to `h`.
pub fn activate(h: Tensor<3>, activation: Activation) -> Tensor<3> {
    match activation {
        Activation::QuickGelu if on_cpu_f32_untracked(&h) => quick_gelu_cpu(h),
        // OpenAI's approximation, as transformers' `quick_gelu`.
        Activation::QuickGelu => h.clone() * sigmoid(h * QUICK_GELU_SCALE),
        Activation::Gelu => gelu(h),
        Activation::GeluTanh => gelu_approximate(h),
    }
}

const QUICK_GELU_SCALE: f32 = 1.702;

/// Whether `h` is f32 on burn's CPU backend and records no gradient, so CUE's own CPU loops
/// may take it. On an autodiff device too: training computes the frozen vision tower's
/// features there, untracked, and a result made from the values is as untracked as burn's.
pub(super) fn on_cpu_f32_untracked(h: &Tensor<3>) -> bool {
    !h.is_tracked() && h.dtype() == DType::F32 && matches!(h.device().as_dispatch().clone().inner(), burn::backend::DispatchDevice::Flex(_))
}

fn quick_gelu_cpu(h: Tensor<3>) -> Tensor<3> {
    let device = h.device();
    // burn's CPU backend hands a contiguous buffer over without copying it.
    let mut data = h.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) => {
            quick_gelu_in_place(values);
            Tensor::from_data(data, &device)
        }
        // Not reached (the type was checked); burn's passes would still give the answer.
        Err(_) => {
            let h = Tensor::<3>::from_data(data, &device);
            h.clone() * sigmoid(h * QUICK_GELU_SCALE)
        }
    }
}

/// `x * sigmoid(1.702 x)` for every value, in place, in parallel.
pub fn quick_gelu_in_place(values: &mut [f32]) {
    use rayon::prelude::*;
    // Chunks large enough to amortise rayon's hand-off, small enough to spread over cores.
    const CHUNK: usize = 1 << 14;
    values.par_chunks_mut(CHUNK).for_each(quick_gelu_chunk);
}

/// QuickGELU over `values` on the calling thread (AVX-512 or AVX2 chosen at run time): for
/// stretches that are already being worked on, such as a matrix product's finished tile.
pub(super) fn quick_gelu_chunk(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::isa::avx512() {
            // SAFETY: the CPU has AVX-512 F, which is all the function's body is compiled for.
            return unsafe { quick_gelu_avx512(values) };
        }
        if super::isa::avx2() {
            // SAFETY: as above, for AVX2 and FMA.
            return unsafe { quick_gelu_avx2(values) };
        }
    }
    quick_gelu_portable(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn quick_gelu_avx512(values: &mut [f32]) {
    quick_gelu_portable(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn quick_gelu_avx2(values: &mut [f32]) {
    quick_gelu_portable(values);
}

/// Written without branches or calls so that each caller's target features vectorise it; in
/// fixed runs of 16, so that stretches of a few dozen values (a product's finished tile) take
/// the vector loop too rather than its scalar tail.
#[inline(always)]
fn quick_gelu_portable(values: &mut [f32]) {
    let quick_gelu = |x: &mut f32| *x *= 1.0 / (1.0 + exp(-QUICK_GELU_SCALE * *x));
    let mut runs = values.chunks_exact_mut(16);
    for run in &mut runs {
        run.iter_mut().for_each(quick_gelu);
    }
    runs.into_remainder().iter_mut().for_each(quick_gelu);
}

/// `e^x` to about 2 ulp for x in [-87.3, 88.7], saturating outside (to 0 below, to 2^127 above,
/// so the sigmoid above reaches 0 and 1 without producing a NaN); NaN stays NaN.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact for |n| < 2^8 (Cody and Waite).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 x 2^23 rounds to an integer (to nearest even) and leaves it in the low
    // mantissa bits, read back by subtracting the constant's bits: unlike `round()` then
    // `as i32` (a saturating cast LLVM does one lane at a time, half of softmax's time), this
    // vectorises.
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.7);
    let shifted = x * LOG2_E + SHIFTER;
    let n = shifted - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r on |r| <= ln2/2: Taylor to r^7, relative error below 2e-8 there.
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2^n through the exponent bits, as two halves so that both stay normal over n's range
    // [-126, 128].
    // NaN makes these bits meaningless, but then `p` is NaN and so is the result.
    let n = shifted.to_bits() as i32 - SHIFTER.to_bits() as i32;
    let low = n >> 1;
    let two_to = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    p * two_to(low) * two_to(n - low)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// The formula in f64 from the same f32 argument of `exp` as the code's (its rounding,
    /// amplified by e^a's slope, is the function's own and burn's too).
    fn quick_gelu_f64(x: f32) -> f64 {
        let argument = -QUICK_GELU_SCALE * x;
        x as f64 / (1.0 + (argument as f64).exp())
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_f64_over_its_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let expected = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - expected) / expected).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        let floor = (-87.3f32 as f64).exp();
        assert!(((exp(-1000.0) as f64 - floor) / floor).abs() < 3e-7);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn quick_gelu_matches_the_formula_in_f64_on_every_path() {
        // Odd length: the vector loops' remainders run too; values span both saturations.
        let inputs: Vec<f32> =
            (0..100_003).map(|i| (i as f32 - 50_001.0) * 0.002_1).chain([0.0, -0.0, 1e-30, -1e-30, 60.0, -60.0]).collect();
        let check = |name: &str, run: &dyn Fn(&mut [f32])| {
            let mut values = inputs.clone();
            run(&mut values);
            for (&x, &y) in inputs.iter().zip(&values) {
                let expected = quick_gelu_f64(x);
                let error = (y as f64 - expected).abs();
                assert!(error <= 4e-7 * expected.abs().max(1e-3), "{name}: quick_gelu({x}) = {y}, expected {expected}");
            }
        };
        check("portable", &|v| quick_gelu_portable(v));
        check("dispatched, parallel", &|v| quick_gelu_in_place(v));
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: checked just above.
                check("avx2", &|v| unsafe { quick_gelu_avx2(v) });
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: checked just above.
                check("avx512", &|v| unsafe { quick_gelu_avx512(v) });
            }
        }
        let mut nan = [f32::NAN];
        quick_gelu_in_place(&mut nan);
        assert!(nan[0].is_nan());
    }

    #[test]
    fn on_an_autodiff_device_only_untracked_values_take_the_cpu_path() {
        let device = burn::tensor::Device::flex().autodiff();
        let values: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.25 - 3.0).collect();
        let h = Tensor::<3>::from_data(TensorData::new(values.clone(), [2, 3, 4]), &device);
        assert!(on_cpu_f32_untracked(&h));
        let tracked = h.clone().require_grad();
        assert!(!on_cpu_f32_untracked(&tracked));
        // The gradient of a tracked activation still arrives, through burn's ops.
        let grads = activate(tracked.clone(), Activation::QuickGelu).sum().backward();
        let gradient = tracked.grad(&grads).expect("a gradient").into_data().try_into_vec::<f32>().unwrap();
        for (&x, &g) in values.iter().zip(&gradient) {
            let s = 1.0 / (1.0 + (-1.702 * x as f64).exp());
            let expected = s + 1.702 * x as f64 * s * (1.0 - s);
            assert!((g as f64 - expected).abs() < 1e-5, "d/dx quick_gelu({x}) = {g}, expected {expected}");
        }
    }

    #[test]
    fn the_cpu_path_equals_burns_three_passes() {
        let device = burn::tensor::Device::flex();
        let values: Vec<f32> = (0..2 * 5 * 33).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
        let h = Tensor::<3>::from_data(TensorData::new(values, [2, 5, 33]), &device);
        assert!(on_cpu_f32_untracked(&h));
        let ours = activate(h.clone(), Activation::QuickGelu).into_data().try_into_vec::<f32>().unwrap();
        let burns = (h.clone() * sigmoid(h * QUICK_GELU_SCALE)).into_data().try_into_vec::<f32>().unwrap();
        for (a, b) in ours.iter().zip(&burns) {
            assert!((a - b).abs() <= 2e-6 * b.abs().max(1.0), "{a} against burn's {b}");
        }
    }
}
