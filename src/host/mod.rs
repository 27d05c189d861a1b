//! host (placeholder while the skeleton is laid).
