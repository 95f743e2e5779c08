//! Result codes, the thread-local last error, the panic boundary and argument checks.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::types::wtd_buffer;
use wtdatagram::transport::Error;

/// Result of every fallible call. 0 is success; values are never renumbered.
#[repr(C)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wtd_result {
    /// Success.
    WTD_OK = 0,
    /// A NULL handle or buffer, a bad value, invalid UTF-8, an unparsable address or URL.
    WTD_ERR_INVALID_ARGUMENT = 1,
    /// The library caught a panic; the call had no effect it can vouch for.
    WTD_ERR_PANIC = 2,
    /// The timeout passed before the operation completed.
    WTD_ERR_TIMEOUT = 3,
    /// A non-blocking call found no room or nothing to return.
    WTD_ERR_WOULD_BLOCK = 4,
    /// The session, connection, server or runtime is closed.
    WTD_ERR_CLOSED = 5,
    /// The datagram exceeds the session's current maximum datagram size.
    WTD_ERR_TOO_LARGE = 6,
    /// Certificate, key or TLS handshake failure (bad PEM, untrusted certificate).
    WTD_ERR_TLS = 7,
    /// Operating-system I/O failure (e.g. the address is in use).
    WTD_ERR_IO = 8,
    /// The connection could not be established.
    WTD_ERR_CONNECT = 9,
    /// The server answered the session request with a non-2xx status.
    WTD_ERR_REJECTED = 10,
    /// The peer violated the protocol.
    WTD_ERR_PROTOCOL = 11,
    /// The peer or configuration lacks a needed feature (e.g. datagrams).
    WTD_ERR_NOT_SUPPORTED = 12,
    /// The call would block the thread it was made on forever (e.g. freeing the
    /// runtime from inside one of its callbacks).
    WTD_ERR_WOULD_DEADLOCK = 13,
    /// The output buffer is too small; see the function for what was written.
    WTD_ERR_BUFFER_TOO_SMALL = 14,
    /// The call is not valid in the handle's current state or mode.
    WTD_ERR_INVALID_STATE = 15,
    /// A looked-up item does not exist.
    WTD_ERR_NOT_FOUND = 16,
    /// The datagram stream's send queue is full and holds nothing of lower priority.
    WTD_ERR_QUEUE_FULL = 17,
    /// Received data does not decode (invalid JSON, malformed structured datagram).
    WTD_ERR_INVALID_DATA = 18,
}

use wtd_result::*;

/// A C enum value as a C caller passed it in: the integer, not yet known to be one of
/// `E`'s values.
///
/// A C caller can pass any integer where the header names an enum type (a cast, a stale
/// constant, uninitialised memory). Received as the Rust enum, a value outside it would be
/// undefined behaviour before our code even looks at it, so every enum parameter is
/// received as this and checked once, with [`CEnum::get`]. Exports spell it with the
/// aliases in [`c`], which carry the enums' names, so the header still declares those
/// parameters as the enums.
///
/// Layout: a C enum whose values all fit in `int` has `int` size and passing on every
/// ABI we target (its compatible type is `int` or `unsigned int`: x86-64 and AArch64
/// System V, Windows x64), the same assumption `#[repr(C)] enum` makes; the bits are
/// the same either way, so receiving a `c_int` is exact.
#[repr(transparent)]
pub struct CEnum<E>(c_int, PhantomData<E>);

impl<E> Clone for CEnum<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for CEnum<E> {}

impl<E> std::fmt::Debug for CEnum<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CEnum({})", self.0)
    }
}

/// The C enum types as exported functions receive them: `c::wtd_result` is
/// `CEnum<wtd_overflow>`, and so on. Each alias has its enum's name on purpose: cbindgen
/// names a type by the last segment of its path and resolves it to the item of that
/// name, so a `c::wtd_overflow` parameter is declared `enum wtd_overflow` in
/// `wtdatagram.h`, exactly as when it was received as the enum (the aliases themselves
/// are hidden from cbindgen). `scripts/check-header.sh` catches a cbindgen that would
/// resolve them differently.
///
/// The aliases of other modules' enums live next to those enums (`stream::c`,
/// `structured::c`), so this module imports none of them.
pub mod c {
    /// cbindgen:ignore
    pub type wtd_result = super::CEnum<super::wtd_result>;
}

/// A `#[repr(C)]` enum of the C ABI whose values C passes in (see [`CEnum`]).
/// Implemented with `c_enum!`, which lists every variant.
pub trait FromC: Copy + 'static {
    /// The C type name, for error messages.
    const NAME: &'static str;
    /// Every value of the enum.
    const VALUES: &'static [Self];
    /// The value's C integer.
    fn to_c(self) -> c_int;
}

impl<E: FromC> CEnum<E> {
    /// The enum value, if the integer is one.
    pub(crate) fn value(self) -> Option<E> {
        E::VALUES.iter().copied().find(|v| v.to_c() == self.0)
    }

    /// The enum value, or WTD_ERR_INVALID_ARGUMENT naming `param` and the value.
    pub(crate) fn get(self, param: &str) -> FfiResult<E> {
        self.value().ok_or_else(|| {
            FfiError::arg(format!(
                "{param}: {} is not a valid {} value",
                self.0,
                E::NAME
            ))
        })
    }
}

impl<E: FromC> From<E> for CEnum<E> {
    fn from(e: E) -> Self {
        CEnum(e.to_c(), PhantomData)
    }
}

/// Implement [`FromC`] for a C ABI enum, listing all its variants. The list is checked
/// against the enum: a variant missing here is a compile error (non-exhaustive match).
macro_rules! c_enum {
    ($ty:ident { $($v:ident),+ $(,)? }) => {
        impl $crate::error::FromC for $ty {
            const NAME: &'static str = stringify!($ty);
            const VALUES: &'static [Self] = &[$($ty::$v),+];
            fn to_c(self) -> ::std::ffi::c_int {
                match self {
                    $($ty::$v => $ty::$v as ::std::ffi::c_int),+
                }
            }
        }
    };
}
pub(crate) use c_enum;

c_enum!(wtd_result {
    WTD_OK,
    WTD_ERR_INVALID_ARGUMENT,
    WTD_ERR_PANIC,
    WTD_ERR_TIMEOUT,
    WTD_ERR_WOULD_BLOCK,
    WTD_ERR_CLOSED,
    WTD_ERR_TOO_LARGE,
    WTD_ERR_TLS,
    WTD_ERR_IO,
    WTD_ERR_CONNECT,
    WTD_ERR_REJECTED,
    WTD_ERR_PROTOCOL,
    WTD_ERR_NOT_SUPPORTED,
    WTD_ERR_WOULD_DEADLOCK,
    WTD_ERR_BUFFER_TOO_SMALL,
    WTD_ERR_INVALID_STATE,
    WTD_ERR_NOT_FOUND,
    WTD_ERR_QUEUE_FULL,
    WTD_ERR_INVALID_DATA,
});

/// An error on its way to C: a code plus the detail for `wtd_last_error`.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub code: wtd_result,
    /// Borrowed when static: the failures a caller may see in a loop (an empty queue, a
    /// full send buffer) cost no allocation.
    pub msg: std::borrow::Cow<'static, str>,
}

impl FfiError {
    pub fn new(code: wtd_result, msg: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        FfiError {
            code,
            msg: msg.into(),
        }
    }
    pub fn arg(msg: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        FfiError::new(WTD_ERR_INVALID_ARGUMENT, msg)
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::InvalidArgument(_) => WTD_ERR_INVALID_ARGUMENT,
            Error::InvalidState(_) => WTD_ERR_INVALID_STATE,
            Error::Io(_) => WTD_ERR_IO,
            Error::Tls(_) => WTD_ERR_TLS,
            Error::Connect(_) => WTD_ERR_CONNECT,
            Error::Rejected(_) => WTD_ERR_REJECTED,
            Error::Protocol(_) => WTD_ERR_PROTOCOL,
            Error::NotSupported(_) => WTD_ERR_NOT_SUPPORTED,
            Error::TooLarge { .. } => WTD_ERR_TOO_LARGE,
            Error::Closed(_) => WTD_ERR_CLOSED,
            Error::Timeout => WTD_ERR_TIMEOUT,
            Error::QueueFull => WTD_ERR_QUEUE_FULL,
            Error::InvalidData(_) => WTD_ERR_INVALID_DATA,
        };
        FfiError::new(code, e.to_string())
    }
}

pub(crate) type FfiResult<T> = Result<T, FfiError>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(msg: &str) {
    LAST_ERROR.with(|e| {
        // The same failure again (a caller polling an empty queue or a full send
        // buffer) keeps the message it has: no allocation.
        if e.borrow().as_bytes() == msg.as_bytes() {
            return;
        }
        let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
        *e.borrow_mut() = c;
    })
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Run an export body: errors become codes with a message, panics become WTD_ERR_PANIC.
pub(crate) fn guard(f: impl FnOnce() -> FfiResult<()>) -> wtd_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => WTD_OK,
        Ok(Err(e)) => {
            set_last_error(&e.msg);
            e.code
        }
        Err(p) => {
            set_last_error(&format!("internal panic: {}", panic_message(&*p)));
            WTD_ERR_PANIC
        }
    }
}

/// Run a getter that cannot report errors: a panic yields `default`.
pub(crate) fn guard_value<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// Borrow an output argument (a plain C value the call writes), refusing NULL.
///
/// # Safety
/// `p` must be NULL or valid for reads and writes of a `T` for `'a` (a `T` whose every
/// bit pattern is valid, or one the caller initialised), not accessed by anything else
/// meanwhile.
pub(crate) unsafe fn out<'a, T>(p: *mut T, name: &str) -> FfiResult<&'a mut T> {
    // SAFETY: this function's contract.
    unsafe { p.as_mut() }.ok_or_else(|| FfiError::arg(format!("{name} is NULL")))
}

/// Borrow an output buffer `(buf, cap)` (`cap` elements of `T`) as uninitialised memory
/// to fill. NULL is allowed only with `cap == 0` (a size query: nothing fits); NULL with
/// a capacity is WTD_ERR_INVALID_ARGUMENT, as the header promises for a NULL buffer.
///
/// # Safety
/// `buf` must be NULL or valid for writes of `cap` elements of `T` for `'a`, and not
/// be read or written by anything else meanwhile.
pub(crate) unsafe fn out_buf<'a, T>(
    buf: *mut T,
    cap: usize,
    name: &str,
) -> FfiResult<&'a mut [MaybeUninit<T>]> {
    if buf.is_null() {
        if cap == 0 {
            return Ok(&mut []);
        }
        return Err(FfiError::arg(format!(
            "{name} is NULL but its capacity is {cap}"
        )));
    }
    if cap.saturating_mul(std::mem::size_of::<T>().max(1)) > isize::MAX as usize {
        return Err(FfiError::arg(format!(
            "{name}: capacity {cap} is larger than any buffer"
        )));
    }
    // SAFETY: non-NULL, valid for `cap` elements (the caller's contract; the size fits
    // in isize, checked above); MaybeUninit makes no claim about the contents.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.cast::<MaybeUninit<T>>(), cap) })
}

/// Copy `src` into `dst` from index `at`. Panics (caught by [`guard`] as
/// WTD_ERR_PANIC) if it does not fit: callers check sizes first.
pub(crate) fn put<T: Copy>(dst: &mut [MaybeUninit<T>], at: usize, src: &[T]) {
    let dst = &mut dst[at..at + src.len()];
    // SAFETY: `dst` and `src` have the same length (the slice above checked the
    // bounds), do not overlap (`src` is ours, `dst` the caller's buffer), and a
    // `MaybeUninit<T>` has the layout of `T`.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<T>(), src.len()) };
}

/// Borrow a single output struct as uninitialised memory: for C structs that hold enum
/// fields, whose current contents (written by C) may not be valid values, so no `&mut T`
/// may be formed over them before we wrote one.
///
/// # Safety
/// `p` must be NULL or valid for writes of a `T`.
pub(crate) unsafe fn out_uninit<'a, T>(p: *mut T, name: &str) -> FfiResult<&'a mut MaybeUninit<T>> {
    // SAFETY: NULL or valid for writes of a `T` (this function's contract); as
    // MaybeUninit nothing is assumed about the current contents.
    unsafe { p.cast::<MaybeUninit<T>>().as_mut() }
        .ok_or_else(|| FfiError::arg(format!("{name} is NULL")))
}

/// `value` when it lies in `range`, else WTD_ERR_INVALID_ARGUMENT saying
/// "`what` must be LO..=HI`unit`, got VALUE": the check every range-limited setter makes.
pub(crate) fn in_range<T: PartialOrd + std::fmt::Display>(
    value: T,
    range: std::ops::RangeInclusive<T>,
    what: &str,
    unit: &str,
) -> FfiResult<T> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(FfiError::arg(format!(
        "{what} must be {}..={}{unit}, got {value}",
        range.start(),
        range.end()
    )))
}

/// Borrow `(data, len)`; NULL is allowed only with `len == 0`.
///
/// # Safety
/// `data` must be NULL or valid for `len` bytes.
pub(crate) unsafe fn bytes<'a>(data: *const u8, len: usize, name: &str) -> FfiResult<&'a [u8]> {
    if data.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(FfiError::arg(format!(
            "{name} is NULL but its length is {len}"
        )));
    }
    // SAFETY: non-NULL and valid for `len` bytes (this function's contract).
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// Borrow an array of `count` buffers (each checked as [`bytes`]); NULL is allowed only
/// with `count == 0`.
///
/// # Safety
/// `items` must be NULL or valid for reads of `count` `wtd_buffer`s, each of whose
/// `data` is NULL (with `len` 0) or valid for `len` bytes, for `'a`.
pub(crate) unsafe fn buffers<'a>(
    items: *const wtd_buffer,
    count: usize,
    name: &str,
) -> FfiResult<Vec<&'a [u8]>> {
    if items.is_null() {
        if count == 0 {
            return Ok(Vec::new());
        }
        return Err(FfiError::arg(format!(
            "{name} is NULL but count is {count}"
        )));
    }
    // SAFETY: non-NULL and valid for `count` buffers (this function's contract).
    let items = unsafe { std::slice::from_raw_parts(items, count) };
    // The index goes into the message only when one is wrong: a batch send is on the
    // hot path, and naming every item cost a formatted String per datagram.
    let mut out = Vec::with_capacity(count);
    for (i, b) in items.iter().enumerate() {
        if b.data.is_null() && b.len != 0 {
            // SAFETY: NULL with a nonzero length: `bytes` returns its error, reads nothing.
            return Err(
                unsafe { bytes(b.data, b.len, &format!("{name}[{i}].data")) }
                    .expect_err("NULL with a length is an error"),
            );
        }
        // SAFETY: each buffer's data is valid for its len (this function's contract).
        out.push(unsafe { bytes(b.data, b.len, name) }?);
    }
    Ok(out)
}

/// Borrow a NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn cstr<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::arg(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated (this function's contract).
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| FfiError::arg(format!("{name} is not valid UTF-8")))
}

/// Borrow `(data, len)` as UTF-8.
///
/// # Safety
/// As for [`bytes`].
pub(crate) unsafe fn utf8<'a>(data: *const u8, len: usize, name: &str) -> FfiResult<&'a str> {
    // SAFETY: this function's contract is `bytes`'.
    std::str::from_utf8(unsafe { bytes(data, len, name) }?)
        .map_err(|_| FfiError::arg(format!("{name} is not valid UTF-8")))
}

/// A static, NUL-terminated name for a result code (e.g. "WTD_ERR_TIMEOUT"); never NULL.
/// A value that is no wtd_result (e.g. 999) gets "WTD_ERR_UNKNOWN".
#[no_mangle]
pub extern "C" fn wtd_result_name(code: c::wtd_result) -> *const c_char {
    let Some(code) = code.value() else {
        return c"WTD_ERR_UNKNOWN".as_ptr();
    };
    let s: &'static CStr = match code {
        WTD_OK => c"WTD_OK",
        WTD_ERR_INVALID_ARGUMENT => c"WTD_ERR_INVALID_ARGUMENT",
        WTD_ERR_PANIC => c"WTD_ERR_PANIC",
        WTD_ERR_TIMEOUT => c"WTD_ERR_TIMEOUT",
        WTD_ERR_WOULD_BLOCK => c"WTD_ERR_WOULD_BLOCK",
        WTD_ERR_CLOSED => c"WTD_ERR_CLOSED",
        WTD_ERR_TOO_LARGE => c"WTD_ERR_TOO_LARGE",
        WTD_ERR_TLS => c"WTD_ERR_TLS",
        WTD_ERR_IO => c"WTD_ERR_IO",
        WTD_ERR_CONNECT => c"WTD_ERR_CONNECT",
        WTD_ERR_REJECTED => c"WTD_ERR_REJECTED",
        WTD_ERR_PROTOCOL => c"WTD_ERR_PROTOCOL",
        WTD_ERR_NOT_SUPPORTED => c"WTD_ERR_NOT_SUPPORTED",
        WTD_ERR_WOULD_DEADLOCK => c"WTD_ERR_WOULD_DEADLOCK",
        WTD_ERR_BUFFER_TOO_SMALL => c"WTD_ERR_BUFFER_TOO_SMALL",
        WTD_ERR_INVALID_STATE => c"WTD_ERR_INVALID_STATE",
        WTD_ERR_NOT_FOUND => c"WTD_ERR_NOT_FOUND",
        WTD_ERR_QUEUE_FULL => c"WTD_ERR_QUEUE_FULL",
        WTD_ERR_INVALID_DATA => c"WTD_ERR_INVALID_DATA",
    };
    s.as_ptr()
}

/// The message of the last failed call on this thread (empty if none yet). The pointer
/// stays valid until the next failing call on the same thread; never NULL.
#[no_mangle]
pub extern "C" fn wtd_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Copy the last error message of this thread into `buf` (NUL-terminated, truncated to
/// `cap - 1` bytes). Returns the full message length in bytes, excluding the NUL, like
/// snprintf; `buf` may be NULL when `cap` is 0.
#[no_mangle]
pub unsafe extern "C" fn wtd_last_error_message(buf: *mut c_char, cap: usize) -> usize {
    LAST_ERROR.with(|e| {
        let msg = e.borrow();
        let bytes = msg.as_bytes();
        if !buf.is_null() && cap > 0 {
            let n = bytes.len().min(cap - 1);
            // SAFETY: `buf` is valid for `cap` bytes (the header's contract) and
            // n + 1 <= cap; the message is ours, so the regions do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        bytes.len()
    })
}

/// The library version, e.g. "0.1.0"; static, never NULL.
#[no_mangle]
pub extern "C" fn wtd_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}
