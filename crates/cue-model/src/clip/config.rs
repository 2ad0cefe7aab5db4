//! CLIP configurations, read from transformers' `config.json` with transformers' defaults for
//! every missing key, and the presets of the public OpenAI checkpoints.

use serde::{Deserialize, Serialize};

/// Activation of the MLP blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`, OpenAI's CLIP.
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// Exact (erf) GELU.
    #[serde(rename = "gelu")]
    Gelu,
    /// tanh-approximated GELU.
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh")]
    GeluTanh,
}

/// The text tower (`text_config`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct TextConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Width of `text_projection`'s output (transformers also reads the top-level value).
    pub projection_dim: usize,
    /// Encoder blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Context length.
    pub max_position_embeddings: usize,
    /// MLP activation.
    pub hidden_act: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Start token id.
    pub bos_token_id: u32,
    /// End token id; 2 in legacy configs, where pooling takes the argmax of the ids.
    pub eos_token_id: u32,
    /// Padding token id.
    pub pad_token_id: u32,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            bos_token_id: 49406,
            eos_token_id: 49407,
            pad_token_id: 1,
        }
    }
}

impl TextConfig {
    /// Whether the end-of-text position is the argmax of the ids (configs with
    /// `eos_token_id == 2`, as transformers treats them) rather than the first `eos_token_id`.
    pub fn pools_at_argmax(&self) -> bool {
        self.eos_token_id == 2
    }
}

/// The vision tower (`vision_config`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct VisionConfig {
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Width of `visual_projection`'s output.
    pub projection_dim: usize,
    /// Encoder blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Input side in pixels.
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// MLP activation.
    pub hidden_act: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

impl VisionConfig {
    /// Patches per side (16 for ViT-L/14 at 224 px).
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// A whole CLIP model's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    /// Text tower.
    pub text: TextConfig,
    /// Vision tower.
    pub vision: VisionConfig,
    /// Width of the joint embedding space.
    pub projection_dim: usize,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    text_config: Option<serde_json::Value>,
    #[serde(default)]
    vision_config: Option<serde_json::Value>,
    #[serde(default = "default_projection_dim")]
    projection_dim: usize,
}

fn default_projection_dim() -> usize {
    512
}

/// Problems with a `config.json`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not valid JSON or a field of the wrong type.
    #[error("invalid CLIP config ({0})")]
    Invalid(#[from] serde_json::Error),
    /// Sizes that cannot form a model.
    #[error("inconsistent CLIP config: {0}")]
    Inconsistent(String),
}

impl ClipConfig {
    /// Parses transformers' `config.json` of a `CLIPModel`.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_json::from_str(text)?;
        let text_config: TextConfig = match raw.text_config {
            Some(v) => serde_json::from_value(v)?,
            None => TextConfig::default(),
        };
        let vision: VisionConfig = match raw.vision_config {
            Some(v) => serde_json::from_value(v)?,
            None => VisionConfig::default(),
        };
        let config = Self { text: text_config, vision, projection_dim: raw.projection_dim };
        config.validate()?;
        Ok(config)
    }

    /// transformers' `config.json` form of this configuration (what `from_json` reads back).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "model_type": "clip",
            "text_config": self.text,
            "vision_config": self.vision,
            "projection_dim": self.projection_dim,
        })
        .to_string()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(ConfigError::Inconsistent(what)) };
        let (t, v) = (&self.text, &self.vision);
        check(t.num_attention_heads > 0 && t.hidden_size % t.num_attention_heads == 0, format!("text width {} not divisible by {} heads", t.hidden_size, t.num_attention_heads))?;
        check(v.num_attention_heads > 0 && v.hidden_size % v.num_attention_heads == 0, format!("vision width {} not divisible by {} heads", v.hidden_size, v.num_attention_heads))?;
        check(v.patch_size > 0 && v.image_size % v.patch_size == 0, format!("image size {} not a multiple of patch size {}", v.image_size, v.patch_size))?;
        check(t.max_position_embeddings > 2, format!("context of {} tokens", t.max_position_embeddings))
    }

    /// The configuration of a public OpenAI checkpoint by short name: `ViT-B/32`, `ViT-B/16`,
    /// `ViT-L/14`, `ViT-L/14-336`.
    pub fn preset(name: &str) -> Option<Self> {
        let base = |vision: VisionConfig, text: TextConfig, projection_dim| Self { text, vision, projection_dim };
        let b_text = TextConfig::default();
        let b_vision = |patch_size| VisionConfig { patch_size, ..VisionConfig::default() };
        let l_text = TextConfig { hidden_size: 768, intermediate_size: 3072, projection_dim: 768, num_attention_heads: 12, ..TextConfig::default() };
        let l_vision = |image_size| VisionConfig {
            hidden_size: 1024,
            intermediate_size: 4096,
            projection_dim: 768,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            image_size,
            patch_size: 14,
            ..VisionConfig::default()
        };
        Some(match name {
            "ViT-B/32" => base(b_vision(32), b_text, 512),
            "ViT-B/16" => base(b_vision(16), b_text, 512),
            "ViT-L/14" => base(l_vision(224), l_text, 768),
            "ViT-L/14-336" => base(l_vision(336), l_text, 768),
            _ => return None,
        })
    }

    /// The Hugging Face repository of a preset.
    pub fn preset_repository(name: &str) -> Option<&'static str> {
        Some(match name {
            "ViT-B/32" => "openai/clip-vit-base-patch32",
            "ViT-B/16" => "openai/clip-vit-base-patch16",
            "ViT-L/14" => "openai/clip-vit-large-patch14",
            "ViT-L/14-336" => "openai/clip-vit-large-patch14-336",
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of openai/clip-vit-large-patch14's config.json (abridged to its sizes).
    const LARGE: &str = r#"{
        "architectures": ["CLIPModel"], "projection_dim": 768, "logit_scale_init_value": 2.6592,
        "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                        "num_hidden_layers": 12, "projection_dim": 768, "eos_token_id": 2,
                        "hidden_act": "quick_gelu"},
        "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                          "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768,
                          "image_size": 224, "hidden_act": "quick_gelu"}
    }"#;

    #[test]
    fn large_config_matches_its_preset_and_fills_defaults() {
        let config = ClipConfig::from_json(LARGE).unwrap();
        let mut preset = ClipConfig::preset("ViT-L/14").unwrap();
        preset.text.eos_token_id = 2;
        assert_eq!(config, preset);
        assert_eq!(config.vision.patches_per_side(), 16);
        assert!(config.text.pools_at_argmax());
        assert_eq!(config.text.vocab_size, 49408);
        assert_eq!(config.text.max_position_embeddings, 77);
    }

    #[test]
    fn inconsistent_configs_are_refused() {
        let odd = r#"{"vision_config": {"hidden_size": 100, "num_attention_heads": 16}}"#;
        assert!(matches!(ClipConfig::from_json(odd), Err(ConfigError::Inconsistent(_))));
        let patch = r#"{"vision_config": {"image_size": 225, "patch_size": 14}}"#;
        assert!(matches!(ClipConfig::from_json(patch), Err(ConfigError::Inconsistent(_))));
        assert!(matches!(ClipConfig::from_json("{"), Err(ConfigError::Invalid(_))));
        let act = r#"{"text_config": {"hidden_act": "swish"}}"#;
        assert!(ClipConfig::from_json(act).is_err());
    }
}
