//! Declaring an optimizer: [`optimizer!`] states, once, its public type(s)
//! with their snapshot kind, and its hyper-parameters with PyTorch's names,
//! types and defaults (a doc line each) beyond the three that every
//! optimizer takes (`lr`, `weight_decay`, `l1`, `maximize`). From that list come the
//! type, the `Config` struct, `Config::new(lr)` with the defaults, one
//! builder method per field (documented by the field's doc), [`Declared`]
//! and [`HyperParameters`], through which [`super::rule`] writes the
//! hyper-parameters into a snapshot and reads them back. A snapshot stores
//! every value as a number under the field's name; flags are 0 or 1.
//! Settings (such as Adam's `fused`) are fields with builders that
//! snapshots leave out.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Error, Result};

use super::rule::Core;
use super::OptimizerState;

/// What [`optimizer!`] declares for each optimizer type: its
/// hyper-parameters, snapshot kind and name, and where its [`Core`] is.
pub(crate) trait Declared {
    /// The hyper-parameters and settings.
    type Config: HyperParameters;

    /// The snapshot's `kind` (`"sgd"`, ...).
    const KIND: &'static str;

    /// The type's name, which errors of `step` give (`"Sgd"`, ...).
    const NAME: &'static str;

    fn core(&self) -> &Core<Self::Config>;

    fn core_mut(&mut self) -> &mut Core<Self::Config>;
}

/// An optimizer's hyper-parameters: a small `Copy` struct that visits
/// each by its snapshot name. Implemented by [`optimizer!`].
pub(crate) trait HyperParameters: Copy + std::fmt::Debug {
    /// Calls `f` with the name and a handle of every hyper-parameter, `lr`
    /// first.
    fn visit(&mut self, f: &mut dyn FnMut(&'static str, &mut dyn Value));

    /// The learning rate.
    fn lr(&self) -> f32;

    /// Sets the learning rate.
    fn set_lr(&mut self, lr: f32);

    /// The weight decay, which every optimizer takes (default 0).
    fn weight_decay(&self) -> f32;

    /// The L1 penalty, which every optimizer takes (default 0).
    fn l1(&self) -> f32;

    /// Whether to maximize the objective (step along the gradient), which
    /// every optimizer takes (default false).
    fn maximize(&self) -> bool;
}

/// Hyper-parameters added after snapshots were first written: a snapshot
/// without one means its default (false, stored as 0), so older
/// checkpoints still load.
const ADDED_LATER: &[&str] = &["maximize"];

/// A hyper-parameter's value as a snapshot stores it: a number, or a flag
/// stored as 0 or 1.
pub(crate) trait Value {
    /// The value as stored.
    fn get(&self) -> f64;
    /// Sets the value from a stored number.
    fn set(&mut self, stored: f64);
}

impl Value for f32 {
    fn get(&self) -> f64 {
        *self as f64
    }

    fn set(&mut self, stored: f64) {
        *self = stored as f32;
    }
}

impl Value for bool {
    fn get(&self) -> f64 {
        if *self {
            1.0
        } else {
            0.0
        }
    }

    fn set(&mut self, stored: f64) {
        *self = stored as f32 != 0.0;
    }
}

/// Every hyper-parameter of `config` by name, for a snapshot.
pub(crate) fn to_map(config: &impl HyperParameters) -> BTreeMap<String, f64> {
    let mut map = BTreeMap::new();
    let mut copy = *config;
    copy.visit(&mut |name, value| {
        map.insert(name.to_string(), value.get());
    });
    map
}

/// `config` with every hyper-parameter read from `state`, which must be of
/// `kind` and hold exactly `config`'s names. Checks no values.
pub(crate) fn from_state<C: HyperParameters>(
    kind: &'static str,
    state: &OptimizerState,
    config: C,
) -> Result<C> {
    const OP: &str = "load_state_dict";
    if state.kind != kind {
        return Err(Error::invalid(
            OP,
            format!("state of a {} optimizer loaded into {kind}", state.kind),
        ));
    }
    let mut config = config;
    let mut wanted = BTreeSet::new();
    config.visit(&mut |name, _| {
        wanted.insert(name);
    });
    let mut found: BTreeSet<&str> = state.hyper.keys().map(String::as_str).collect();
    for name in ADDED_LATER {
        if wanted.contains(name) {
            found.insert(name);
        }
    }
    if found != wanted {
        return Err(Error::invalid(
            OP,
            format!("{kind} expects hyper-parameters {wanted:?}, found {found:?}"),
        ));
    }
    config.visit(&mut |name, value| {
        match state.hyper.get(name) {
            Some(&stored) => value.set(stored),
            // Absent from an older snapshot: the default (false).
            None => value.set(0.0),
        }
    });
    Ok(config)
}

/// Declares an optimizer (see the module doc):
///
/// ```ignore
/// optimizer! {
///     /// Doc of the type.
///     pub struct Sgd = "sgd"; // more types may follow, sharing the config
///
///     hyper_parameters {
///         /// Doc of the field and of its builder method.
///         pub momentum: f32 = 0.0, // a `pub` builder; without `pub`, a private one
///     }
///     settings { /* optional: fields as above, left out of snapshots */ }
/// }
/// ```
///
/// Fields are `f32` or `bool`. Every optimizer also has `lr` (set by its
/// `new` and by `Optimizer::set_lr`), `weight_decay` and `l1` (both with
/// builders, default 0) and `maximize` (with a builder, default false). Each type is a newtype over `Core<Config>`.
macro_rules! optimizer {
    (
        $( $(#[$doc:meta])* pub struct $opt:ident = $kind:literal; )+
        hyper_parameters $hyper:tt
        $( settings $settings:tt )?
    ) => {
        $crate::optim::declare::optimizer!(
            @all [$( $(#[$doc])* $opt $kind )+] $hyper { $($settings)? }
        );
    };
    (@all [$( $(#[$doc:meta])* $opt:ident $kind:literal )+] $hyper:tt $settings:tt) => {
        $crate::optim::declare::optimizer!(@config $hyper $settings);
        $( $crate::optim::declare::optimizer!(@type $(#[$doc])* $opt $kind $hyper $settings); )+
    };
    (@config
        { $( $(#[$hdoc:meta])* $hvis:vis $hyper:ident: $hty:ty = $hdefault:expr, )* }
        { $( { $( $(#[$sdoc:meta])* $svis:vis $setting:ident: $sty:ty = $sdefault:expr, )* } )? }
    ) => {
        /// The hyper-parameters (in snapshots) and settings (not).
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct Config {
            /// The learning rate.
            lr: f32,
            $( $(#[$hdoc])* $hyper: $hty, )*
            /// Weight decay.
            weight_decay: f32,
            /// The L1 penalty.
            l1: f32,
            /// Step along the gradient instead of against it.
            maximize: bool,
            $($( $(#[$sdoc])* $setting: $sty, )*)?
        }

        impl Config {
            /// Learning rate `lr` and everything else at its default.
            fn new(lr: f32) -> Config {
                Config {
                    lr,
                    $( $hyper: $hdefault, )*
                    weight_decay: 0.0,
                    l1: 0.0,
                    maximize: false,
                    $($( $setting: $sdefault, )*)?
                }
            }
        }

        impl $crate::optim::declare::HyperParameters for Config {
            fn visit(
                &mut self,
                f: &mut dyn FnMut(&'static str, &mut dyn $crate::optim::declare::Value),
            ) {
                f("lr", &mut self.lr);
                $( f(stringify!($hyper), &mut self.$hyper); )*
                f("weight_decay", &mut self.weight_decay);
                f("l1", &mut self.l1);
                f("maximize", &mut self.maximize);
            }

            fn lr(&self) -> f32 {
                self.lr
            }

            fn weight_decay(&self) -> f32 {
                self.weight_decay
            }

            fn l1(&self) -> f32 {
                self.l1
            }

            fn maximize(&self) -> bool {
                self.maximize
            }

            fn set_lr(&mut self, lr: f32) {
                self.lr = lr;
            }
        }
    };
    (@type $(#[$doc:meta])* $opt:ident $kind:literal
        { $( $(#[$hdoc:meta])* $hvis:vis $hyper:ident: $hty:ty = $hdefault:expr, )* }
        { $( { $( $(#[$sdoc:meta])* $svis:vis $setting:ident: $sty:ty = $sdefault:expr, )* } )? }
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $opt($crate::optim::rule::Core<Config>);

        impl $crate::optim::declare::Declared for $opt {
            type Config = Config;
            const KIND: &'static str = $kind;
            const NAME: &'static str = stringify!($opt);

            fn core(&self) -> &$crate::optim::rule::Core<Config> {
                &self.0
            }

            fn core_mut(&mut self) -> &mut $crate::optim::rule::Core<Config> {
                &mut self.0
            }
        }

        impl $opt {
            $(
                $(#[$hdoc])*
                $hvis fn $hyper(mut self, $hyper: $hty) -> Self {
                    self.0.config.$hyper = $hyper;
                    self
                }
            )*

            /// Weight decay: adds `weight_decay * p` to the gradient (an L2
            /// penalty), except in [`AdamW`](crate::optim::AdamW), which
            /// instead shrinks `p` by `lr * weight_decay` each step.
            pub fn weight_decay(mut self, weight_decay: f32) -> Self {
                self.0.config.weight_decay = weight_decay;
                self
            }

            /// L1 penalty: adds `l1 * sign(p)` to the gradient.
            pub fn l1(mut self, l1: f32) -> Self {
                self.0.config.l1 = l1;
                self
            }

            /// Maximizes the objective instead of minimizing it (PyTorch's
            /// `maximize`): the update runs on the negated gradient, before
            /// the penalties are added, so `weight_decay` and `l1` still
            /// shrink the parameters.
            pub fn maximize(mut self, maximize: bool) -> Self {
                self.0.config.maximize = maximize;
                self
            }

            $($(
                $(#[$sdoc])*
                $svis fn $setting(mut self, $setting: $sty) -> Self {
                    self.0.config.$setting = $setting;
                    self
                }
            )*)?
        }
    };
}

pub(crate) use optimizer;
