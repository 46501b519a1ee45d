//! In-process single-flight: concurrent lookups of one key share one load.

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;
use std::sync::Mutex;
use tokio::sync::watch;

enum Slot {
    Pending,
    /// The leader's key, for the followers to check (flights are found by
    /// hash), and what it shares.
    Done {
        key: Box<str>,
        shared: Shared,
    },
}

/// What a follower gets from its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shared {
    /// The encoded value the leader found or stored.
    Value(Bytes),
    /// Nothing to share (a `None` not stored, a value that could not be
    /// encoded, a tagged value whose write was refused): load for yourself.
    Nothing,
    /// The load failed, or the leader went away, or it loaded another key
    /// with the same hash: join again, so that one waiter leads the next
    /// load and a failing body runs one call at a time.
    Again,
}

/// One load in progress. Its channel is made only when a second caller
/// joins: most loads have no followers, and then a flight is one table entry.
struct Flight {
    hash: u64,
    followers: Option<watch::Sender<Slot>>,
}

/// Loads in progress, found by the hash of their key. The table keeps no
/// copy of the key: a load without followers costs one hash, two short
/// critical sections and no allocation. Two keys with one 64-bit hash (a
/// chance of about n²/2⁶⁵ among n concurrent loads, with a per-process
/// random seed) share a flight, and the follower, seeing the leader's key
/// differ from its own, loads for itself.
#[derive(Default)]
pub(crate) struct Flights<S = DefaultHashBuilder> {
    hasher: S,
    in_flight: Mutex<HashTable<Flight>>,
}

pub(crate) enum Join<'a, S: BuildHasher = DefaultHashBuilder> {
    /// This caller loads the key; the others wait for it.
    Leader(Leader<'a, S>),
    /// Another caller is loading the key.
    Follower(Follower),
}

impl<S: BuildHasher> Flights<S> {
    pub(crate) fn join<'a>(&'a self, key: &'a str) -> Join<'a, S> {
        let hash = self.hasher.hash_one(key);
        let mut table = self.lock();
        match table.entry(hash, |f| f.hash == hash, |f| f.hash) {
            hashbrown::hash_table::Entry::Occupied(mut flight) => {
                let tx = flight
                    .get_mut()
                    .followers
                    .get_or_insert_with(|| watch::channel(Slot::Pending).0);
                Join::Follower(Follower(tx.subscribe()))
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(Flight {
                    hash,
                    followers: None,
                });
                Join::Leader(Leader {
                    flights: self,
                    key,
                    hash,
                    done: false,
                })
            }
        }
    }

    /// Ends the flight of `hash`, handing `shared` to its followers if it
    /// has any; with `None` (the leader went away), dropping the channel
    /// tells them to join again.
    fn end(&self, hash: u64, key: &str, shared: Option<Shared>) {
        let followers = match self.lock().find_entry(hash, |f| f.hash == hash) {
            Ok(flight) => flight.remove().0.followers,
            Err(_) => None,
        };
        if let (Some(tx), Some(shared)) = (followers, shared) {
            tx.send_replace(Slot::Done {
                key: key.into(),
                shared,
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashTable<Flight>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The caller that performs the load. Dropping it unfinished (a panic, a
/// cancelled future) tells the followers to join again.
pub(crate) struct Leader<'a, S: BuildHasher = DefaultHashBuilder> {
    flights: &'a Flights<S>,
    key: &'a str,
    hash: u64,
    done: bool,
}

impl<S: BuildHasher> Leader<'_, S> {
    /// Hands `value` (or nothing) to every follower and ends the flight.
    pub(crate) fn finish(mut self, value: Option<Bytes>) {
        self.done = true;
        let shared = value.map_or(Shared::Nothing, Shared::Value);
        self.flights.end(self.hash, self.key, Some(shared));
    }

    /// The load failed: the followers join again, one of them to lead.
    pub(crate) fn fail(mut self) {
        self.done = true;
        self.flights.end(self.hash, self.key, Some(Shared::Again));
    }
}

impl<S: BuildHasher> Drop for Leader<'_, S> {
    fn drop(&mut self) {
        if !self.done {
            self.flights.end(self.hash, self.key, None);
        }
    }
}

pub(crate) struct Follower(watch::Receiver<Slot>);

impl Follower {
    /// What the leader shares for `key`.
    pub(crate) async fn wait(mut self, key: &str) -> Shared {
        let Ok(slot) = self.0.wait_for(|s| matches!(s, Slot::Done { .. })).await else {
            return Shared::Again; // the leader went away
        };
        match &*slot {
            Slot::Done {
                key: theirs,
                shared,
            } if **theirs == *key => shared.clone(),
            _ => Shared::Again,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_value() {
        let flights: Flights = Flights::default();
        let Join::Leader(leader) = flights.join("k") else {
            panic!("first caller must lead")
        };
        let Join::Follower(follower) = flights.join("k") else {
            panic!("second caller must follow")
        };
        leader.finish(Some(Bytes::from_static(b"v")));
        assert_eq!(
            follower.wait("k").await,
            Shared::Value(Bytes::from_static(b"v"))
        );
        assert!(matches!(flights.join("k"), Join::Leader(_)), "flight ended");
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers() {
        let flights: Flights = Flights::default();
        let leader = flights.join("k");
        let Join::Follower(follower) = flights.join("k") else {
            panic!("second caller must follow")
        };
        drop(leader);
        assert_eq!(follower.wait("k").await, Shared::Again);
        assert!(matches!(flights.join("k"), Join::Leader(_)));
    }

    #[tokio::test]
    async fn a_failed_load_sends_followers_back_and_nothing_lets_them_load() {
        let flights: Flights = Flights::default();
        let Join::Leader(leader) = flights.join("k") else {
            panic!("first caller must lead")
        };
        let Join::Follower(follower) = flights.join("k") else {
            panic!("second caller must follow")
        };
        leader.fail();
        assert_eq!(follower.wait("k").await, Shared::Again);
        let Join::Leader(leader) = flights.join("k") else {
            panic!("the flight ended")
        };
        let Join::Follower(follower) = flights.join("k") else {
            panic!("second caller must follow")
        };
        leader.finish(None);
        assert_eq!(follower.wait("k").await, Shared::Nothing);
    }

    #[tokio::test]
    async fn other_keys_fly_separately() {
        let flights: Flights = Flights::default();
        let _a = flights.join("a");
        assert!(matches!(flights.join("b"), Join::Leader(_)));
        assert!(matches!(flights.join("a"), Join::Follower(_)));
    }

    /// Every key hashes to 0.
    #[derive(Default)]
    struct Colliding;
    impl std::hash::Hasher for Colliding {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[tokio::test]
    async fn a_follower_of_another_key_with_the_same_hash_gets_nothing() {
        let flights = Flights::<std::hash::BuildHasherDefault<Colliding>>::default();
        let Join::Leader(leader) = flights.join("a") else {
            panic!("first caller must lead")
        };
        let Join::Follower(same) = flights.join("a") else {
            panic!("the same key must follow")
        };
        let Join::Follower(other) = flights.join("b") else {
            panic!("a colliding key joins the flight")
        };
        leader.finish(Some(Bytes::from_static(b"value of a")));
        assert_eq!(
            same.wait("a").await,
            Shared::Value(Bytes::from_static(b"value of a"))
        );
        assert_eq!(
            other.wait("b").await,
            Shared::Again,
            "b must not get a's value"
        );
        assert!(matches!(flights.join("b"), Join::Leader(_)), "flight ended");
    }
}
