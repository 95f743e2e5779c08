//! One way to hold a C handle, after rustls-ffi's `Castable`: every opaque C type (a
//! marker in `types`) names the Rust value behind it and how its pointer owns that
//! value (a `Box`, for builders and single-owner handles, or an `Arc`, for handles that
//! events and components also hold). The NULL check, the freed-runtime check and the
//! pointer casts are written here once; exports call [`borrow`], [`live`],
//! [`borrow_mut`], [`clone_arc`], [`into_c_box`] / [`into_c_arc`] and [`take_box`] /
//! [`take_arc`].

use std::sync::Arc;

use super::error::{FfiError, FfiResult};

/// How a handle's pointer owns its value.
pub(crate) trait Ownership: sealed::Sealed {}
/// The pointer came from `Box::into_raw`.
pub(crate) enum Boxed {}
/// The pointer came from `Arc::into_raw`.
pub(crate) enum Shared {}
impl Ownership for Boxed {}
impl Ownership for Shared {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Boxed {}
    impl Sealed for super::Shared {}
}

/// Connects an opaque C type with the Rust value its pointers point to.
///
/// # Safety
/// Implementors promise that every pointer of `Self` this library hands out was made by
/// [`into_c_box`] (for `Own = Boxed`) or [`into_c_arc`] (for `Own = Shared`) from a
/// `Self::Rust`, so casting it back is sound for as long as the C caller has not freed
/// it (the C contract).
pub(crate) unsafe trait Castable: 'static {
    type Rust: 'static;
    type Own: Ownership;

    /// Whether the handle may still do I/O (see [`live`]): by default always; handles
    /// tied to a runtime say WTD_ERR_CLOSED once it was freed.
    fn check_live(_value: &Self::Rust) -> FfiResult<()> {
        Ok(())
    }
}

fn null(name: &str) -> FfiError {
    FfiError::arg(format!("{name} is NULL"))
}

/// Borrow the value behind `p`; NULL is WTD_ERR_INVALID_ARGUMENT naming `name`.
///
/// # Safety
/// `p` must be NULL or a live handle of its type from this library (not yet freed),
/// and stay live for `'a`.
pub(crate) unsafe fn borrow<'a, C: Castable>(p: *const C, name: &str) -> FfiResult<&'a C::Rust> {
    // SAFETY: per `Castable`, a non-NULL `p` points to a live `C::Rust` (inside its Box
    // or Arc), shared (`&`) for 'a per this function's contract.
    unsafe { p.cast::<C::Rust>().as_ref() }.ok_or_else(|| null(name))
}

/// Like [`borrow`], and the handle must still be able to do I/O
/// ([`Castable::check_live`]: e.g. WTD_ERR_CLOSED once its runtime was freed).
///
/// # Safety
/// As for [`borrow`].
pub(crate) unsafe fn live<'a, C: Castable>(p: *const C, name: &str) -> FfiResult<&'a C::Rust> {
    // SAFETY: this function's contract is `borrow`'s.
    let v = unsafe { borrow(p, name) }?;
    C::check_live(v)?;
    Ok(v)
}

/// Borrow a boxed handle mutably (builders, which the header says are not thread-safe).
///
/// # Safety
/// As for [`borrow`], and no other reference to the value may exist for `'a` (the
/// caller does not use the handle from another thread meanwhile).
pub(crate) unsafe fn borrow_mut<'a, C: Castable<Own = Boxed>>(
    p: *mut C,
    name: &str,
) -> FfiResult<&'a mut C::Rust> {
    // SAFETY: per `Castable`, a non-NULL `p` is a live Box's value; exclusive per this
    // function's contract.
    unsafe { p.cast::<C::Rust>().as_mut() }.ok_or_else(|| null(name))
}

/// A new strong reference to a shared handle's value (for a component that keeps it).
///
/// # Safety
/// As for [`borrow`].
pub(crate) unsafe fn clone_arc<C: Castable<Own = Shared>>(
    p: *const C,
    name: &str,
) -> FfiResult<Arc<C::Rust>> {
    if p.is_null() {
        return Err(null(name));
    }
    let p = p.cast::<C::Rust>();
    // SAFETY: `p` came from `Arc::into_raw` (per `Castable`) and that reference is still
    // held by C, so adding one and taking it back as an Arc is balanced.
    unsafe {
        Arc::increment_strong_count(p);
        Ok(Arc::from_raw(p))
    }
}

/// Hand a value to C as a boxed handle.
pub(crate) fn into_c_box<C: Castable<Own = Boxed>>(v: C::Rust) -> *mut C {
    Box::into_raw(Box::new(v)).cast()
}

/// Hand a value to C as a shared handle (C holds one strong reference).
pub(crate) fn into_c_arc<C: Castable<Own = Shared>>(v: Arc<C::Rust>) -> *mut C {
    Arc::into_raw(v).cast_mut().cast()
}

/// Take a boxed handle back from C (its `_free`, or a call that consumes it); `None`
/// for NULL.
///
/// # Safety
/// `p` must be NULL or a live handle from [`into_c_box`] that C gives up now (it must
/// not use it again).
pub(crate) unsafe fn take_box<C: Castable<Own = Boxed>>(p: *mut C) -> Option<Box<C::Rust>> {
    // SAFETY: per `Castable` and this function's contract, the Box is C's to give back,
    // once.
    (!p.is_null()).then(|| unsafe { Box::from_raw(p.cast::<C::Rust>()) })
}

/// Take the strong reference C holds to a shared handle back (its `_free`); `None` for
/// NULL.
///
/// # Safety
/// As for [`take_box`], for a handle from [`into_c_arc`].
pub(crate) unsafe fn take_arc<C: Castable<Own = Shared>>(p: *const C) -> Option<Arc<C::Rust>> {
    // SAFETY: per `Castable` and this function's contract, C gives back the reference
    // `into_c_arc` gave it, once.
    (!p.is_null()).then(|| unsafe { Arc::from_raw(p.cast::<C::Rust>()) })
}

/// The pointer C holds for a shared handle's value (as `into_c_arc` made it): events
/// name the handle they are about with it.
pub(crate) fn c_ptr_of<C: Castable<Own = Shared>>(v: &C::Rust) -> *mut C {
    (v as *const C::Rust).cast_mut().cast()
}

/// The value behind `p`, or `None` for NULL: for getters that cannot report errors.
///
/// # Safety
/// As for [`borrow`].
pub(crate) unsafe fn get<'a, C: Castable>(p: *const C) -> Option<&'a C::Rust> {
    // SAFETY: per `Castable`, a non-NULL `p` points to a live `C::Rust` for 'a (this
    // function's contract).
    unsafe { p.cast::<C::Rust>().as_ref() }
}
