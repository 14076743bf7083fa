//! Optimizers, gradient clipping and learning-rate schedulers (being written).
