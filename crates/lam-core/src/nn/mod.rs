//! Neural-network building blocks, written once over the op set so they run
//! on every backend: the [`Module`] trait and its layers.

mod module;

pub use module::{join, Entry, Mode, Module};
