//! Jobs: plain async functions that return a summary, callable from the CLI, a scheduler and
//! tests. A failing item is logged and the job continues; several runners
//! coordinate through the database.

pub mod clean_up;
pub mod reconcile;
pub mod resize_all;
pub mod scheduled;

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
