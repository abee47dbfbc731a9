//! Imaging engine.
