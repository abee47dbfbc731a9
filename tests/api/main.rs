//! The integration tests, in one binary: each module links the whole crate, so one binary
//! instead of one per file saves minutes of linking on a two-core machine.
//!
//! Every test drives a real Shoebox on 127.0.0.1:0 against real Postgres or SQLite and the
//! embedded S3 endpoint over the network (see [`helpers::TestApp`]); the browser journeys run
//! headless Chromium.

#[macro_use]
mod helpers;

mod accounts;
mod accounts_hardening;
mod browser;
mod browser_axe;
mod browser_formats;
mod browser_layout;
mod browser_multi;
mod deploy;
mod doctor;
mod embedded_endpoint;
mod fallbacks;
mod faults;
mod formats;
mod imaging;
mod library;
mod lifecycle;
mod observability;
mod placeholders;
mod quotas;
mod reconcile;
mod serve;
mod serving;
mod uploads;
mod variants;
