//! Daemon paths and settings.
