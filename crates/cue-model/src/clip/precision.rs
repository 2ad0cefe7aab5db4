//! Reduced precision for the frozen towers (`--precision f32|f16|bf16|i16`).
//!
//! As under PyTorch's autocast: the weights of the linear layers, convolutions and embeddings
//! are cast to the chosen type and attention and MLP compute in it, while the residual stream
//! and the LayerNorms stay float32 (a variance summed over 1,024 channels of real CLIP
//! activations can leave f16's range, and rounding the stream in every block adds up), and
//! every output leaves the tower as float32, so the head, the prompts and training see float32
//! whatever the tower ran in. The error this
//! costs is measured against float32 by `tests/clip_reference.rs` (on the CPU and on wgpu).
//!
//! `i16` is CUE's own, for CPUs without AVX-512 BF16: the blocks' linear layers in scaled
//! integers through [`super::cpu_i16`], everything else float32. It needs AVX2; elsewhere
//! (another CPU, a GPU) the towers run float32 and say so.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, FloatDType, Tensor};

use super::encoder::PackedBlock;
use super::model::ClipModel;

/// The number type the frozen towers compute in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE single precision (the checkpoint's own).
    #[default]
    F32,
    /// IEEE half precision: 11-bit mantissa, range to 65,504.
    F16,
    /// bfloat16: float32's range, 8-bit mantissa.
    Bf16,
    /// The blocks' linear layers in scaled integers (12-bit weights per output, 14-bit
    /// activations per row) through CUE's AVX2 CPU product; the rest float32.
    I16,
}

impl Precision {
    /// The type, when it is a reduced one: what is named beside an output it made (a map's
    /// description, the model and prompt's id), so f32 outputs keep the names they had before
    /// there was a choice.
    pub fn reduced(self) -> Option<Self> {
        (self != Precision::F32).then_some(self)
    }

    /// Burn's float type.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 | Precision::I16 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    pub(crate) fn of(dtype: DType) -> Self {
        match dtype {
            DType::F16 => Precision::F16,
            DType::BF16 => Precision::Bf16,
            _ => Precision::F32,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(Precision::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "i16" | "int16" => Ok(Precision::I16),
            other => Err(format!("unknown precision '{other}' (expected f32, f16, bf16 or i16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
            Precision::I16 => "i16",
        })
    }
}

/// Casts every float parameter outside LayerNorms.
struct CastWeights {
    dtype: FloatDType,
    /// Depth of LayerNorm modules entered (their parameters stay float32).
    in_layer_norm: usize,
}

impl ModuleMapper for CastWeights {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        if container_type == "Struct:LayerNorm" {
            self.in_layer_norm += 1;
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if container_type == "Struct:LayerNorm" {
            self.in_layer_norm -= 1;
        }
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.in_layer_norm > 0 {
            return param;
        }
        let dtype = self.dtype;
        param.map(|t| t.cast(dtype))
    }
}

impl ClipModel {
    /// The model with its weights (LayerNorms excepted) in `precision`. bf16 on a CPU where
    /// CUE's own bf16 product runs and is faster than f32 ([`super::cpu_bf16::pays_off`])
    /// instead packs every block's linear layers for it (burn's CPU backend would compute bf16
    /// as f32), leaving the rest in f32.
    ///
    /// `i16` packs the blocks for CUE's integer product on a CPU with AVX2; elsewhere the
    /// towers stay float32 (logged, and [`Self::precision`] says f32).
    pub fn with_precision(self, precision: Precision) -> Self {
        if precision == Precision::I16 {
            return self.with_i16_cpu_product();
        }
        let kernel = precision == Precision::Bf16 && self.on_cpu() && super::cpu_bf16::pays_off();
        self.with_precision_choosing(precision, kernel)
    }

    fn with_i16_cpu_product(mut self) -> Self {
        self = self.with_precision_choosing(Precision::F32, false);
        if !(self.on_cpu() && super::i16_gemm::available()) {
            tracing::warn!("--precision i16 needs a CPU with AVX2 (and the CPU device): the towers run in f32");
            return self;
        }
        if let Err(e) = self.pack_blocks(|layer| super::cpu_i16::BlockI16::pack(layer).map(PackedBlock::I16)) {
            tracing::warn!(error = %e, "cannot pack the weights for the integer CPU product; the towers run in f32");
        }
        self
    }

    /// bf16 through CUE's bf16 CPU product wherever the CPU can run it, fast or not (for checks
    /// of its accuracy); elsewhere as [`Self::with_precision`].
    pub fn with_bf16_cpu_product(self) -> Self {
        let kernel = self.on_cpu() && super::bf16_gemm::available();
        self.with_precision_choosing(Precision::Bf16, kernel)
    }

    fn with_precision_choosing(mut self, precision: Precision, bf16_kernel: bool) -> Self {
        for layer in self.vision_model.encoder.layers.iter_mut().chain(self.text_model.encoder.layers.iter_mut()) {
            layer.cpu_packed = None;
        }
        if bf16_kernel {
            match self.pack_blocks(|layer| super::cpu_bf16::BlockBf16::pack(layer).map(PackedBlock::Bf16)) {
                Ok(()) => return self,
                Err(e) => tracing::warn!(error = %e, "cannot pack the weights for the bf16 CPU product; casting them instead"),
            }
        }
        self.map(&mut CastWeights { dtype: precision.dtype(), in_layer_norm: 0 })
    }

    fn on_cpu(&self) -> bool {
        matches!(self.vision_model.embeddings.patch_embedding.weight.val().device().as_dispatch(), burn::backend::DispatchDevice::Flex(_))
    }

    /// Packs every block with `pack`, or none (a block that cannot be read leaves the others
    /// unpacked).
    fn pack_blocks(
        &mut self,
        pack: impl Fn(&super::encoder::ClipEncoderLayer) -> Result<PackedBlock, crate::HostReadError>,
    ) -> Result<(), crate::HostReadError> {
        let layers = || self.vision_model.encoder.layers.iter().chain(self.text_model.encoder.layers.iter());
        let packed = layers().map(pack).collect::<Result<Vec<_>, _>>()?;
        let layers = self.vision_model.encoder.layers.iter_mut().chain(self.text_model.encoder.layers.iter_mut());
        for (layer, packed) in layers.zip(packed) {
            layer.cpu_packed = Some(packed);
        }
        Ok(())
    }

    /// The precision the towers compute in (bf16 or i16 when the blocks are packed for one of
    /// CUE's CPU products, else the type of the patch projection's weights).
    pub fn precision(&self) -> Precision {
        match self.vision_model.encoder.layers.first().and_then(|l| l.cpu_packed.as_ref()) {
            Some(PackedBlock::Bf16(_)) => Precision::Bf16,
            Some(PackedBlock::I16(_)) => Precision::I16,
            None => self.weights_precision(),
        }
    }

    /// Whether the blocks run through CUE's bf16 CPU product ([`super::cpu_bf16`]).
    pub fn uses_bf16_cpu_product(&self) -> bool {
        self.precision() == Precision::Bf16 && self.weights_precision() == Precision::F32
    }

    /// The type of the weights burn holds (the embeddings' and projections' inputs are cast to
    /// it): f32 under the bf16 CPU product, which keeps its own copy of the blocks' weights.
    pub(crate) fn weights_precision(&self) -> Precision {
        Precision::of(self.vision_model.embeddings.patch_embedding.weight.val().dtype())
    }
}

/// `x` in the towers' type.
pub(crate) fn to_compute<const D: usize>(x: Tensor<D>, precision: Precision) -> Tensor<D> {
    x.cast(precision.dtype())
}

/// `x` back in float32 (a no-op at float32).
pub(crate) fn to_f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.cast(FloatDType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_parse_and_print() {
        for p in [Precision::F32, Precision::F16, Precision::Bf16, Precision::I16] {
            assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
        }
        assert_eq!("half".parse::<Precision>(), Ok(Precision::F16));
        assert_eq!("int16".parse::<Precision>(), Ok(Precision::I16));
        assert!("f8".parse::<Precision>().unwrap_err().contains("f32, f16, bf16 or i16"));
    }
}
