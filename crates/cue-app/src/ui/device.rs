//! Where the model runs, in the model panel: automatic, the GPU, the CPU, or a shared GPU
//! server (`cue serve`) reached with its address and token file. Choosing one emits
//! [`Command::SetModelDevice`]; the workspace keeps it in the persisted settings and reloads a
//! loaded model there.

use std::path::PathBuf;

use eframe::egui::{self, RichText};

use super::Command;
use cue_model::device::DeviceChoice;
use cue_workspace::state::Settings;

/// The kinds the combo offers (a remote device also needs an address and a token file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Auto,
    Gpu,
    Cpu,
    Cuda,
    Remote,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Auto, Kind::Gpu, Kind::Cpu, Kind::Cuda, Kind::Remote];

    /// Offered in the combo: CUDA only in builds that have it (the `cuda` feature), or when a
    /// setting already names it.
    fn offered(self, current: Kind) -> bool {
        self != Kind::Cuda || cfg!(feature = "cuda") || current == Kind::Cuda
    }

    fn of(choice: &DeviceChoice) -> Self {
        match choice {
            DeviceChoice::Auto => Kind::Auto,
            DeviceChoice::Gpu => Kind::Gpu,
            DeviceChoice::Cpu => Kind::Cpu,
            DeviceChoice::Cuda(_) => Kind::Cuda,
            DeviceChoice::Remote(_) => Kind::Remote,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Auto => "Automatic",
            Kind::Gpu => "GPU",
            Kind::Cpu => "CPU",
            Kind::Cuda => "NVIDIA GPU (CUDA)",
            Kind::Remote => "Remote server",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Kind::Auto => "A hardware GPU if this machine has one, else the CPU",
            Kind::Gpu => "wgpu on the best adapter, a software one included",
            Kind::Cpu => "burn's CPU backend on every core",
            Kind::Cuda => "burn's CUDA backend on the first NVIDIA GPU (--device cuda:N picks another)",
            Kind::Remote => "A GPU server started with `cue serve`: HOST:PORT over WebSocket (the token travels unencrypted, so reach another machine through an SSH tunnel), or iroh:ID@HOST:PORT over Iroh (encrypted, the server checked by its id)",
        }
    }
}

/// What the user is typing for a remote server, kept between frames until "Connect".
#[derive(Clone, Debug, Default)]
struct RemoteDraft {
    /// The form is open although the setting is not (yet) remote.
    open: bool,
    address: String,
    token_file: String,
}

/// The device row of the model panel.
pub fn device_choice_ui(ui: &mut egui::Ui, settings: &Settings, commands: &mut Vec<Command>) {
    let id = ui.make_persistent_id("model device draft");
    let current = &settings.model_device;
    let mut draft: RemoteDraft = ui.data_mut(|d| d.get_temp(id)).unwrap_or_else(|| match current {
        DeviceChoice::Remote(target) => RemoteDraft {
            open: false,
            address: target.spec(),
            token_file: target.token_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        },
        _ => RemoteDraft::default(),
    });
    let shown = if draft.open { Kind::Remote } else { Kind::of(current) };
    let mut picked = shown;
    egui::ComboBox::from_label("Model device").selected_text(picked.name()).show_ui(ui, |ui| {
        for kind in Kind::ALL.into_iter().filter(|k| k.offered(Kind::of(current))) {
            ui.selectable_value(&mut picked, kind, kind.name()).on_hover_text(kind.hint());
        }
    });
    if picked != shown {
        draft.open = picked == Kind::Remote && Kind::of(current) != Kind::Remote;
        let local = match picked {
            Kind::Auto => Some(DeviceChoice::Auto),
            Kind::Gpu => Some(DeviceChoice::Gpu),
            Kind::Cpu => Some(DeviceChoice::Cpu),
            Kind::Cuda => Some(match current {
                DeviceChoice::Cuda(index) => DeviceChoice::Cuda(*index),
                _ => DeviceChoice::Cuda(0),
            }),
            Kind::Remote => None,
        };
        if let Some(choice) = local {
            commands.push(Command::SetModelDevice(choice));
        }
    }
    if picked == Kind::Remote {
        remote_form_ui(ui, current, &mut draft, commands);
    }
    ui.data_mut(|d| d.insert_temp(id, draft));
}

fn remote_form_ui(ui: &mut egui::Ui, current: &DeviceChoice, draft: &mut RemoteDraft, commands: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        let label = ui.label("Server address");
        ui.add(egui::TextEdit::singleline(&mut draft.address).hint_text("127.0.0.1:7373").desired_width(140.0)).labelled_by(label.id);
    });
    ui.horizontal(|ui| {
        let label = ui.label("Token file");
        ui.add(egui::TextEdit::singleline(&mut draft.token_file).hint_text("~/.config/cue/server-token").desired_width(140.0)).labelled_by(label.id);
    });
    let parsed = format!("remote:{}", draft.address.trim()).parse::<DeviceChoice>();
    let target = match parsed {
        Ok(DeviceChoice::Remote(mut target)) => {
            let token = draft.token_file.trim();
            target.token_file = (!token.is_empty()).then(|| expand_home(token));
            Ok(target)
        }
        Ok(_) => Err("not a remote address".to_string()),
        Err(message) => Err(message),
    };
    match &target {
        Err(message) if !draft.address.trim().is_empty() => {
            ui.label(RichText::new(message).small().color(ui.visuals().error_fg_color));
        }
        Ok(target) if target.token_file.is_none() => {
            ui.label(RichText::new("The server refuses clients without its token file").small());
        }
        _ => {}
    }
    let ready = matches!(&target, Ok(t) if t.token_file.is_some());
    let already = matches!((current, &target), (DeviceChoice::Remote(now), Ok(t)) if now == t);
    if ui.add_enabled(ready && !already, egui::Button::new("Connect")).on_hover_text("Load the model on the server").clicked()
        && let Ok(target) = target
    {
        draft.open = false;
        commands.push(Command::SetModelDevice(DeviceChoice::Remote(target)));
    }
}

/// `~/x` as the user means it.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}
