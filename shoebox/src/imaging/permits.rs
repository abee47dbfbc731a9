//! A process-wide bound on how many images are decoded at once.
//!
//! Peak memory is per-image memory times concurrency, and the dyno has 512 MB, so the
//! bound matters more than throughput. The engine is synchronous and runs on the blocking
//! pool, so a std `Mutex` + `Condvar` counting semaphore is enough: waiting blocks a pool
//! thread, not the async runtime.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The default number of images processed at once: one per core of a small dyno.
pub const DEFAULT_MAX_CONCURRENT_IMAGES: usize = 2;

static GATE: Gate = Gate::new(DEFAULT_MAX_CONCURRENT_IMAGES);

/// Sets how many images may be decoded at once, process-wide (at least 1).
///
/// Takes effect for the next image; work already running finishes.
pub fn set_max_concurrent_images(permits: usize) {
    GATE.set_capacity(permits);
}

/// How many images may be decoded at once.
pub fn max_concurrent_images() -> usize {
    GATE.state().capacity
}

/// Blocks until a permit is free; the permit is returned when the guard drops.
pub(crate) fn acquire() -> Permit<'static> {
    GATE.acquire()
}

/// A permit if one is free now, without waiting: for work that only speeds up with it.
pub(crate) fn try_acquire() -> Option<Permit<'static>> {
    GATE.try_acquire()
}

pub(crate) struct Gate {
    state: Mutex<GateState>,
    freed: Condvar,
}

struct GateState {
    in_use: usize,
    capacity: usize,
}

pub(crate) struct Permit<'a> {
    gate: &'a Gate,
}

impl Gate {
    pub(crate) const fn new(capacity: usize) -> Gate {
        Gate {
            state: Mutex::new(GateState { in_use: 0, capacity: if capacity == 0 { 1 } else { capacity } }),
            freed: Condvar::new(),
        }
    }

    // The counters are always consistent (no code between lock and unlock can panic),
    // so a poisoned lock is safe to keep using.
    fn state(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn acquire(&self) -> Permit<'_> {
        let mut state = self.state();
        while state.in_use >= state.capacity {
            state = self.freed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.in_use += 1;
        Permit { gate: self }
    }

    pub(crate) fn try_acquire(&self) -> Option<Permit<'_>> {
        let mut state = self.state();
        if state.in_use >= state.capacity {
            return None;
        }
        state.in_use += 1;
        Some(Permit { gate: self })
    }

    pub(crate) fn set_capacity(&self, capacity: usize) {
        self.state().capacity = capacity.max(1);
        // A larger capacity may admit several waiters at once.
        self.freed.notify_all();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.state().in_use -= 1;
        self.gate.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn no_more_than_the_permitted_number_run_at_once() {
        let gate = Gate::new(2);
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    let _permit = gate.acquire();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn raising_the_limit_admits_waiting_work() {
        let gate = Gate::new(1);
        let first = gate.acquire();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| drop(gate.acquire()));
            std::thread::sleep(Duration::from_millis(20));
            gate.set_capacity(2);
            waiter.join().expect("waiter finishes once the limit is raised");
        });
        drop(first);
    }

    #[test]
    fn trying_takes_a_free_permit_and_never_waits() {
        let gate = Gate::new(2);
        let first = gate.acquire();
        let second = gate.try_acquire().expect("one is free");
        assert!(gate.try_acquire().is_none(), "both are taken");
        drop(first);
        assert!(gate.try_acquire().is_some(), "freed");
        drop(second);
    }

    #[test]
    fn a_limit_of_zero_means_one() {
        let gate = Gate::new(0);
        drop(gate.acquire());
        gate.set_capacity(0);
        drop(gate.acquire());
    }
}
