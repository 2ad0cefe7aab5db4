//! The one store of anomaly maps, keyed by everything that produced a map: the study and the
//! volume (content fingerprints), the model and prompt, the view and the slice. A map can
//! therefore only be found for the image it was computed from: opening another study, or
//! loading another prompt, leaves the old maps unreachable (and evictable) instead of drawn.
//!
//! Bounded by bytes, least recently used first out; the budget also counts the overlay
//! textures the app keeps for the views on screen.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use cue_model::mapper::SliceMap;
use cue_volume::{Study, View, Volume};

/// The store's default budget: 512 MiB.
pub const DEFAULT_BUDGET_BYTES: usize = 512 << 20;

/// A study's identity: a fingerprint of its volumes' contents and grids, so reopening the
/// same files finds their maps again and any other study finds none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StudyId(pub u64);

/// A volume's identity: a fingerprint of its shape, world_from_voxel and voxel values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeId(pub u64);

impl VolumeId {
    /// Fingerprints `volume` (about 30 ms for 240x240x155 voxels; run it off the UI thread).
    pub fn of(volume: &Volume) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        volume.shape.hash(&mut hasher);
        for row in volume.world_from_voxel.to_rows() {
            for v in row {
                v.to_bits().hash(&mut hasher);
            }
        }
        for v in &volume.data {
            hasher.write_u32(v.to_bits());
        }
        Self(hasher.finish())
    }
}

impl StudyId {
    /// The identity of a study whose sequences have the fingerprints `volumes`.
    pub fn of(volumes: &[VolumeId]) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        volumes.hash(&mut hasher);
        Self(hasher.finish())
    }

    /// Fingerprints every sequence of `study`, and the study from them.
    pub fn fingerprint(study: &Study) -> (Self, Vec<VolumeId>) {
        let volumes: Vec<VolumeId> = study.sequences.iter().map(|s| VolumeId::of(&s.volume)).collect();
        (Self::of(&volumes), volumes)
    }
}

/// How a map came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapSource {
    /// Computed by the model on this view's slice.
    Native,
    /// Cut from the maps of another orientation (`maps_available` of them then).
    Cut {
        /// The orientation the maps were computed in.
        from: View,
        /// How many of its slices were mapped when this was cut.
        maps_available: usize,
    },
}

/// Identity of a map: what was mapped, with which model and prompt.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MapKey {
    /// The study.
    pub study: StudyId,
    /// The volume (the sequence's voxels).
    pub volume: VolumeId,
    /// Sequence label (T1, T1CE, ...), for messages and file names.
    pub sequence: String,
    /// View.
    pub view: View,
    /// Slice index along the view's axis.
    pub slice_index: usize,
    /// The loaded model and prompt's fingerprint (backbone and prompt file checksums, or
    /// zero-shot).
    pub prompt_id: String,
    /// Computed here or cut from another orientation.
    pub source: MapSource,
}

struct Entry {
    map: Arc<SliceMap>,
    bytes: usize,
    last_used: u64,
}

/// The maps, bounded by bytes.
pub struct MapStore {
    entries: HashMap<MapKey, Entry>,
    budget_bytes: usize,
    map_bytes: usize,
    overlay_bytes: usize,
    clock: u64,
}

/// The store as the inference worker and the UI share it.
pub type SharedMapStore = Arc<Mutex<MapStore>>;

/// Locks a shared store; a panic elsewhere while it was held leaves plain data behind, so
/// the lock is taken over rather than propagated.
pub fn lock(store: &SharedMapStore) -> MutexGuard<'_, MapStore> {
    store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Bytes a map holds in memory.
pub fn map_bytes(map: &SliceMap) -> usize {
    std::mem::size_of::<SliceMap>()
        + 4 * (map.scores.len() + map.input_scores.len() + map.layer_weights.len())
}

impl MapStore {
    /// An empty store of `budget_bytes`.
    pub fn new(budget_bytes: usize) -> Self {
        Self { entries: HashMap::new(), budget_bytes, map_bytes: 0, overlay_bytes: 0, clock: 0 }
    }

    /// An empty store shared by the worker and the UI.
    pub fn shared(budget_bytes: usize) -> SharedMapStore {
        Arc::new(Mutex::new(Self::new(budget_bytes)))
    }

    /// Stores a map, evicting the least recently used ones beyond the budget.
    pub fn insert(&mut self, key: MapKey, map: Arc<SliceMap>) {
        self.clock += 1;
        let bytes = map_bytes(&map);
        if let Some(old) = self.entries.insert(key, Entry { map, bytes, last_used: self.clock }) {
            self.map_bytes -= old.bytes;
        }
        self.map_bytes += bytes;
        self.evict();
    }

    /// The map of `key`, marked as used.
    pub fn get(&mut self, key: &MapKey) -> Option<Arc<SliceMap>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|e| {
            e.last_used = clock;
            e.map.clone()
        })
    }

    /// Whether a map of `key` is stored (without marking it used).
    pub fn contains(&self, key: &MapKey) -> bool {
        self.entries.contains_key(key)
    }

    /// The stored keys matching `keep` (for assembling volumes and cut maps).
    pub fn keys_where(&self, keep: impl Fn(&MapKey) -> bool) -> Vec<MapKey> {
        self.entries.keys().filter(|k| keep(k)).cloned().collect()
    }

    /// Drops the maps matching `drop`.
    pub fn remove_where(&mut self, drop: impl Fn(&MapKey) -> bool) {
        let mut freed = 0;
        self.entries.retain(|k, e| {
            let gone = drop(k);
            if gone {
                freed += e.bytes;
            }
            !gone
        });
        self.map_bytes -= freed;
    }

    /// Records the bytes of the overlay textures the app holds now (they count against the
    /// same budget, so maps make room for them).
    pub fn set_overlay_bytes(&mut self, bytes: usize) {
        self.overlay_bytes = bytes;
        self.evict();
    }

    /// Changes the budget (a setting) and evicts down to it.
    pub fn set_budget_bytes(&mut self, bytes: usize) {
        self.budget_bytes = bytes;
        self.evict();
    }

    /// The budget.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// Bytes held: maps plus the overlay textures last reported.
    pub fn used_bytes(&self) -> usize {
        self.map_bytes + self.overlay_bytes
    }

    /// Number of maps stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict(&mut self) {
        while self.used_bytes() > self.budget_bytes && !self.entries.is_empty() {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()) else { break };
            if let Some(e) = self.entries.remove(&oldest) {
                self.map_bytes -= e.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pixels: usize) -> Arc<SliceMap> {
        Arc::new(SliceMap {
            width: pixels,
            height: 1,
            scores: vec![0.5; pixels],
            input_scores: Vec::new(),
            input_size: 0,
            placement: cue_model::preprocess::Placement { left: 0.0, top: 0.0, width: pixels as f64, height: 1.0 },
            image_score: 0.0,
            cls_score: 0.0,
            layer_weights: Vec::new(),
        })
    }

    fn key(slice_index: usize) -> MapKey {
        MapKey {
            study: StudyId(1),
            volume: VolumeId(2),
            sequence: "T1".into(),
            view: View::Axial,
            slice_index,
            prompt_id: "p".into(),
            source: MapSource::Native,
        }
    }

    #[test]
    fn map_store_stays_within_its_budget() {
        let one = map_bytes(&map(1000));
        let mut store = MapStore::new(10 * one);
        for k in 0..100 {
            store.insert(key(k), map(1000));
            assert!(store.used_bytes() <= store.budget_bytes(), "over budget after {k} maps");
        }
        assert_eq!(store.len(), 10);
        // The least recently used go first: touching slice 90 keeps it through ten more.
        assert!(store.get(&key(90)).is_some());
        for k in 100..109 {
            store.insert(key(k), map(1000));
        }
        assert!(store.contains(&key(90)), "a recently used map was evicted");
        assert!(!store.contains(&key(91)));
        // Overlay textures count against the same budget.
        store.set_overlay_bytes(5 * one);
        assert!(store.used_bytes() <= store.budget_bytes());
        assert!(store.len() <= 5);
        store.set_budget_bytes(0);
        assert!(store.is_empty());
    }

    #[test]
    fn another_volume_or_prompt_is_another_key() {
        let mut store = MapStore::new(DEFAULT_BUDGET_BYTES);
        store.insert(key(3), map(10));
        assert!(store.get(&MapKey { volume: VolumeId(9), ..key(3) }).is_none());
        assert!(store.get(&MapKey { study: StudyId(9), ..key(3) }).is_none());
        assert!(store.get(&MapKey { prompt_id: "q".into(), ..key(3) }).is_none());
        assert!(store.get(&key(3)).is_some());
    }
}
