//! The Shoebox reference app: `shoebox serve` and the other commands. It is one host of the
//! `shoebox` library among others, on equal terms: its accounts, sessions and pages are its
//! own, it tells Shoebox who is signed in through [`shoebox::http::Host`], and it uses nothing
//! of the library that another host could not (it is a separate crate, so it cannot).
//!
//! The modules, bottom to top:

/// Settings from the environment and an optional TOML file (buckets, kinds); secrets redacted.
pub mod settings;
/// Accounts and sessions: sign up, log in, log out, the login limits, password hashing.
pub mod accounts;
/// The web side: the state, the `Host` implementation, the account pages, the router.
pub mod web;
/// Log lines (text on a terminal, JSON elsewhere) and the Prometheus recorder behind `/metrics`.
pub mod observability;
/// Assembling the app from settings: pool, Shoebox, migrations, router.
pub mod server;
/// The command line.
pub mod cli;
