//! Managed blocks (placeholder, being written).
