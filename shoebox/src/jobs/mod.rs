//! Jobs: plain async functions (and [`Shoebox`](crate::Shoebox) methods) that return a
//! summary, callable from a CLI, a scheduler and tests. A failing item is logged and the job
//! continues; several runners coordinate through the database, so any number of dynos may run
//! them at once.
//!
//! | Job | Method | What it does |
//! |---|---|---|
//! | clean up never used | [`Shoebox::clean_up_never_used`](crate::Shoebox::clean_up_never_used) | uploads nobody attached within the grace period |
//! | clean up no longer needed | [`Shoebox::clean_up_no_longer_needed`](crate::Shoebox::clean_up_no_longer_needed) | photos past keep-until whose kind gives a reason |
//! | resize all | [`Shoebox::resize_all`](crate::Shoebox::resize_all) | every missing variant |
//! | reconcile | [`Shoebox::reconcile`](crate::Shoebox::reconcile) | each bucket against the table, both ways |

pub mod clean_up;
pub mod reconcile;
pub mod resize_all;
mod scheduled;

pub use scheduled::clean_up_every;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A request to stop a job at its next safe point, made from elsewhere: a SIGTERM handler, a
/// shutting-down server. Clean-up stops between batches, so every photo it claimed is deleted
/// and tombstoned (or released for the next run) and none is left waiting for its claim's
/// lease to run out. Cheap to clone; every clone sees the request.
///
/// ```
/// let stop = shoebox::jobs::Stop::default();
/// let handle = stop.clone(); // moved into the signal handler
/// handle.request();
/// assert!(stop.requested());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Ask the job to stop at its next safe point.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How many error messages a summary keeps (the count keeps going).
const KEPT_MESSAGES: usize = 20;

/// Keep an error for the summary, and log it.
fn note_error(errors: &mut u64, messages: &mut Vec<String>, message: String) {
    tracing::warn!(error = %message, "job item failed; continuing");
    *errors += 1;
    if messages.len() < KEPT_MESSAGES {
        messages.push(message);
    }
}
