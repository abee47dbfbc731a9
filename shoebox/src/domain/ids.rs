//! Identifiers and unguessable tokens.

use std::fmt;
use std::str::FromStr;

use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new random (v4) identifier.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A photo's id. Random, so ids in URLs say nothing about how many photos exist.
    PhotoId
);
/// The host application's id for a person (an uploader or a viewer): its own user id as text
/// (a UUID, a number, a username), opaque to Shoebox. Shoebox stores it beside each photo
/// without a foreign key, so any users table, or none, will do.
///
/// ```
/// use shoebox::UserId;
/// let steve = UserId::new("steve").expect("a usable id");
/// let numbered = UserId::from(42_i64);
/// assert_eq!((steve.as_str(), numbered.as_str()), ("steve", "42"));
/// assert!(UserId::new("").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

/// Why a string cannot be a [`UserId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a user id must be 1 to {max} characters with no control characters", max = UserId::MAX_LEN)]
pub struct InvalidUserId;

impl UserId {
    /// The longest id accepted, in bytes: room for any UUID, number or email address.
    pub const MAX_LEN: usize = 255;

    /// The host's id, checked: not empty, at most [`UserId::MAX_LEN`] bytes, no control
    /// characters (it ends up in log lines).
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidUserId> {
        let id = id.into();
        if id.is_empty() || id.len() > Self::MAX_LEN || id.chars().any(char::is_control) {
            return Err(InvalidUserId);
        }
        Ok(Self(id))
    }

    /// The id as the host gave it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UserId {
    type Err = InvalidUserId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for UserId {
    type Error = InvalidUserId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> Self {
        id.0
    }
}

impl From<Uuid> for UserId {
    fn from(id: Uuid) -> Self {
        Self(id.to_string())
    }
}

impl From<i64> for UserId {
    fn from(id: i64) -> Self {
        Self(id.to_string())
    }
}

impl From<i32> for UserId {
    fn from(id: i32) -> Self {
        Self(id.to_string())
    }
}

impl From<u64> for UserId {
    fn from(id: u64) -> Self {
        Self(id.to_string())
    }
}

/// 128 random bits from the operating system, as 32 lowercase hex characters. Used for object
/// keys, session tokens and CSRF tokens: none of them may be guessable.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_hex_and_differ() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn user_ids_are_the_hosts_text_with_bounds() {
        assert_eq!(UserId::from(Uuid::nil()).as_str(), "00000000-0000-0000-0000-000000000000");
        assert_eq!("ann@example.com".parse::<UserId>().map(|u| u.to_string()).as_deref(), Ok("ann@example.com"));
        for bad in [String::new(), "a\nb".into(), "x".repeat(256)] {
            assert_eq!(UserId::new(bad), Err(InvalidUserId));
        }
        let json = serde_json::to_string(&UserId::from(7_i64)).expect("json");
        assert_eq!(json, "\"7\"");
        assert!(serde_json::from_str::<UserId>("\"\"").is_err(), "an empty id is refused in JSON too");
    }

    #[test]
    fn ids_round_trip_through_text_and_refuse_junk() {
        let id = PhotoId::new();
        assert_eq!(id.to_string().parse::<PhotoId>().expect("parse"), id);
        assert!("not-a-uuid".parse::<PhotoId>().is_err());
    }
}
