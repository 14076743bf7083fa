//! `define_backend!`, the generator behind the method list of
//! `methods.rs`: from the list's four groups it writes the [`Backend`]
//! trait (each `fused` method with its declining default), [`OP_METHODS`]
//! and the impl of `Backend` for [`Wrapped`] that forwards every method
//! through its [`Hooks`]. It names the list's types as they are in scope
//! where `methods.rs` expands it; kept apart so that file is the list alone.
//!
//! [`Backend`]: super::Backend
//! [`OP_METHODS`]: super::OP_METHODS
//! [`Wrapped`]: crate::backend::Wrapped
//! [`Hooks`]: crate::backend::Hooks

/// Generates the [`Backend`] trait, [`OP_METHODS`] and the [`Wrapped`]
/// backend from the list.
macro_rules! define_backend {
    (
        name { $(#[$na:meta])* fn name(&self) -> String; }
        info { $( $(#[$ia:meta])* fn $info:ident(&self) -> $iret:ty $(= $idef:expr)?; )* }
        ops { $(
            $(#[$oa:meta])*
            fn $op:ident(&self $(, $oarg:ident: $oty:ty)* $(,)?) -> $oret:ty
                $(= $odef:expr)? $(, named $olabel:expr)?;
        )* }
        fused { $(
            $(#[$fa:meta])*
            fn $fused:ident(&self $(, $farg:ident: $fty:ty)* $(,)?) -> $fret:ty
                = $fdef:expr, taken $ftaken:expr $(, named $flabel:expr)?;
        )* }
    ) => {
        /// A compute backend: the primitive op set over its own buffers.
        ///
        /// Every method takes inputs as [`View`]s and returns a new contiguous
        /// buffer, except `copy` and the fused optimizer updates, which write
        /// into a buffer the caller owns. Buffers are therefore writable
        /// through shared handles; `lam-core` writes only into buffers it has
        /// just created or that hold optimizer-owned state (parameters,
        /// moments).
        ///
        /// **Errors.** `lam-core` validates shapes, ranks, devices and dtypes
        /// before a backend sees them, and names the user's mistake. A backend
        /// still never reads or writes outside a buffer: it checks each view
        /// against its buffer and returns an error for a bad one, and it
        /// returns device failures (allocation, limits, a lost device) as
        /// errors.
        ///
        /// **Index values.** An index (`index_select`, `gather`,
        /// `scatter_add`) or class target (`fused_cross_entropy`) outside its
        /// range is an [`crate::Error::OutOfRange`], never a silent read. A
        /// backend that can only tell by waiting for the device (a GPU, whose
        /// kernels run later) records the fault on the device and returns the
        /// error from the next readback or `synchronize` instead, as CUDA
        /// reports device-side asserts; the values computed in between are
        /// meaningless. `lam-core` reports an out-of-range index at the call
        /// whenever the index tensor's known bounds already prove it.
        ///
        /// Required methods: all except `fused_*`, `stats`, `reset_peak_stats`,
        /// `native_f16` and `synchronize`.
        /// The method list lives in `backend/methods.rs`, which also
        /// generates [`Wrapped`], the backend every wrapper is.
        pub trait Backend: Send + Sync + Debug {
            $(#[$na])*
            fn name(&self) -> String;
            $( define_backend!(@method $(#[$ia])* fn $info(&self) -> $iret $(= $idef)?); )*
            $( define_backend!(@method $(#[$oa])* fn $op(&self $(, $oarg: $oty)*) -> $oret $(= $odef)?); )*
            $(
                $(#[$fa])*
                #[allow(unused_variables)]
                fn $fused(&self $(, $farg: $fty)*) -> $fret {
                    $fdef
                }
            )*
        }

        /// The names of the methods that compute (every `ops` and `fused`
        /// method of the list), in list order: what a test that must touch
        /// every op checks its coverage against.
        pub const OP_METHODS: &[&str] = &[$(stringify!($op),)* $(stringify!($fused),)*];

        impl<H: Hooks> Backend for Wrapped<H> {
            fn name(&self) -> String {
                self.hooks.name(self.inner.name())
            }
            $(
                fn $info(&self) -> $iret {
                    self.inner.$info()
                }
            )*
            $(
                fn $op(&self $(, $oarg: $oty)*) -> $oret {
                    self.hooks.op(
                        stringify!($op),
                        || define_backend!(@label $op $(, $olabel)?),
                        || self.inner.$op($($oarg),*),
                    )
                }
            )*
            $(
                fn $fused(&self $(, $farg: $fty)*) -> $fret {
                    self.hooks.fused(
                        stringify!($fused),
                        || define_backend!(@label $fused $(, $flabel)?),
                        $ftaken,
                        || self.inner.$fused($($farg),*),
                        || $fdef,
                    )
                }
            )*
        }
    };
    (@label $name:ident) => {
        String::from(stringify!($name))
    };
    (@label $name:ident, $label:expr) => {
        $label
    };
    (@method $(#[$a:meta])* fn $m:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty) => {
        $(#[$a])*
        fn $m(&self $(, $arg: $ty)*) -> $ret;
    };
    (@method $(#[$a:meta])* fn $m:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty = $def:expr) => {
        $(#[$a])*
        fn $m(&self $(, $arg: $ty)*) -> $ret {
            $def
        }
    };
}
