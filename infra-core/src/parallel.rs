//! Ordered work on several threads: a slice mapped in consecutive runs, one scoped thread per
//! run, the results concatenated in the slice's order (what one thread gives). Used where a
//! fresh process's single pass over every resource or journal line dominates: parsing a large
//! sandbox journal, diffing a large wave of the graph.

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
    let f = &f;
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
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
}
