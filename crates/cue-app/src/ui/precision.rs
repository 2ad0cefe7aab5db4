//! The number type the frozen towers compute in, in the model panel: f32 (the checkpoint's own,
//! the default) or a faster reduced one. Choosing one emits [`Command::SetModelPrecision`]; the
//! workspace keeps it in the persisted settings and reloads a loaded model in it. Maps of each
//! number type are stored under their own key, so a map never shows under another type's name.

use eframe::egui::{self, RichText};

use super::Command;
use cue_model::clip::Precision;
use cue_workspace::maps::{MapState, ModelStatus};
use cue_workspace::state::Settings;

/// The choices, f32 first.
const ALL: [Precision; 4] = [Precision::F32, Precision::Bf16, Precision::I16, Precision::F16];

/// What the combo shows for `precision`.
fn name(precision: Precision) -> &'static str {
    match precision {
        Precision::F32 => "f32 (exact)",
        Precision::Bf16 => "bf16",
        Precision::I16 => "i16 (CPU)",
        Precision::F16 => "f16 (GPU)",
    }
}

/// When each pays off, and what it costs (the bounds `tests/clip_reference.rs` and
/// `tests/method.rs` hold).
fn hint(precision: Precision) -> &'static str {
    match precision {
        Precision::F32 => "The checkpoint's own number type: the maps the reference implementation computes",
        Precision::Bf16 => {
            "bfloat16 weights and products, f32 LayerNorms and residual stream: faster on GPUs and on CPUs with AVX-512 BF16; \
             embeddings within 8e-3 of f32's largest value"
        }
        Precision::I16 => {
            "CUE's integer product for the blocks' linear layers (12-bit weights, 14-bit activations, exact 32-bit sums): \
             about 1.6x f32's speed on CPUs with AVX2; embeddings within 2e-3 of f32's largest value; f32 on a GPU"
        }
        Precision::F16 => "Half precision: for GPUs (on the CPU it is slower than f32); embeddings within 1e-2 of f32's largest value",
    }
}

/// The number-type row of the model panel, and a note when the loaded model runs another type
/// than the one chosen (the type has no path on this device).
pub fn precision_choice_ui(ui: &mut egui::Ui, settings: &Settings, maps: &MapState, commands: &mut Vec<Command>) {
    let mut picked = settings.model_precision;
    egui::ComboBox::from_label("Number type").selected_text(name(picked)).show_ui(ui, |ui| {
        for precision in ALL {
            ui.selectable_value(&mut picked, precision, name(precision)).on_hover_text(hint(precision));
        }
    });
    if picked != settings.model_precision {
        commands.push(Command::SetModelPrecision(picked));
    }
    if let ModelStatus::Ready { precision, .. } = &maps.status
        && *precision != settings.model_precision
    {
        ui.label(RichText::new(format!("{} has no path on this device: the towers run {precision}", settings.model_precision)).small());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_type_is_offered_once_with_its_own_name() {
        let names: std::collections::BTreeSet<&str> = ALL.iter().map(|p| name(*p)).collect();
        assert_eq!(names.len(), ALL.len());
        for precision in [Precision::F32, Precision::F16, Precision::Bf16, Precision::I16] {
            assert!(ALL.contains(&precision), "{precision} is not offered");
            assert!(!hint(precision).is_empty());
        }
    }
}
