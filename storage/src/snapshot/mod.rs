//! Snapshot file format (being written).
