//! Ordered work on several threads: a slice mapped in consecutive runs on scoped threads, the
//! results taken in the slice's order (what one thread gives). Used where a
//! fresh process's single pass over every resource or journal line dominates: parsing a large
//! sandbox journal, diffing a large wave of the graph.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The threads to split work between: the machine's parallelism, at most 8.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// `f` of every item, in order: on up to `threads` threads when there are at least `from`
/// items, else on this thread (starting threads costs more than a short slice saves). A panic
/// in `f` is resumed here.
pub(crate) fn map_ordered<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    from: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if threads < 2 || items.len() < from.max(2) {
        return items.iter().map(&f).collect();
    }
    // One consecutive part per thread, each mapped whole, the parts joined in order into a
    // vector of the final size (growing it part by part moved large results several times).
    let parts: Vec<&[T]> = items.chunks(items.len().div_ceil(threads)).collect();
    let mut all = Vec::with_capacity(items.len());
    map_consume_ordered(
        &parts,
        threads,
        |part| part.iter().map(&f).collect::<Vec<R>>(),
        |part| all.extend(part),
    );
    all
}

/// `f` of every item on up to `threads` threads, each thread taking the next item nobody has
/// taken; `consume` gets the results here, on the calling thread, in the items' order, each as
/// soon as it and every one before it are done, so that work on the results overlaps the
/// mapping of later items (a journal's replay, while its later lines are parsed). A panic in
/// `f` is resumed here, after the other threads have stopped.
pub(crate) fn map_consume_ordered<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
    mut consume: impl FnMut(R),
) {
    if threads < 2 || items.len() < 2 {
        items.iter().for_each(|item| consume(f(item)));
        return;
    }
    let (next, f) = (AtomicUsize::new(0), &f);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(items.len()))
            .map(|_| {
                let (tx, next) = (tx.clone(), &next);
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    // The receiver is gone only when `consume` panicked: stop.
                    if tx.send((i, f(item))).is_err() {
                        break;
                    }
                })
            })
            .collect();
        drop(tx);
        // Results that came before their turn, by index.
        let mut early = std::collections::BTreeMap::new();
        let mut turn = 0;
        // Ends when every worker has finished (or panicked: its sender is dropped with it).
        for (i, r) in rx {
            early.insert(i, r);
            while let Some(r) = early.remove(&turn) {
                consume(r);
                turn += 1;
            }
        }
        for worker in workers {
            worker
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several threads give what one gives, in the same order, whatever the split.
    #[test]
    fn several_threads_map_in_order() {
        let items: Vec<u32> = (0..1001).collect();
        let one = map_ordered(&items, 1, 0, |x| x * 3);
        assert_eq!(one, items.iter().map(|x| x * 3).collect::<Vec<_>>());
        for threads in [2, 3, 7, 2000] {
            assert_eq!(map_ordered(&items, threads, 1, |x| x * 3), one, "{threads}");
        }
    }

    /// Results are consumed in the items' order whatever order the threads finish them in
    /// (the later items here are the quicker ones), and a panic in `f` reaches the caller.
    #[test]
    fn results_are_consumed_in_order() {
        let items: Vec<u64> = (0..200).collect();
        for threads in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            map_consume_ordered(
                &items,
                threads,
                |x| {
                    std::thread::sleep(std::time::Duration::from_micros(200 - x));
                    x * 3
                },
                |r| seen.push(r),
            );
            assert_eq!(
                seen,
                items.iter().map(|x| x * 3).collect::<Vec<_>>(),
                "{threads}"
            );
        }
        let panicked = std::panic::catch_unwind(|| {
            map_consume_ordered(&items, 2, |x| assert_ne!(*x, 150), |_| ())
        });
        assert!(panicked.is_err());
    }
}
