//! Structs the caller hands in and the library fills, versioned by their size.
//!
//! Each such struct starts with `size_t size`, which the caller sets to the `sizeof` it
//! was compiled with. The library writes only the bytes that fit in that size, so a
//! program built against an older, shorter version of the struct keeps working when
//! fields are added at the end; a size smaller than the first version is an error.
//! `wtd_server_stats`, `wtd_connection_stats` and the cluster stats follow this rule,
//! written once here.

use crate::error::{FfiError, FfiResult};

/// A `#[repr(C)]` struct whose first field is `size: usize`, filled by the library.
///
/// # Safety
/// Implementors must be `#[repr(C)]` with `size: usize` as their first field (so it sits
/// at offset 0, aligned), and `FIRST_VERSION` must not exceed `size_of::<Self>()`.
pub(crate) unsafe trait Versioned: Copy {
    /// The C name, for error messages.
    const NAME: &'static str;
    /// Bytes of the struct's first version: the smallest `size` accepted.
    const FIRST_VERSION: usize;
    /// Record the size the caller announced in the value about to be written.
    fn set_size(&mut self, size: usize);
}

/// The size the caller announced in `*out`, checked against the first version.
///
/// # Safety
/// `out` must be NULL or point to a caller-owned `T` of this or an older, shorter
/// version (which begins with its aligned `size` field).
pub(crate) unsafe fn announced_size<T: Versioned>(out: *const T) -> FfiResult<usize> {
    if out.is_null() {
        return Err(FfiError::arg("out_stats is NULL"));
    }
    // SAFETY: non-NULL and, per this function's contract, a caller-owned struct that
    // begins with its aligned `size: usize` field (`Versioned`'s contract puts it at
    // offset 0 of every version).
    let size = unsafe { out.cast::<usize>().read() };
    if size < T::FIRST_VERSION {
        return Err(FfiError::arg(format!(
            "out_stats->size is {size}: set it to sizeof({})",
            T::NAME
        )));
    }
    Ok(size)
}

/// Write `value` into the caller's `*out`: the first `min(size, sizeof T)` bytes, where
/// `size` is what the caller announced in `out->size` (kept as it was).
///
/// # Safety
/// `out` must be NULL or point to a caller-owned `T` of this or an older, shorter
/// version, writable for the `size` it holds.
pub(crate) unsafe fn write<T: Versioned>(out: *mut T, mut value: T) -> FfiResult<()> {
    // SAFETY: this function's contract covers `announced_size`'s.
    let size = unsafe { announced_size(out) }?;
    value.set_size(size);
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: `value` is a live local of `size_of::<T>() >= n` bytes; the caller promised
    // `size >= n` writable bytes at `out`; a local cannot overlap the caller's struct.
    unsafe {
        std::ptr::copy_nonoverlapping((&value as *const T).cast::<u8>(), out.cast::<u8>(), n)
    };
    Ok(())
}

/// Implement [`Versioned`] for `$t`, whose first version is `$first` bytes long.
macro_rules! versioned {
    ($t:ident, first_version = $first:expr) => {
        // SAFETY: `$t` is `#[repr(C)]` with `size: usize` first and its first version
        // fits in it, both checked at compile time below.
        unsafe impl $crate::versioned::Versioned for $t {
            const NAME: &'static str = stringify!($t);
            const FIRST_VERSION: usize = {
                assert!(std::mem::offset_of!($t, size) == 0);
                let first: usize = $first;
                assert!(first >= std::mem::size_of::<usize>());
                assert!(first <= std::mem::size_of::<$t>());
                first
            };
            fn set_size(&mut self, size: usize) {
                self.size = size;
            }
        }
    };
}
pub(crate) use versioned;
