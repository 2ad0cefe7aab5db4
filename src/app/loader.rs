//! Loading studies off the UI thread, with progress and a readable error.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::volume::{SequenceKind, Study, VolumeError, study::study_files};

/// Files or folders to open, each file with its sequence when the user named it.
pub type OpenRequest = Vec<(PathBuf, Option<SequenceKind>)>;

/// What the loader thread reports.
pub enum LoadEvent {
    /// `done` of `total` files loaded.
    Progress { done: usize, total: usize },
    /// The study is ready.
    Loaded(Box<Study>),
    /// Loading failed; the message names the problem and the file.
    Failed(String),
}

/// A study being loaded on the `cue-loader` thread.
pub struct LoadJob {
    /// What is being opened (for the progress line).
    pub what: String,
    /// Files loaded so far and in all.
    pub progress: (usize, usize),
    events: Receiver<LoadEvent>,
}

impl LoadJob {
    /// Starts loading `paths` (files or a folder); `wake` is called after each event so the
    /// UI repaints.
    pub fn start(paths: OpenRequest, wake: impl Fn() + Send + Sync + 'static) -> Self {
        let what = paths.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", ");
        let (sender, events) = channel();
        let spawned = std::thread::Builder::new().name("cue-loader".into()).spawn(move || {
            let send = |sender: &Sender<LoadEvent>, event| {
                let _ = sender.send(event);
                wake();
            };
            let result = load(&paths, &|done, total| send(&sender, LoadEvent::Progress { done, total }));
            match result {
                Ok(study) => send(&sender, LoadEvent::Loaded(Box::new(study))),
                Err(e) => send(&sender, LoadEvent::Failed(e.to_string())),
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start the loader thread: {e}");
        }
        Self { what, progress: (0, 0), events }
    }

    /// Events received since the last call, without waiting.
    pub fn poll(&mut self) -> Vec<LoadEvent> {
        let events: Vec<LoadEvent> = self.events.try_iter().collect();
        for event in &events {
            if let LoadEvent::Progress { done, total } = event {
                self.progress = (*done, *total);
            }
        }
        events
    }
}

fn load(request: &OpenRequest, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Study, VolumeError> {
    let mut name = None;
    let mut files = Vec::new();
    for (path, kind) in request {
        let (folder_name, found) = study_files(std::slice::from_ref(path))?;
        name.get_or_insert(folder_name);
        // A named sequence applies to a file; a folder's files are recognised by name.
        let kind = kind.clone().filter(|_| found.len() == 1 && found[0] == *path);
        files.extend(found.into_iter().map(|f| (f, kind.clone())));
    }
    Study::load_files_with_progress(&name.unwrap_or_default(), &files, progress)
}
