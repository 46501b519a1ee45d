//! The in-process log of stores other than Redis: a queue, not durable.

use super::flusher::Control;
use super::{Entry, Version};
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub(crate) struct Queue {
    /// Held by a write across its store write and its enqueue; holds the
    /// clock that numbers the writes.
    pub(crate) order: tokio::sync::Mutex<Clock>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: VecDeque<Entry>,
    /// The highest version the sink has accepted (or that was dropped as
    /// undecodable); the queue is FIFO, so everything up to it is done.
    delivered: Option<Version>,
    /// Set by the flusher when it stops with the queue empty: later writes
    /// would never be delivered, so they are refused.
    closed: bool,
}

/// Versions shaped like Redis stream ids: wall-clock milliseconds, then a
/// sequence within the millisecond; never going back.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    last: Option<Version>,
}

impl Clock {
    pub(crate) fn next(&mut self) -> Version {
        let now = crate::envelope::now_ms();
        let next = match self.last {
            Some(last) if last.ms() >= now => Version::new(last.ms(), last.seq() + 1),
            _ => Version::new(now, 0),
        };
        self.last = Some(next);
        next
    }
}

impl Queue {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `entry` and wakes the flusher; `false` if the queue is closed.
    pub(crate) fn push(&self, entry: Entry, control: &Control) -> bool {
        {
            let mut state = self.state();
            if state.closed {
                return false;
            }
            state.entries.push_back(entry);
        }
        control.wake();
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Takes up to `max` entries from the front.
    pub(crate) fn take(&self, max: usize) -> Vec<Entry> {
        let mut state = self.state();
        let n = max.min(state.entries.len());
        state.entries.drain(..n).collect()
    }

    /// Closes the queue if it is empty; `true` if it is closed now.
    pub(crate) fn close_if_empty(&self) -> bool {
        let mut state = self.state();
        if state.entries.is_empty() {
            state.closed = true;
        }
        state.closed
    }

    pub(crate) fn delivered(&self, through: Version) {
        let mut state = self.state();
        if state.delivered.is_none_or(|v| v < through) {
            state.delivered = Some(through);
        }
    }

    pub(crate) fn delivered_through(&self, target: Version) -> bool {
        self.state().delivered.is_some_and(|v| v >= target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_never_goes_back_and_numbers_within_a_millisecond() {
        let mut clock = Clock {
            last: Some(Version::new(u64::MAX - 1, 5)),
        };
        assert_eq!(clock.next(), Version::new(u64::MAX - 1, 6));
        let mut clock = Clock::default();
        let versions: Vec<Version> = (0..1000).map(|_| clock.next()).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
    }
}
