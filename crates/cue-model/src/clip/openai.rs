//! OpenAI/OpenCLIP state dicts (as safetensors) to transformers' key names: the one key table.
//!
//! | OpenAI / OpenCLIP                                  | transformers                                          |
//! |----------------------------------------------------|-------------------------------------------------------|
//! | `token_embedding.weight`                           | `text_model.embeddings.token_embedding.weight`        |
//! | `positional_embedding`                             | `text_model.embeddings.position_embedding.weight`     |
//! | `transformer.resblocks.N.attn.in_proj_weight/bias` | `text_model.encoder.layers.N.self_attn.{q,k,v}_proj.*` (split in three along rows) |
//! | `transformer.resblocks.N.attn.out_proj.*`          | `text_model.encoder.layers.N.self_attn.out_proj.*`    |
//! | `transformer.resblocks.N.ln_1.*` / `ln_2.*`        | `text_model.encoder.layers.N.layer_norm1.*` / `layer_norm2.*` |
//! | `transformer.resblocks.N.mlp.c_fc.*` / `c_proj.*`  | `text_model.encoder.layers.N.mlp.fc1.*` / `fc2.*`     |
//! | `ln_final.*`                                       | `text_model.final_layer_norm.*`                       |
//! | `text_projection` `[width, embed]`                 | `text_projection.weight` `[embed, width]` (transposed)|
//! | `visual.class_embedding`                           | `vision_model.embeddings.class_embedding`             |
//! | `visual.positional_embedding`                      | `vision_model.embeddings.position_embedding.weight`   |
//! | `visual.conv1.weight`                              | `vision_model.embeddings.patch_embedding.weight`      |
//! | `visual.ln_pre.*` / `visual.ln_post.*`             | `vision_model.pre_layrnorm.*` / `vision_model.post_layernorm.*` |
//! | `visual.transformer.resblocks.N.*`                 | `vision_model.encoder.layers.N.*` (as the text blocks)|
//! | `visual.proj` `[width, embed]`                     | `visual_projection.weight` `[embed, width]` (transposed) |
//! | `logit_scale`                                      | `logit_scale`                                         |
//!
//! Any other key is passed through unchanged, so the strict loader reports it as unused.

use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::config::ClipConfig;
use super::load::ClipLoadError;

/// Whether a checkpoint's keys are OpenAI's layout rather than transformers'.
pub fn is_openai_layout(keys: &[String]) -> bool {
    keys.iter().any(|k| k == "visual.proj" || k == "positional_embedding" || k.starts_with("visual.transformer."))
}

/// Reads an OpenAI-layout safetensors file and returns the same weights as a transformers-layout
/// safetensors container in memory.
pub fn to_transformers_safetensors(path: &Path, _config: &ClipConfig) -> Result<Vec<u8>, ClipLoadError> {
    let format = |detail: String| ClipLoadError::Format { detail, path: path.to_path_buf() };
    let bytes = std::fs::read(path).map_err(|source| ClipLoadError::Io { what: "checkpoint", source, path: path.to_path_buf() })?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (key, view) in tensors.tensors() {
        let (dtype, shape, data) = (view.dtype(), view.shape().to_vec(), view.data());
        if let Some(prefix) = key.strip_suffix(".attn.in_proj_weight").or_else(|| key.strip_suffix(".attn.in_proj_bias")) {
            let what = if key.ends_with("weight") { "weight" } else { "bias" };
            let rows = shape.first().copied().unwrap_or(0);
            if rows % 3 != 0 {
                return Err(format(format!("{key} has {rows} rows, not a multiple of 3")));
            }
            let part = data.len() / 3;
            let mut part_shape = shape.clone();
            part_shape[0] = rows / 3;
            for (i, name) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
                let target = format!("{}.self_attn.{name}.{what}", block_prefix(prefix));
                out.push((target, dtype, part_shape.clone(), data[i * part..(i + 1) * part].to_vec()));
            }
            continue;
        }
        if key == "visual.proj" || key == "text_projection" {
            if shape.len() != 2 {
                return Err(format(format!("{key} is not a matrix: {shape:?}")));
            }
            let target = if key == "visual.proj" { "visual_projection.weight" } else { "text_projection.weight" };
            let transposed = transpose(data, shape[0], shape[1], dtype.bitsize() / 8);
            out.push((target.into(), dtype, vec![shape[1], shape[0]], transposed));
            continue;
        }
        out.push((rename(&key), dtype, shape, data.to_vec()));
    }
    let views: Vec<(String, TensorView<'_>)> = out
        .iter()
        .map(|(k, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data).map(|v| (k.clone(), v)).map_err(|e| format(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize(views, None).map_err(|e| format(e.to_string()))
}

fn transpose(data: &[u8], rows: usize, columns: usize, element: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for r in 0..rows {
        for c in 0..columns {
            let from = (r * columns + c) * element;
            let to = (c * rows + r) * element;
            out[to..to + element].copy_from_slice(&data[from..from + element]);
        }
    }
    out
}

/// `visual.transformer.resblocks.3` -> `vision_model.encoder.layers.3`, text likewise.
fn block_prefix(prefix: &str) -> String {
    if let Some(rest) = prefix.strip_prefix("visual.transformer.resblocks.") {
        format!("vision_model.encoder.layers.{rest}")
    } else if let Some(rest) = prefix.strip_prefix("transformer.resblocks.") {
        format!("text_model.encoder.layers.{rest}")
    } else {
        prefix.to_string()
    }
}

fn rename(key: &str) -> String {
    let fixed = [
        ("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
        ("positional_embedding", "text_model.embeddings.position_embedding.weight"),
        ("visual.class_embedding", "vision_model.embeddings.class_embedding"),
        ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
        ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"),
    ];
    if let Some((_, to)) = fixed.iter().find(|(from, _)| *from == key) {
        return (*to).to_string();
    }
    let prefixes = [
        ("ln_final.", "text_model.final_layer_norm."),
        ("visual.ln_pre.", "vision_model.pre_layrnorm."),
        ("visual.ln_post.", "vision_model.post_layernorm."),
    ];
    for (from, to) in prefixes {
        if let Some(rest) = key.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    for tower in ["visual.transformer.resblocks.", "transformer.resblocks."] {
        if let Some(rest) = key.strip_prefix(tower) {
            let (index, inner) = rest.split_once('.').unwrap_or((rest, ""));
            let inner = match inner {
                i if i.starts_with("ln_1.") => i.replacen("ln_1.", "layer_norm1.", 1),
                i if i.starts_with("ln_2.") => i.replacen("ln_2.", "layer_norm2.", 1),
                i if i.starts_with("mlp.c_fc.") => i.replacen("mlp.c_fc.", "mlp.fc1.", 1),
                i if i.starts_with("mlp.c_proj.") => i.replacen("mlp.c_proj.", "mlp.fc2.", 1),
                i if i.starts_with("attn.out_proj.") => i.replacen("attn.out_proj.", "self_attn.out_proj.", 1),
                i => i.to_string(),
            };
            return format!("{}.{inner}", block_prefix(&format!("{tower}{index}")));
        }
    }
    key.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_table_covers_both_towers() {
        assert_eq!(rename("visual.transformer.resblocks.11.mlp.c_fc.bias"), "vision_model.encoder.layers.11.mlp.fc1.bias");
        assert_eq!(rename("transformer.resblocks.0.ln_2.weight"), "text_model.encoder.layers.0.layer_norm2.weight");
        assert_eq!(rename("transformer.resblocks.3.attn.out_proj.weight"), "text_model.encoder.layers.3.self_attn.out_proj.weight");
        assert_eq!(rename("visual.ln_post.bias"), "vision_model.post_layernorm.bias");
        assert_eq!(rename("ln_final.weight"), "text_model.final_layer_norm.weight");
        assert_eq!(rename("something.else"), "something.else");
    }

    #[test]
    fn transpose_moves_elements_of_any_width() {
        let data: Vec<u8> = (0u8..12).collect(); // 2 x 3 matrix of u16
        assert_eq!(transpose(&data, 2, 3, 2), vec![0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
    }
}
