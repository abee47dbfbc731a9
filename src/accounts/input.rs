//! Account input, parsed at the edge.

use std::fmt;

/// Why account input was refused; each message is shown to the person as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountInputError {
    #[error("Enter an email address like name@example.com.")]
    InvalidEmail,
    #[error("Choose a password of at least {min} characters.")]
    PasswordTooShort { min: usize },
    #[error("Choose a password of at most {max} characters.")]
    PasswordTooLong { max: usize },
}

/// An email address, trimmed and lowercased so that one person gets one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AccountInputError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(char::is_whitespace)
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            });
        if valid { Ok(Self(email)) } else { Err(AccountInputError::InvalidEmail) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed. `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// Argon2 hashes any length, but a megabyte password is a denial-of-service, not a secret.
    pub const MAX_CHARS: usize = 256;

    pub fn parse(raw: String) -> Result<Self, AccountInputError> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            Err(AccountInputError::PasswordTooShort { min: Self::MIN_CHARS })
        } else if n > Self::MAX_CHARS {
            Err(AccountInputError::PasswordTooLong { max: Self::MAX_CHARS })
        } else {
            Ok(Self(raw))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_junk_is_refused() {
        assert_eq!(Email::parse("  Ann@Example.COM ").expect("valid").as_str(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "ann@.com"] {
            assert_eq!(Email::parse(bad), Err(AccountInputError::InvalidEmail), "{bad:?}");
        }
    }

    #[test]
    fn passwords_have_bounds_and_never_print() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("x".repeat(257)).is_err());
        let p = Password::parse("correct horse".into()).expect("valid");
        assert!(!format!("{p:?}").contains("horse"));
    }
}
