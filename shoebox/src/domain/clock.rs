//! The service's clock: what "now" is for the lifecycle (when a form expires, when a photo was
//! attached, whether its keep-until has passed). Tests and hosts can hold it still or move it,
//! to walk a photo through ten years in a second.
//!
//! Only the lifecycle reads it. Signing an S3 form and S3's own checks use the real time: S3
//! compares a form's date with its own clock.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};

use super::{Millis, now_millis};

/// Where the service reads the time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// The system's clock: what a running service uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        now_millis()
    }
}

/// A clock that stands still until told to move: for tests and for rehearsing what clean-up
/// will do on a date.
///
/// ```
/// use shoebox::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(std::time::Duration::from_secs(1));
/// assert_eq!(clock.now(), 2_000);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: Millis) -> Self {
        Self(AtomicI64::new(now))
    }

    /// Show `now` from here on.
    pub fn set(&self, now: Millis) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Move the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = Millis::try_from(by.as_millis()).unwrap_or(Millis::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Millis {
        self.as_ref().now()
    }
}
