//! The power manager.
