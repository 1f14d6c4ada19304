//! Metric gates (being written).
