//! Work over many independent items spread on a few threads: checks of
//! thousands of files whose cost is mostly system calls, where one thread
//! would wait on the kernel while the machine's other cores sit idle.
//! Plain scoped threads rather than the build's pool: the caller may be
//! one of that pool's workers, and a worker that waits inside the pool
//! may pick up another node's job meanwhile (with the locks it holds).

/// Below this many items per thread, one thread does them all.
const ITEMS_PER_THREAD: usize = 256;
/// At most this many threads for one call.
const MAX_THREADS: usize = 8;

/// `f` of each item with its index, in order, on several threads when
/// there are many (a few hundred apiece) and the machine has the cores.
pub fn map_in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    // Few items (a node's two upstream nodes, say) never ask for the
    // core count: each call of `available_parallelism` reads the cgroup's
    // files on Linux, some 20 µs, more than the work it would spread.
    let threads = if items.len() < 2 * ITEMS_PER_THREAD {
        1
    } else {
        cores()
            .min(MAX_THREADS)
            .min(items.len() / ITEMS_PER_THREAD)
            .max(1)
    };
    if threads == 1 {
        return items.iter().enumerate().map(|(i, x)| f(i, x)).collect();
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    let run = move |first: usize, part: &[T]| -> Vec<R> {
        part.iter()
            .enumerate()
            .map(|(i, x)| f(first + i, x))
            .collect()
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = items
            .chunks(per)
            .enumerate()
            .skip(1)
            .map(|(c, part)| scope.spawn(move || run(c * per, part)))
            .collect();
        let mut all = run(0, &items[..per]);
        for other in others {
            all.extend(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        all
    })
}

/// The cores this process may use, asked once.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_mapped_once_in_order_with_its_index() {
        for n in [0, 1, ITEMS_PER_THREAD * 2 - 1, ITEMS_PER_THREAD * 2, 10_007] {
            let items: Vec<u64> = (0..n as u64).map(|i| i * 3).collect();
            let seen = std::sync::atomic::AtomicUsize::new(0);
            let out = map_in_parallel(&items, |i, x| {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (i, *x + 1)
            });
            assert_eq!(seen.into_inner(), n);
            let want: Vec<(usize, u64)> = (0..n).map(|i| (i, i as u64 * 3 + 1)).collect();
            assert_eq!(out, want, "{n} items");
        }
    }

    #[test]
    fn a_panic_on_another_thread_reaches_the_caller() {
        let items: Vec<usize> = (0..ITEMS_PER_THREAD * 4).collect();
        let caught = std::panic::catch_unwind(|| {
            map_in_parallel(&items, |i, _| assert!(i + 1 < items.len(), "the last item"))
        });
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // With one thread it panics where it runs; either way the caller sees it.
        assert!(caught.is_err(), "{threads} threads");
    }
}
