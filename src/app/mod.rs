//! The desktop application (eframe). Until the viewer lands this is the empty state: a window
//! that says what CUE is and how to open data.

use eframe::egui;

/// The application state.
#[derive(Default)]
pub struct CueApp {}

impl eframe::App for CueApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("top_bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("CUE");
                ui.label("MRI viewer with CLIP-guided anomaly maps");
            });
        });
        egui::CentralPanel::default_margins().show(ui, |ui| {
            ui.vertical_centered(|ui| {
                ui.add_space(ui.available_height() * 0.35);
                ui.heading("No study open");
                ui.label("The multi-planar viewer is not built yet.");
                ui.label("Inspect files meanwhile with `cue info FILE` and `cue canonical IN OUT`.");
            });
        });
    }
}

/// Opens the main window and runs until it is closed.
pub fn run() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title("CUE").with_inner_size([1280.0, 800.0]),
        ..Default::default()
    };
    eframe::run_native("CUE", options, Box::new(|_cc| Ok(Box::new(CueApp::default()))))
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
