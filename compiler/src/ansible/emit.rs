//! PyYAML-compatible emitter (placeholder, being written).
