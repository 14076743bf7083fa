//! Loss functions (being written).
