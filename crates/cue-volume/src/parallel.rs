//! One way to spread file work over the cores: a shared queue of item indices, one scoped
//! thread per core taking the next, results kept in the items' order. Loading a study's files,
//! scanning a DICOM folder's headers and decoding a series' slices all go through it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` of every item, in the items' order, on up to one thread per core, calling
/// `progress(done, total)` as items finish.
pub fn map_in_parallel<T: Sync, R: Send>(items: &[T], progress: &(dyn Fn(usize, usize) + Sync), f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(items.len()).max(1);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(result);
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, items.len());
                }
            });
        }
    });
    // Every index was taken by a worker, and a worker stores its result before taking the
    // next, so every slot is filled; a panicking `f` propagates out of the scope above.
    slots.into_iter().filter_map(|slot| slot.into_inner().ok().flatten()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_items_order_and_progress_counts_them() {
        let items: Vec<u64> = (0..100).collect();
        let calls = AtomicUsize::new(0);
        let squares = map_in_parallel(&items, &|done, total| {
            assert!(done <= total);
            calls.fetch_add(1, Ordering::Relaxed);
        }, |x| x * x);
        assert_eq!(squares, items.iter().map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), 100);
        assert!(map_in_parallel(&Vec::<u8>::new(), &|_, _| {}, |x| *x).is_empty());
    }
}
