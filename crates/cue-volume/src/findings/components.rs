//! 3-D connected components of a mask with 26-connectivity (voxels that share a face, an
//! edge or a corner belong together), as `scipy.ndimage.label(mask, np.ones((3, 3, 3)))`.

/// The 13 neighbours of a voxel that a raster scan (i fastest, then j, then k) has already
/// visited: half of the 26, so each pair of neighbours is joined once.
const BACKWARD: [[isize; 3]; 13] = [
    [-1, 0, 0],
    [-1, -1, 0],
    [0, -1, 0],
    [1, -1, 0],
    [-1, -1, -1],
    [0, -1, -1],
    [1, -1, -1],
    [-1, 0, -1],
    [0, 0, -1],
    [1, 0, -1],
    [-1, 1, -1],
    [0, 1, -1],
    [1, 1, -1],
];

/// Labels the connected components of `mask` (`mask[i + nx * (j + ny * k)]`, the volume
/// storage order): 0 outside the mask, 1..=n inside, numbered in the order the scan first
/// meets them. Returns the labels and n.
pub fn label_components(mask: &[bool], shape: [usize; 3]) -> (Vec<u32>, usize) {
    let [nx, ny, nz] = shape;
    debug_assert_eq!(mask.len(), nx * ny * nz);
    // Union-find over provisional labels; parent[0] is unused (background).
    let mut parent: Vec<u32> = vec![0];
    let mut labels = vec![0u32; mask.len()];
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let n = i + nx * (j + ny * k);
                if !mask[n] {
                    continue;
                }
                let mut here = 0u32;
                for [di, dj, dk] in BACKWARD {
                    let (Some(a), Some(b), Some(c)) = (i.checked_add_signed(di), j.checked_add_signed(dj), k.checked_add_signed(dk)) else { continue };
                    if a >= nx || b >= ny {
                        continue;
                    }
                    let other = labels[a + nx * (b + ny * c)];
                    if other == 0 {
                        continue;
                    }
                    here = if here == 0 { find(&mut parent, other) } else { union(&mut parent, here, other) };
                }
                if here == 0 {
                    here = parent.len() as u32;
                    parent.push(here);
                }
                labels[n] = here;
            }
        }
    }
    // Final labels in order of each component's first voxel.
    let mut final_of = vec![0u32; parent.len()];
    let mut count = 0u32;
    for label in labels.iter_mut().filter(|l| **l != 0) {
        let root = find(&mut parent, *label) as usize;
        if final_of[root] == 0 {
            count += 1;
            final_of[root] = count;
        }
        *label = final_of[root];
    }
    (labels, count as usize)
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        // Path halving keeps the trees flat.
        let grand = parent[parent[x as usize] as usize];
        parent[x as usize] = grand;
        x = grand;
    }
    x
}

fn union(parent: &mut [u32], a: u32, b: u32) -> u32 {
    let (ra, rb) = (find(parent, a), find(parent, b));
    // The smaller root wins, so a root is always the oldest label of its set.
    let (keep, drop) = if ra < rb { (ra, rb) } else { (rb, ra) };
    parent[drop as usize] = keep;
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_of(shape: [usize; 3], on: &[[usize; 3]]) -> Vec<bool> {
        let mut mask = vec![false; shape.iter().product()];
        for [i, j, k] in on {
            mask[i + shape[0] * (j + shape[1] * k)] = true;
        }
        mask
    }

    #[test]
    fn corners_join_and_gaps_separate() {
        let shape = [4, 4, 4];
        // (0,0,0)-(1,1,1) touch at a corner; (3,3,3) is two voxels away.
        let mask = mask_of(shape, &[[0, 0, 0], [1, 1, 1], [3, 3, 3]]);
        let (labels, n) = label_components(&mask, shape);
        assert_eq!(n, 2);
        assert_eq!(labels[0], labels[1 + 4 * (1 + 4)]);
        assert_ne!(labels[0], labels[3 + 4 * (3 + 4 * 3)]);
    }

    #[test]
    fn a_u_shape_merges_two_provisional_labels() {
        // Two arms that only meet at the bottom row: the scan sees them apart first.
        let shape = [5, 3, 1];
        let mask = mask_of(shape, &[[0, 0, 0], [4, 0, 0], [0, 1, 0], [4, 1, 0], [1, 2, 0], [2, 2, 0], [3, 2, 0]]);
        let (labels, n) = label_components(&mask, shape);
        assert_eq!(n, 1);
        assert!(labels.iter().all(|&l| l <= 1));
        assert_eq!(labels.iter().filter(|&&l| l == 1).count(), 7);
    }

    #[test]
    fn the_edges_of_the_volume_do_not_wrap() {
        // (4,0,0) and (0,1,0) are neighbours in storage order but not in space.
        let shape = [5, 2, 1];
        let mask = mask_of(shape, &[[4, 0, 0], [0, 1, 0]]);
        assert_eq!(label_components(&mask, shape).1, 2);
    }
}
