//! egui widgets and panels. UI functions end in `_ui`, read the workspace and return
//! [`Command`]s rather than changing it themselves; the workspace's reducer applies them.

pub mod device;
pub mod findings;
pub mod panels;
pub mod precision;
pub mod series;
pub mod view;

pub use cue_workspace::command::Command;

/// How often [`busy_ui`] redraws: often enough to show life, rarely enough that the window
/// leaves the CPU to the work it waits for (a software-rendered frame of the whole window
/// costs about 30 ms of both cores here; egui's spinner asks for one every frame).
pub const BUSY_REDRAW: std::time::Duration = std::time::Duration::from_millis(250);

/// A spinner that advances in steps, redrawing every [`BUSY_REDRAW`] instead of every frame.
pub fn busy_ui(ui: &mut eframe::egui::Ui) -> eframe::egui::Response {
    use eframe::egui::{Sense, Shape, Stroke, vec2};
    let size = ui.style().spacing.interact_size.y;
    let (rect, response) = ui.allocate_exact_size(vec2(size, size), Sense::hover());
    if ui.is_rect_visible(rect) {
        let steps = 8.0;
        let time = ui.input(|i| i.time);
        let phase = (time / BUSY_REDRAW.as_secs_f64()).floor() as f32 / steps;
        let start = phase * std::f32::consts::TAU;
        let radius = rect.height() / 2.0 - 2.0;
        let points: Vec<_> = (0..=24)
            .map(|i| {
                let angle = start + i as f32 / 24.0 * std::f32::consts::TAU * 0.75;
                rect.center() + radius * vec2(angle.cos(), angle.sin())
            })
            .collect();
        ui.painter().add(Shape::line(points, Stroke::new(2.0, ui.visuals().strong_text_color())));
        ui.ctx().request_repaint_after(BUSY_REDRAW);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use eframe::egui;

    fn repaint_delay(add: impl Fn(&mut egui::Ui)) -> std::time::Duration {
        let ctx = egui::Context::default();
        let mut delay = std::time::Duration::MAX;
        // Later passes are the steady state (the first ones load fonts and ask again).
        for _ in 0..5 {
            let mut output = ctx.run_ui(egui::RawInput::default(), |ui| add(ui));
            output.textures_delta.clear();
            delay = output.viewport_output[&egui::ViewportId::ROOT].repaint_delay;
        }
        delay
    }

    #[test]
    fn the_busy_indicator_redraws_rarely_unlike_egui_s_spinner() {
        assert!(repaint_delay(|ui| {
            ui.spinner();
        }) < std::time::Duration::from_millis(20));
        let delay = repaint_delay(|ui| {
            busy_ui(ui);
        });
        assert!(delay >= BUSY_REDRAW - std::time::Duration::from_millis(5), "redraws after {delay:?}");
        assert!(delay <= BUSY_REDRAW, "stops redrawing ({delay:?})");
    }
}
