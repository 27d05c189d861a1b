//! services (placeholder while the skeleton is laid).
