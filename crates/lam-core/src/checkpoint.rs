//! Checkpoints as safetensors (being written).
