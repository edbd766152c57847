//! Watch channels keyed by KV prefix, so that a commit wakes only the blocked queries
//! whose prefix contains a key it wrote or deleted.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// One watch channel per prefix that a blocked query waits on. The value is a generation
/// counter that moves on every change under the prefix.
#[derive(Debug, Default)]
pub(crate) struct PrefixWatches {
    channels: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl PrefixWatches {
    /// Returns a receiver that changes whenever a key starting with `prefix` changes.
    /// A single-key query passes the key itself.
    pub(crate) fn subscribe(&self, prefix: &str) -> watch::Receiver<u64> {
        let mut channels = self.lock();
        match channels.get(prefix) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(0);
                channels.insert(prefix.to_owned(), sender);
                receiver
            }
        }
    }

    /// Wakes the receivers of every prefix of every key in `keys`, and drops the channels
    /// that have no receivers left. Costs one map lookup per character of each key.
    pub(crate) fn notify(&self, keys: &[String]) {
        let mut channels = self.lock();
        channels.retain(|_, sender| sender.receiver_count() > 0);
        if channels.is_empty() {
            return;
        }

        for key in keys {
            let ends = key
                .char_indices()
                .map(|(position, _)| position)
                .chain(std::iter::once(key.len()));
            for end in ends {
                if let Some(sender) = channels.get(&key[..end]) {
                    sender.send_modify(|generation| *generation += 1);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        // The map stays consistent if a holder panicked, because each step is one map call.
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_wakes_matching_prefixes_only() {
        let watches = PrefixWatches::default();
        let pools = watches.subscribe("pools/");
        let root = watches.subscribe("");
        let exact = watches.subscribe("pools/a");
        let other = watches.subscribe("status/");

        watches.notify(&["pools/a".to_owned()]);

        assert!(pools.has_changed().expect("sender alive"));
        assert!(root.has_changed().expect("sender alive"));
        assert!(exact.has_changed().expect("sender alive"));
        assert!(!other.has_changed().expect("sender alive"));
    }

    #[test]
    fn notify_drops_unwatched_prefixes() {
        let watches = PrefixWatches::default();
        let receiver = watches.subscribe("pools/");
        drop(receiver);

        watches.notify(&["status/x".to_owned()]);

        assert!(watches.lock().is_empty());
    }
}
