//! (placeholder crate; see ARCHITECTURE.md)
