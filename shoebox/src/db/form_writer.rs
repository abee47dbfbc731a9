//! Group commit for signing: forms that arrive while earlier ones are being written wait in a
//! queue, and the next writer records all of them in one transaction
//! ([`super::sign_batch`]).
//!
//! There is no timer and no background task. When a writer slot is free and nothing waits, a
//! signing writes its own form at once by the one-statement path, so on a quiet server it
//! costs what it did before batching. Otherwise it puts its form in the queue and waits for
//! either its answer or one of [`WRITERS`] writer slots; whoever takes a slot takes everything
//! queued (up to [`MAX_BATCH`]) and writes it, as one transaction from [`MIN_BATCH`] forms.
//! Under load, forms pile up while the slots are busy and the batches grow with the load: the
//! wait for a batch is the time the previous write took, not a fixed window.
//!
//! The write runs in a task of its own, so a client that goes away (dropping its request's
//! future) cannot cancel a write that other requests wait on. No answer is given before the
//! transaction has committed. A batch the database refuses (not an outage) is written again one
//! form at a time, so a form that cannot be written fails alone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, oneshot};

use super::photos::{self as rows, Signed};
use super::sign_batch::{self, Form};
use super::{Db, DbError};
use crate::telemetry::SIGN_BATCH_FORMS;

/// How many writes run at once: one collects while the other commits. More would mostly make
/// batches smaller and take more of the pool.
pub(crate) const WRITERS: usize = 2;

/// The fewest forms written as one transaction; smaller batches are written form by form, side
/// by side. Measured with `scripts/bench-hotpaths`: at 8 connections, transactions of two to
/// six forms answered slower than the same forms' one-statement writes (2 100 to 2 700 against
/// 2 900 to 4 000 signings a second).
pub(crate) const MIN_BATCH: usize = 8;

/// The most forms one transaction records. Large enough that 64 connections' worth of forms
/// goes in one or two writes, small enough that a batch's statements stay short.
pub(crate) const MAX_BATCH: usize = 64;

/// The queue of forms waiting to be written, and the writer slots.
pub(crate) struct FormWriter {
    queue: Mutex<VecDeque<Pending>>,
    slots: Arc<Semaphore>,
}

struct Pending {
    form: Form,
    reply: oneshot::Sender<Result<Signed, DbError>>,
}

impl std::fmt::Debug for FormWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormWriter").field("free_slots", &self.slots.available_permits()).finish_non_exhaustive()
    }
}

impl Default for FormWriter {
    fn default() -> Self {
        Self { queue: Mutex::new(VecDeque::new()), slots: Arc::new(Semaphore::new(WRITERS)) }
    }
}

impl FormWriter {
    /// Record `form` (see [`rows::insert_signed_within_limit`] for what is decided), together
    /// with whatever other forms are waiting. Answers once the row is committed, or was not
    /// written.
    pub(crate) async fn record(&self, db: &Db, form: Form) -> Result<Signed, DbError> {
        // Nothing waiting and a slot free: write it here and now, as a lone form always was,
        // with no queue, task or channel in the way.
        if let Ok(permit) = self.slots.try_acquire()
            && self.nothing_waits()
        {
            metrics::histogram!(SIGN_BATCH_FORMS).record(1.0);
            let decided = write_one(db, &form).await;
            drop(permit);
            return decided;
        }
        let (reply, mut answer) = oneshot::channel();
        self.lock().push_back(Pending { form, reply });
        loop {
            tokio::select! {
                biased;
                answer = &mut answer => return answer.unwrap_or_else(|_| Err(lost())),
                permit = self.slots.clone().acquire_owned() => {
                    let Ok(permit) = permit else { return Err(lost()) };
                    let batch: Vec<Pending> = {
                        let mut queue = self.lock();
                        let n = queue.len().min(MAX_BATCH);
                        queue.drain(..n).collect()
                    };
                    if batch.is_empty() {
                        // Another writer took this form; its answer is on the way.
                        drop(permit);
                        return answer.await.unwrap_or_else(|_| Err(lost()));
                    }
                    let db = db.clone();
                    tokio::spawn(async move {
                        write(&db, batch).await;
                        drop(permit);
                    });
                }
            }
        }
    }

    /// Whether the queue is empty; the lock is released before this returns.
    fn nothing_waits(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        // The queue is only pushed to and drained; a panic elsewhere cannot leave it half-done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A write that ended without answering (its task panicked): an error of the service's own.
fn lost() -> DbError {
    DbError::Corrupt("the write recording this form ended without an answer".into())
}

/// Write a batch and answer each form in it.
async fn write(db: &Db, batch: Vec<Pending>) {
    metrics::histogram!(SIGN_BATCH_FORMS).record(batch.len() as f64);
    if batch.len() < MIN_BATCH {
        // A transaction costs five round trips to one statement's one: below MIN_BATCH forms,
        // one-statement writes side by side on their own connections answer sooner.
        futures_util::future::join_all(batch.into_iter().map(|pending| async move {
            let decided = write_one(db, &pending.form).await;
            let _ = pending.reply.send(decided);
        }))
        .await;
        return;
    }
    let forms: Vec<Form> = batch.iter().map(|p| p.form.clone()).collect();
    match sign_batch::insert_signed_batch(db, &forms).await {
        Ok(decided) => {
            for (pending, decided) in batch.into_iter().zip(decided) {
                // A requester that went away no longer wants its answer; its row stays, and
                // clean-up removes the unused form when it expires.
                let _ = pending.reply.send(Ok(decided));
            }
        }
        // An outage fails every form alike, and trying them one by one would only wait longer.
        Err(e) if e.is_outage() => {
            let e = Arc::new(e);
            for pending in batch {
                let _ = pending.reply.send(Err(DbError::Shared(e.clone())));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, forms = batch.len(), "a batch of forms was refused; writing them one by one");
            for pending in batch {
                let decided = write_one(db, &pending.form).await;
                let _ = pending.reply.send(decided);
            }
        }
    }
}

/// One form alone: one statement, one commit.
async fn write_one(db: &Db, form: &Form) -> Result<Signed, DbError> {
    rows::insert_signed_within_limit(db, &form.photo, form.limit, None).await
}
