//! The application's state below the UI: the [`workspace::Workspace`] (settings, the open
//! study, the model, maps and jobs) changed only by [`command::Command`]s through one reducer;
//! the one job runner ([`jobs`]); the one map store ([`map_store`]); loading ([`loader`]) and
//! the inference worker ([`infer`]). Knows nothing of egui: Cargo enforces it, this crate
//! does not depend on it.

pub mod command;
mod file_jobs;
pub mod findings;
pub mod infer;
pub mod jobs;
pub mod loader;
pub mod map_store;
pub mod maps;
pub mod report;
pub mod runs;
pub mod series_picker;
pub mod state;
pub mod workspace;

pub use command::Command;
pub use workspace::{DEMO_NAME, Effect, Workspace};
