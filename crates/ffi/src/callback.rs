//! Application callbacks of components (reliability delivery reports, monitor alerts,
//! structured-transport decode errors): a `(callback, userdata, userdata_free)`
//! registration per handle, called through the runtime's event queue, so it runs where
//! events run (the dispatcher thread, or inside wtd_runtime_next_event) and never on a
//! runtime worker.
//!
//! Rules, the same for every component: replacing or removing a callback stops calls to
//! the old one at once (calls already queued for it are skipped); its `userdata_free`
//! runs exactly once, when the last queued call referring to it is gone; removing with a
//! NULL callback frees the given userdata immediately (nothing will use it).

use std::ffi::c_void;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::events::Event;
use super::runtime::RuntimeInner;
use super::types::wtd_userdata_free;

/// A C function receiving a borrowed `*const T` and the userdata.
pub(crate) type CallbackFn<T> = unsafe extern "C" fn(*const T, *mut c_void);

struct AppCallback<T> {
    func: CallbackFn<T>,
    userdata: *mut c_void,
    free: wtd_userdata_free,
    active: AtomicBool,
    _arg: PhantomData<fn(*const T)>,
}

// SAFETY: the application promises its callback and userdata may be used from the
// thread events are delivered on (documented in the header); we never touch `userdata`.
unsafe impl<T> Send for AppCallback<T> {}
// SAFETY: as for Send: only a function pointer, an opaque pointer and an atomic.
unsafe impl<T> Sync for AppCallback<T> {}

impl<T> Drop for AppCallback<T> {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the application's userdata_free, called exactly once (last reference).
            unsafe { free(self.userdata) };
        }
    }
}

/// The current callback of one handle.
pub(crate) struct CallbackSlot<T> {
    current: Mutex<Option<Arc<AppCallback<T>>>>,
}

impl<T: Send + 'static> CallbackSlot<T> {
    pub(crate) fn new() -> Self {
        CallbackSlot {
            current: Mutex::new(None),
        }
    }

    /// Install `func` (None removes the callback).
    ///
    /// # Safety
    /// `func`, `userdata` and `free` must follow the header's callback contract.
    pub(crate) unsafe fn set(
        &self,
        func: Option<CallbackFn<T>>,
        userdata: *mut c_void,
        free: wtd_userdata_free,
    ) {
        let new = match func {
            Some(func) => Some(Arc::new(AppCallback {
                func,
                userdata,
                free,
                active: AtomicBool::new(true),
                _arg: PhantomData,
            })),
            None => {
                if let Some(f) = free {
                    // SAFETY: the application's destructor for the userdata it gave
                    // with no callback: nothing else will use it (this function's
                    // contract), so it is freed once, now.
                    unsafe { f(userdata) };
                }
                None
            }
        };
        let old = std::mem::replace(&mut *self.current.lock(), new);
        if let Some(old) = old {
            old.active.store(false, Ordering::Release);
        }
    }

    /// Remove the callback (on the handle's free).
    pub(crate) fn clear(&self) {
        // SAFETY: no function, no userdata to free.
        unsafe { self.set(None, std::ptr::null_mut(), None) }
    }

    /// Queue a call with `value` where events are delivered, if a callback is set.
    pub(crate) fn deliver(&self, runtime: &RuntimeInner, value: T) {
        let Some(cb) = self.current.lock().clone() else {
            return;
        };
        runtime.events.push(Event::Invoke(Box::new(move || {
            if cb.active.load(Ordering::Acquire) {
                // SAFETY: the application's callback, with a value alive for the call.
                unsafe { (cb.func)(&value, cb.userdata) };
            }
        })));
    }
}
