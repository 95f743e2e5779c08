/** Small async helpers: a wake-up signal and waits bounded by a timeout. */
/** Wakes every current waiter (like tokio's `Notify::notify_waiters`); waiters re-check
 * their condition after waking. */
export declare class Signal {
    private waiters;
    wait(): Promise<void>;
    /** A wait that can be withdrawn (so abandoned waits do not pile up). */
    waitCancellable(): [Promise<void>, () => void];
    notify(): void;
}
export declare function checkTimeout(timeoutMs: number | null | undefined): void;
/**
 * Call `poll` until it returns something other than `undefined` (its result is
 * returned; a thrown error propagates), waiting on `signal` in between, for at most
 * `timeoutMs` (null or undefined: no limit). Rejects with a `"Timeout"` WtdError.
 */
export declare function waitOn<T>(signal: Signal, timeoutMs: number | null | undefined, poll: () => T | undefined): Promise<T>;
/** Resolve after `ms` milliseconds. */
export declare function sleep(ms: number): Promise<void>;
