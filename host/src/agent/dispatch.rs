//! The order in which the tool calls of one answer run: calls that touch the same resource
//! (the same [`resource_key`](crate::tools::Tool::resource_key), e.g. one file) one after
//! another in the order the model gave them, everything else at once.
//!
//! Models batch edits to distinct lines of one file in one answer; run at once, each would
//! read the file before the others wrote it, report success, and all but one edit would be
//! lost. Chained by key, each sees the one before it. Calls on different files, and calls
//! without a key (`bash`, plugins), still run concurrently with everything.

use std::collections::HashMap;
use std::future::Future;

use futures_util::future::join_all;

/// Runs `calls` (each with its resource key) and returns their outputs in the given order.
/// A call is not started (its future not polled) until the calls before it with the same key
/// have finished.
pub(super) async fn run_ordered<F, T>(calls: Vec<(Option<String>, F)>) -> Vec<T>
where
    F: Future<Output = T>,
{
    let mut chains: Vec<Vec<(usize, F)>> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (index, (key, call)) in calls.into_iter().enumerate() {
        match key {
            Some(key) => match by_key.get(&key) {
                Some(&chain) => chains[chain].push((index, call)),
                None => {
                    by_key.insert(key, chains.len());
                    chains.push(vec![(index, call)]);
                }
            },
            None => chains.push(vec![(index, call)]),
        }
    }
    let runs = chains.into_iter().map(|chain| async move {
        let mut done = Vec::with_capacity(chain.len());
        for (index, call) in chain {
            done.push((index, call.await));
        }
        done
    });
    let mut outputs: Vec<(usize, T)> = join_all(runs).await.into_iter().flatten().collect();
    outputs.sort_by_key(|(index, _)| *index);
    outputs.into_iter().map(|(_, output)| output).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;

    /// Calls a, a, b, none, a: the a's one after another in order, b and the keyless call
    /// alongside the first a; outputs in the given order.
    #[tokio::test]
    async fn same_key_in_order_others_at_once() {
        let log: Arc<Mutex<Vec<(usize, Instant, Instant)>>> = Arc::default();
        let start = Instant::now();
        let keys = [Some("a"), Some("a"), Some("b"), None, Some("a")];
        let calls = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let log = log.clone();
                let call = async move {
                    let began = Instant::now();
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    log.lock().expect("lock").push((i, began, Instant::now()));
                    i * 10
                };
                (key.map(str::to_string), call)
            })
            .collect();
        let outputs = run_ordered(calls).await;
        assert_eq!(outputs, [0, 10, 20, 30, 40]);
        let log = log.lock().expect("lock").clone();
        let span = |i: usize| {
            log.iter()
                .find(|e| e.0 == i)
                .map(|e| (e.1, e.2))
                .expect("ran")
        };
        // Each a starts after the one before it ended.
        assert!(span(1).0 >= span(0).1 && span(4).0 >= span(1).1, "{log:?}");
        // b and the keyless call do not wait for any a (generous margin: the a's take 450 ms).
        for i in [2, 3] {
            assert!(span(i).0 - start < Duration::from_millis(120), "{log:?}");
        }
    }
}
