//! Single flight: callers that ask for the same key while a run for it is under way wait for that
//! run's value instead of starting their own. Nothing outlives the run: the next caller after it
//! ends starts a new one. Used by [`crate::shared_fetch`] to share ls-refs calls and artifact builds.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

/// The runs under way, by key. Each one's value is published on a watch channel, `None` until it
/// lands.
pub struct SingleFlight<K, V> {
    runs: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
}

/// A run's value, and whether this caller ran it or waited for another's run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flight<V> {
    /// This caller ran the work.
    Led(V),
    /// Another caller ran the work; this one waited for it.
    Joined(V),
}

impl<V> Flight<V> {
    /// The value, whoever ran the work.
    pub fn into_value(self) -> V {
        match self {
            Flight::Led(value) | Flight::Joined(value) => value,
        }
    }
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            runs: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Clone + Eq + Hash, V: Clone> SingleFlight<K, V> {
    /// Runs `work` for `key`, or, when a run for `key` is under way, waits for its value. A caller
    /// that is dropped while it runs the work (its timeout passed, its reconcile was cancelled)
    /// ends the run without a value; then the callers waiting for it start over, one of them
    /// running `work` itself. So each caller's own timeout bounds its wait, and no caller is left
    /// waiting on a run nobody drives.
    pub async fn run<F, Fut>(&self, key: K, work: F) -> Flight<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        loop {
            let mut under_way = match self.join_or_start(&key) {
                Turn::Wait(under_way) => under_way,
                Turn::Lead(run) => {
                    let value = work().await;
                    run.sender.send_replace(Some(value.clone()));
                    return Flight::Led(value);
                }
            };
            if let Ok(value) = under_way.wait_for(Option::is_some).await {
                return Flight::Joined(value.clone().expect("waited for a value"));
            }
            // The caller running the work was dropped before it had a value: start over.
        }
    }

    /// The run under way for `key` to wait for, or else a new run for this caller to drive.
    fn join_or_start(&self, key: &K) -> Turn<'_, K, V> {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(under_way) = runs.get(key) {
            return Turn::Wait(under_way.clone());
        }
        let (sender, receiver) = watch::channel(None);
        runs.insert(key.clone(), receiver);
        Turn::Lead(Run {
            runs: &self.runs,
            key: key.clone(),
            sender,
        })
    }
}

/// What a caller does for a key: wait for the run under way, or drive a new one.
enum Turn<'a, K: Eq + Hash, V> {
    Wait(watch::Receiver<Option<V>>),
    Lead(Run<'a, K, V>),
}

/// A run this caller drives. Dropping it, whether the value was sent or not, ends the run: its
/// key is free for the next caller, and waiters without a value start over.
struct Run<'a, K: Eq + Hash, V> {
    runs: &'a Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
    key: K,
    sender: watch::Sender<Option<V>>,
}

impl<K: Eq + Hash, V> Drop for Run<'_, K, V> {
    fn drop(&mut self) {
        // Only the caller that inserted the key removes it, so this is always this run's entry.
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Work that counts its runs and takes a while, so that concurrent callers overlap.
    async fn counted(runs: &AtomicUsize, value: u32) -> u32 {
        runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        value
    }

    #[tokio::test]
    async fn concurrent_callers_of_one_key_share_one_run() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let callers = (0..10).map(|i| {
            let (flights, runs) = (flights.clone(), runs.clone());
            tokio::spawn(async move { flights.run("main", || counted(&runs, i)).await })
        });
        let flights: Vec<_> = futures::future::try_join_all(callers).await.unwrap();

        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let led: Vec<_> = flights.iter().filter(|f| matches!(f, Flight::Led(_))).collect();
        assert_eq!(led.len(), 1);
        let value = led[0].clone().into_value();
        assert!(flights.into_iter().all(|f| f.into_value() == value));
    }

    #[tokio::test]
    async fn different_keys_run_separately() {
        let flights = SingleFlight::<&str, u32>::default();
        let runs = AtomicUsize::new(0);
        let (a, b) = tokio::join!(
            flights.run("main", || counted(&runs, 1)),
            flights.run("release", || counted(&runs, 2)),
        );
        assert_eq!((a, b), (Flight::Led(1), Flight::Led(2)));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_is_kept_after_a_run_ends() {
        let flights = SingleFlight::<&str, u32>::default();
        let runs = AtomicUsize::new(0);
        assert_eq!(flights.run("main", || counted(&runs, 1)).await, Flight::Led(1));
        assert_eq!(flights.run("main", || counted(&runs, 2)).await, Flight::Led(2));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn waiters_get_the_runs_error_too() {
        let flights = SingleFlight::<&str, Result<u32, String>>::default();
        let failing = || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err("remote hung up".to_owned())
        };
        let (first, second) = tokio::join!(flights.run("main", failing), flights.run("main", || async { Ok(1) }));
        assert_eq!(first, Flight::Led(Err("remote hung up".to_owned())));
        assert_eq!(second, Flight::Joined(Err("remote hung up".to_owned())));
    }

    #[tokio::test]
    async fn a_waiter_runs_the_work_itself_when_the_runner_gives_up() {
        let flights = SingleFlight::<&str, u32>::default();
        let runs = &AtomicUsize::new(0);
        let stuck = || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<u32>().await
        };
        let (gave_up, waited) = tokio::join!(
            tokio::time::timeout(Duration::from_millis(50), flights.run("main", stuck)),
            async {
                // Join the stuck run, with more patience than its runner.
                tokio::time::sleep(Duration::from_millis(10)).await;
                tokio::time::timeout(Duration::from_secs(5), flights.run("main", || counted(runs, 7))).await
            },
        );
        assert!(gave_up.is_err());
        assert_eq!(waited.unwrap(), Flight::Led(7));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
