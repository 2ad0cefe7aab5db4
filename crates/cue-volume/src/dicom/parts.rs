//! What tells the slices of one series apart before they are stacked: orientation (within
//! noise), echo (by number, else by echo time) and repeat (time point, else the order of
//! acquisition), so that each stack of distinct positions becomes one volume.

use std::collections::{BTreeMap, HashMap};

use super::header::SliceHeader;

/// Names the orientations of one series' slices for grouping, one key per slice in order (""
/// without an orientation): orientations within 1e-3 of one seen before (direction-cosine
/// noise: "0" beside "-1e-7", a value either side of a rounding edge) take its name, so that
/// noise never splits a stack into interleaved parts.
pub(crate) fn orientation_keys(slices: &[SliceHeader]) -> Vec<String> {
    let mut keys = OrientationKeys::default();
    slices.iter().map(|s| s.orientation.map(|o| keys.key(o)).unwrap_or_default()).collect()
}

#[derive(Default)]
struct OrientationKeys(Vec<([f64; 6], String)>);

impl OrientationKeys {
    fn key(&mut self, orientation: [f64; 6]) -> String {
        if let Some((_, key)) = self.0.iter().find(|(seen, _)| seen.iter().zip(&orientation).all(|(a, b)| (a - b).abs() < 1e-3)) {
            return key.clone();
        }
        // No "-0.000": the sign of a zero says nothing.
        let key = orientation.map(|v| format!("{:.3}", if v.abs() < 5e-4 { 0.0 } else { v })).join(",");
        self.0.push((orientation, key.clone()));
        key
    }
}

/// A dynamic series without temporal positions (a perfusion run as many scanners export it)
/// holds each position once per repeat: where every position of a stack (same echo, size and
/// orientation) occurs the same number of times, more than once, the k-th acquisition at each
/// position (by AcquisitionNumber, then AcquisitionTime, then InstanceNumber) becomes time
/// point k, so that each repeat is its own volume, as dcm2niix stacks them into its 4th
/// dimension. Any other repeat (a slice missing from one repeat) is left for the geometry
/// check to refuse.
///
/// `orientations` holds each slice's [`orientation_keys`], the grouping the stacks then follow.
pub(crate) fn number_the_repeats(slices: &mut [SliceHeader], orientations: &[String]) {
    type StackKey<'a> = (Option<i32>, u32, u32, &'a str);
    let mut stacks: BTreeMap<StackKey, BTreeMap<[i64; 3], Vec<usize>>> = BTreeMap::new();
    for ((index, slice), orientation) in slices.iter().enumerate().zip(orientations) {
        let (Some(position), None) = (slice.position, slice.temporal_position) else { continue };
        let at = position.map(|v| (v * 1000.0).round() as i64);
        stacks.entry((slice.echo_number, slice.rows, slice.columns, orientation.as_str())).or_default().entry(at).or_default().push(index);
    }
    for positions in stacks.values() {
        let repeats = positions.values().next().map_or(0, Vec::len);
        if repeats < 2 || positions.values().any(|at| at.len() != repeats) {
            continue;
        }
        for at in positions.values() {
            let mut order = at.clone();
            order.sort_by(|&a, &b| {
                let key = |s: &SliceHeader| (s.acquisition.0, s.acquisition.1.clone(), s.instance_number);
                key(&slices[a]).cmp(&key(&slices[b]))
            });
            for (time, &index) in order.iter().enumerate() {
                slices[index].temporal_position = Some(time as i32 + 1);
            }
        }
    }
}

/// Slices of one series whose echo number does not tell their echo times apart (a multi-echo
/// Enhanced MR file, whose frames differ only in EffectiveEchoTime; classic files without
/// EchoNumbers) are numbered by echo time, 1 for the shortest, so that each echo becomes its
/// own volume, as dcm2niix splits them.
pub(crate) fn number_the_echoes(slices: &mut [SliceHeader]) {
    let same_time = |a: f64, b: f64| (a - b).abs() < 1e-3;
    let mut time_of_echo: HashMap<Option<i32>, f64> = HashMap::new();
    let told_apart = slices.iter().all(|s| match s.params.echo_time_ms {
        Some(time) => same_time(*time_of_echo.entry(s.echo_number).or_insert(time), time),
        None => true,
    });
    if told_apart {
        return;
    }
    let mut times: Vec<f64> = slices.iter().filter_map(|s| s.params.echo_time_ms).collect();
    times.sort_by(f64::total_cmp);
    times.dedup_by(|a, b| same_time(*a, *b));
    for slice in slices {
        if let Some(time) = slice.params.echo_time_ms {
            let rank = times.iter().position(|t| same_time(*t, time)).unwrap_or(0);
            slice.echo_number = Some(rank as i32 + 1);
        }
    }
}
