//! Which generator a random op without one draws from: the generator
//! [`with_generator`] installed on this thread, else the process's default.
//!
//! The override is thread-local and scoped: it lasts for one closure and is
//! undone when the closure returns or unwinds, and nesting restores the
//! outer one. So code that cannot take a generator argument — a layer
//! constructor, `Dropout::forward`, a user's model — draws from the
//! generator its caller chose, and threads never share one by accident.

use std::cell::RefCell;

use super::Generator;

thread_local! {
    static SCOPED: RefCell<Option<Generator>> = const { RefCell::new(None) };
}

/// The generator random ops draw from on this thread when given none: the
/// innermost [`with_generator`]'s, else [`Generator::default_generator`].
pub fn current() -> Generator {
    SCOPED
        .with(|s| s.borrow().clone())
        .unwrap_or_else(Generator::default_generator)
}

/// The next seed from the [`current`] generator.
pub fn next_seed() -> u64 {
    SCOPED.with(|s| match &*s.borrow() {
        Some(g) => g.next_seed(),
        None => Generator::default_generator().next_seed(),
    })
}

/// Runs `f` with `generator` as this thread's [`current`] generator: layer
/// initialisation, `Dropout` without its own generator and
/// `Tensor::randn(shape, dev)` inside `f` all draw from it. Threads that
/// `f` spawns do not inherit it.
pub fn with_generator<R>(generator: &Generator, f: impl FnOnce() -> R) -> R {
    let previous = SCOPED.with(|s| s.replace(Some(generator.clone())));
    let _restore = Restore(previous);
    f()
}

/// Reseeds the process's default generator (PyTorch's `torch.manual_seed`),
/// which `Tensor::rand`, `randn`, layer initialisation and dropout draw
/// from wherever no [`with_generator`] scope or module generator says
/// otherwise. Inside such a scope it still reseeds the default generator,
/// as `torch.manual_seed` does.
pub fn manual_seed(seed: u64) {
    Generator::default_generator().manual_seed(seed);
}

/// Puts the outer scope's generator back, on return and on unwinding.
struct Restore(Option<Generator>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        // `try_with`: during thread teardown the slot may already be gone.
        let _ = SCOPED.try_with(|s| *s.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_unwind() {
        let (a, b) = (Generator::new(1), Generator::new(2));
        with_generator(&a, || {
            next_seed();
            with_generator(&b, || {
                next_seed();
                next_seed();
            });
            next_seed();
        });
        assert_eq!((a.state().offset, b.state().offset), (2, 2));
        let panicked = std::panic::catch_unwind(|| with_generator(&a, || panic!("inside")));
        assert!(panicked.is_err());
        // The scope ended with the panic: this draw is the default's.
        next_seed();
        assert_eq!(a.state().offset, 2);
    }

    #[test]
    fn other_threads_do_not_see_a_scope() {
        let a = Generator::new(3);
        with_generator(&a, || {
            std::thread::spawn(next_seed).join().expect("thread");
        });
        assert_eq!(a.state().offset, 0);
    }
}
