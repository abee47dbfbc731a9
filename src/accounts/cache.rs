//! Live sessions remembered for a moment, so a signed-in request does not always cost a
//! database round trip (signing an upload form is then one statement).
//!
//! An entry lives at most [`SESSION_CACHE_TTL`]. Logging out, here or everywhere, removes the
//! entries of this process at once; another dyno's copy ends within that second, which is the
//! whole price of the cache. Only sessions that exist are remembered: a flood of made-up tokens
//! must not fill it (they cost a query each, as before).

use std::time::Duration;

use moka::sync::Cache;

use shoebox::{Millis, UserId};

use super::store::SessionRow;

/// How long another process may still accept a session that was ended elsewhere.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);

/// At most this many sessions are remembered; beyond it, the least used go first.
const CAPACITY: u64 = 20_000;

/// Sessions by the SHA-256 of their token.
#[derive(Clone)]
pub struct SessionCache(Cache<String, SessionRow>);

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache").field("entries", &self.0.entry_count()).finish()
    }
}

impl Default for SessionCache {
    fn default() -> Self {
        Self(
            Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(SESSION_CACHE_TTL)
                .support_invalidation_closures()
                .build(),
        )
    }
}

impl SessionCache {
    /// The remembered session, unless it has expired since.
    pub fn get(&self, token_hash: &str, now: Millis) -> Option<SessionRow> {
        self.0.get(token_hash).filter(|s| s.expires_at > now)
    }

    pub fn insert(&self, token_hash: String, session: SessionRow) {
        self.0.insert(token_hash, session);
    }

    pub fn forget(&self, token_hash: &str) {
        self.0.invalidate(token_hash);
    }

    pub fn forget_user(&self, user: &UserId) {
        let user = user.clone();
        // Only fails when invalidation closures were not enabled at build time; they are.
        let _ = self.0.invalidate_entries_if(move |_, s| s.user_id == user);
    }
}
