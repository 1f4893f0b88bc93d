//! A bounded parallel map on scoped threads: blob transfers run a chosen number at a time, and
//! results come back in input order whatever order they finish in. No async runtime.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Applies `f` to every item with at most `jobs` threads; results in input order.
pub fn map<T: Send, R: Send>(
    jobs: usize,
    items: Vec<T>,
    f: impl Fn(usize, T) -> R + Sync,
) -> Vec<R> {
    let count = items.len();
    let work: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let slots: Vec<Mutex<Option<R>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, count.max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count {
                        break;
                    }
                    let Some(item) = work[i].lock().ok().and_then(|mut g| g.take()) else {
                        continue;
                    };
                    let result = f(i, item);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    // Every slot was filled: each index was taken by exactly one thread, and a panicking `f`
    // propagates out of the scope above before we get here.
    slots
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_input_order() {
        let out = super::map(3, (0..50u64).collect(), |i, x| {
            std::thread::sleep(std::time::Duration::from_micros((50 - x) * 20));
            (i, x * 2)
        });
        assert_eq!(
            out,
            (0..50).map(|x| (x as usize, x * 2)).collect::<Vec<_>>()
        );
        assert!(super::map(4, Vec::<u8>::new(), |_, x| x).is_empty());
    }
}
