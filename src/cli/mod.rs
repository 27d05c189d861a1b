//! cli (placeholder while the skeleton is laid).
