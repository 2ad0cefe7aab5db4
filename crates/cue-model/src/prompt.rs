//! The learnable prompts: `P = [start, P_class, P_independent, P_dependent + pi', end]`, one for
//! "normal" and one for "anomalous", fed to the frozen text tower as token embeddings.
//!
//! `P_class` is 2 tokens per prompt (initialised from the token embeddings of "normal brain" /
//! "abnormal brain" when the vocabulary has them, otherwise N(0, 0.02)), `P_independent` and
//! `P_dependent` N tokens each (N(0, 0.02), CoOp's init), shared by both prompts or separate
//! per prompt ([`PromptConfig::shared_context`]). The image adaptor's output `pi'` is added to
//! every `P_dependent` token, so the prompt depends on the image. With N = 32 a prompt is
//! 2N + 4 = 68 tokens, inside CLIP's context of 77; the end token is last, where the tower pools.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use crate::clip::Clip;
use crate::clip::prefix::{PrefixKeys, repeat_rows};
use crate::clip::tokenizer::{ClipTokenizer, END_OF_TEXT, START_OF_TEXT};

/// Tokens of `P_class`.
pub const CLASS_TOKENS: usize = 2;

/// Shape of the learned prompt.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PromptConfig {
    /// Tokens of `P_independent` and of `P_dependent` (N).
    pub context_tokens: usize,
    /// One `P_independent`/`P_dependent` for both prompts (true) or one each.
    pub shared_context: bool,
}

impl Default for PromptConfig {
    fn default() -> Self {
        Self { context_tokens: 32, shared_context: true }
    }
}

impl PromptConfig {
    /// Tokens of one whole prompt, start and end included.
    pub fn prompt_tokens(&self) -> usize {
        2 * self.context_tokens + CLASS_TOKENS + 2
    }
}

/// The learnable vectors (all `[tokens, text width]`).
#[derive(Module, Debug)]
pub struct PromptLearner {
    /// `P_class` of the normal prompt.
    pub class_normal: Param<Tensor<2>>,
    /// `P_class` of the anomalous prompt.
    pub class_anomalous: Param<Tensor<2>>,
    /// `P_independent` (of the normal prompt, or of both when shared).
    pub independent: Param<Tensor<2>>,
    /// `P_independent` of the anomalous prompt when not shared.
    pub independent_anomalous: Option<Param<Tensor<2>>>,
    /// `P_dependent` (of the normal prompt, or of both when shared).
    pub dependent: Param<Tensor<2>>,
    /// `P_dependent` of the anomalous prompt when not shared.
    pub dependent_anomalous: Option<Param<Tensor<2>>>,
    /// Token embedding of `<|startoftext|>` (frozen, taken from the backbone, not saved).
    #[module(skip)]
    pub start: Tensor<1>,
    /// Token embedding of `<|endoftext|>` (frozen, taken from the backbone, not saved).
    #[module(skip)]
    pub end: Tensor<1>,
}

/// The two prompts' text features for a batch.
#[derive(Clone, Debug)]
pub struct PromptFeatures {
    /// L2-normalised projected features of the normal prompt, `[batch, projection]`.
    pub normal: Tensor<2>,
    /// L2-normalised projected features of the anomalous prompt, `[batch, projection]`.
    pub anomalous: Tensor<2>,
}

fn word_rows(clip: &Clip, words: &str, device: &Device) -> Option<Tensor<2>> {
    let tokenizer = ClipTokenizer::embedded().ok()?;
    let ids = tokenizer.encode(words);
    if ids.len() != CLASS_TOKENS || ids.iter().any(|&id| id as usize >= clip.config.text.vocab_size) {
        return None;
    }
    let rows = clip.model.token_embeddings(&[ids], device);
    let [_, tokens, width] = rows.dims();
    Some(rows.reshape([tokens, width]))
}

impl PromptLearner {
    /// New prompts for `clip`'s text tower, on `device` (seed the device first for
    /// reproducible initial vectors).
    pub fn new(clip: &Clip, config: &PromptConfig, device: &Device) -> Self {
        let width = clip.config.text.hidden_size;
        let random = |tokens: usize| {
            Param::from_tensor(Tensor::random([tokens, width], Distribution::Normal(0.0, 0.02), device))
        };
        let class = |words: &str| {
            word_rows(clip, words, device)
                .map(|t| Param::from_tensor(t.to_device(device).detach()))
                .unwrap_or_else(|| random(CLASS_TOKENS))
        };
        let special = |id: u32| -> Tensor<1> {
            let vocab = clip.config.text.vocab_size as u32;
            // Tiny test vocabularies lack CLIP's special ids: use the config's own bos/eos.
            let id = if id < vocab {
                id
            } else if id == START_OF_TEXT {
                clip.config.text.bos_token_id.min(vocab - 1)
            } else {
                clip.config.text.eos_token_id.min(vocab - 1)
            };
            clip.model.token_embeddings(&[vec![id]], device).reshape([width]).detach()
        };
        let n = config.context_tokens;
        Self {
            class_normal: class("normal brain"),
            class_anomalous: class("abnormal brain"),
            independent: random(n),
            independent_anomalous: (!config.shared_context).then(|| random(n)),
            dependent: random(n),
            dependent_anomalous: (!config.shared_context).then(|| random(n)),
            start: special(START_OF_TEXT),
            end: special(END_OF_TEXT),
        }
    }

    /// The end-of-text token id this prompt ends with, for pooling by id in configs that need it.
    pub fn end_token(clip: &Clip) -> u32 {
        let vocab = clip.config.text.vocab_size as u32;
        if END_OF_TEXT < vocab { END_OF_TEXT } else { clip.config.text.eos_token_id.min(vocab - 1) }
    }

    /// Token embeddings of both prompts for a batch of adaptor outputs `bias` (`[batch, width]`):
    /// `[2 x batch, tokens, width]`, the normal prompts first.
    pub fn embeddings(&self, bias: Tensor<2>) -> Tensor<3> {
        let [batch, _] = bias.dims();
        Tensor::cat(vec![repeat_rows(self.prefix_embeddings(), batch), self.embeddings_after_prefix(bias)], 1)
    }

    /// Whether a pass records gradients for the prefix's parameters (`P_class`,
    /// `P_independent`): training, on an autodiff device. Such a pass runs whole prompts; any
    /// other may reuse the prefix's keys ([`Self::prefix_keys`]), which no image changes.
    pub fn prefix_records_gradients(&self) -> bool {
        let tracked = |p: &Param<Tensor<2>>| p.val().is_tracked();
        [&self.class_normal, &self.class_anomalous, &self.independent].into_iter().any(tracked)
            || self.independent_anomalous.as_ref().is_some_and(tracked)
    }

    /// The part of both prompts no image changes, `[start, P_class, P_independent]`:
    /// `[2, tokens, width]`, the normal prompt first.
    pub fn prefix_embeddings(&self) -> Tensor<3> {
        let width = self.start.dims()[0];
        let build = |class: Tensor<2>, independent: Tensor<2>| {
            Tensor::cat(vec![self.start.clone().reshape([1, width]), class, independent], 0).unsqueeze::<3>()
        };
        let normal = build(self.class_normal.val(), self.independent.val());
        let anomalous = build(self.class_anomalous.val(), self.independent_anomalous.as_ref().unwrap_or(&self.independent).val());
        Tensor::cat(vec![normal, anomalous], 0)
    }

    /// The part of both prompts after [`Self::prefix_embeddings`], `[P_dependent + pi', end]`,
    /// for a batch of adaptor outputs `bias` (`[batch, width]`): `[2 x batch, tokens, width]`,
    /// the normal prompts first.
    pub fn embeddings_after_prefix(&self, bias: Tensor<2>) -> Tensor<3> {
        let [batch, width] = bias.dims();
        let expand = |t: Tensor<2>| {
            let [tokens, _] = t.dims();
            t.unsqueeze::<3>().expand([batch, tokens, width])
        };
        let end = expand(self.end.clone().reshape([1, width]));
        let bias = bias.reshape([batch, 1, width]);
        let build = |dependent: Tensor<2>| Tensor::cat(vec![expand(dependent) + bias.clone(), end.clone()], 1);
        let normal = build(self.dependent.val());
        let anomalous = build(self.dependent_anomalous.as_ref().unwrap_or(&self.dependent).val());
        Tensor::cat(vec![normal, anomalous], 0)
    }

    /// Runs both prompts through the frozen text tower for a batch of adaptor outputs.
    pub fn features(&self, clip: &Clip, bias: Tensor<2>) -> PromptFeatures {
        let [batch, _] = bias.dims();
        let embeddings = self.embeddings(bias);
        let [rows, tokens, _] = embeddings.dims();
        PromptFeatures::split(clip.model.encode_text_embeddings(embeddings, &vec![tokens - 1; rows]), batch)
    }

    /// Every text block's keys and values for [`Self::prefix_embeddings`], for
    /// [`Self::features_after_prefix`]: computed once, they serve every image.
    pub fn prefix_keys(&self, clip: &Clip) -> PrefixKeys {
        clip.model.text_prefix_keys(self.prefix_embeddings())
    }

    /// [`Self::features`], with the prompts' prefixes already through the tower (`prefix`,
    /// from [`Self::prefix_keys`] on the same backbone): the same features for about half the
    /// text tower's work. Not for training: the prefix's gradients do not reach the prompt.
    pub fn features_after_prefix(&self, clip: &Clip, bias: Tensor<2>, prefix: &PrefixKeys) -> PromptFeatures {
        let [batch, _] = bias.dims();
        PromptFeatures::split(clip.model.encode_text_after_prefix(self.embeddings_after_prefix(bias), prefix), batch)
    }
}

impl PromptFeatures {
    /// Normalised rows of the text tower's output for `[normal prompts; anomalous prompts]`.
    fn split(text: Tensor<2>, batch: usize) -> Self {
        let text = l2_normalise(text);
        let [_, projection] = text.dims();
        Self { normal: text.clone().slice([0..batch, 0..projection]), anomalous: text.slice([batch..2 * batch, 0..projection]) }
    }
}

/// Rows scaled to unit length (with a small floor so zero rows stay finite).
pub fn l2_normalise<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    let norm = t.clone().powf_scalar(2.0).sum_dim(D - 1).sqrt().clamp_min(1e-12);
    t / norm
}
