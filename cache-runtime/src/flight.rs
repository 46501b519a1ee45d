//! In-process single-flight: concurrent lookups of one key share one load.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

#[derive(Clone)]
enum Slot {
    Pending,
    /// The encoded value the leader found or stored, or `None` when it has
    /// nothing to share (an `Err`, a `None`, an encoding failure).
    Done(Option<Bytes>),
}

/// Loads in progress, by full key. A flight's channel is made only when a
/// second caller joins it: most loads have no followers, and then a flight
/// costs a map entry and nothing else.
#[derive(Default)]
pub(crate) struct Flights {
    in_flight: Mutex<HashMap<String, Option<watch::Sender<Slot>>>>,
}

pub(crate) enum Join<'a> {
    /// This caller loads the key; the others wait for it.
    Leader(Leader<'a>),
    /// Another caller is loading the key.
    Follower(Follower),
}

impl Flights {
    pub(crate) fn join<'a>(&'a self, key: &'a str) -> Join<'a> {
        let mut map = self.lock();
        if let Some(tx) = map.get_mut(key) {
            let tx = tx.get_or_insert_with(|| watch::channel(Slot::Pending).0);
            return Join::Follower(Follower(tx.subscribe()));
        }
        map.insert(key.to_owned(), None);
        Join::Leader(Leader {
            flights: self,
            key,
            done: false,
        })
    }

    /// Ends the flight of `key`, handing `value` to its followers if it has
    /// any; with `None` for `value` (the leader went away), dropping the
    /// channel releases them.
    fn end(&self, key: &str, value: Option<Option<Bytes>>) {
        let tx = self.lock().remove(key).flatten();
        if let (Some(tx), Some(value)) = (tx, value) {
            tx.send_replace(Slot::Done(value));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<watch::Sender<Slot>>>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The caller that performs the load. Dropping it unfinished (a panic, a
/// cancelled future) releases the followers to load for themselves.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: &'a str,
    done: bool,
}

impl Leader<'_> {
    /// Hands `value` to every follower and ends the flight.
    pub(crate) fn finish(mut self, value: Option<Bytes>) {
        self.done = true;
        self.flights.end(self.key, Some(value));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.flights.end(self.key, None);
        }
    }
}

pub(crate) struct Follower(watch::Receiver<Slot>);

impl Follower {
    /// The leader's value, or `None` if it had none to share or went away.
    pub(crate) async fn wait(mut self) -> Option<Bytes> {
        match self.0.wait_for(|s| matches!(s, Slot::Done(_))).await {
            Ok(slot) => match &*slot {
                Slot::Done(v) => v.clone(),
                Slot::Pending => None,
            },
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_value() {
        let flights = Flights::default();
        let Join::Leader(leader) = flights.join("k") else {
            panic!("first caller must lead")
        };
        let Join::Follower(follower) = flights.join("k") else {
            panic!("second caller must follow")
        };
        leader.finish(Some(Bytes::from_static(b"v")));
        assert_eq!(follower.wait().await.as_deref(), Some(&b"v"[..]));
        assert!(matches!(flights.join("k"), Join::Leader(_)), "flight ended");
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers() {
        let flights = Flights::default();
        let leader = flights.join("k");
        let Join::Follower(follower) = flights.join("k") else {
            panic!("second caller must follow")
        };
        drop(leader);
        assert_eq!(follower.wait().await, None);
        assert!(matches!(flights.join("k"), Join::Leader(_)));
    }
}
