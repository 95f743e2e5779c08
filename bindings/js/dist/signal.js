/** Small async helpers: a wake-up signal and waits bounded by a timeout. */
import { WtdError } from "./errors.js";
/** Wakes every current waiter (like tokio's `Notify::notify_waiters`); waiters re-check
 * their condition after waking. */
export class Signal {
    constructor() {
        this.waiters = [];
    }
    wait() {
        return new Promise((resolve) => this.waiters.push(resolve));
    }
    /** A wait that can be withdrawn (so abandoned waits do not pile up). */
    waitCancellable() {
        let f;
        const p = new Promise((resolve) => {
            f = resolve;
            this.waiters.push(resolve);
        });
        const cancel = () => {
            const i = this.waiters.indexOf(f);
            if (i >= 0)
                this.waiters.splice(i, 1);
        };
        return [p, cancel];
    }
    notify() {
        const w = this.waiters;
        if (w.length === 0)
            return;
        this.waiters = [];
        for (const f of w)
            f();
    }
}
export function checkTimeout(timeoutMs) {
    if (timeoutMs === null || timeoutMs === undefined)
        return;
    if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
        throw new WtdError("InvalidArgument", `timeout must be a number of milliseconds >= 0 or null, not ${String(timeoutMs)}`);
    }
}
/**
 * Call `poll` until it returns something other than `undefined` (its result is
 * returned; a thrown error propagates), waiting on `signal` in between, for at most
 * `timeoutMs` (null or undefined: no limit). Rejects with a `"Timeout"` WtdError.
 */
export async function waitOn(signal, timeoutMs, poll) {
    checkTimeout(timeoutMs);
    const first = poll();
    if (first !== undefined)
        return first;
    let timedOut = false;
    let timer;
    let wakeTimeout;
    const expiry = timeoutMs === null || timeoutMs === undefined
        ? null
        : new Promise((resolve) => {
            wakeTimeout = resolve;
            timer = setTimeout(() => {
                timedOut = true;
                resolve();
            }, timeoutMs);
        });
    try {
        for (;;) {
            if (expiry === null)
                await signal.wait();
            else {
                const [woken, cancel] = signal.waitCancellable();
                await Promise.race([woken, expiry]);
                cancel();
            }
            const r = poll();
            if (r !== undefined)
                return r;
            if (timedOut)
                throw new WtdError("Timeout", `nothing arrived within ${timeoutMs} ms`);
        }
    }
    finally {
        if (timer !== undefined)
            clearTimeout(timer);
        wakeTimeout?.();
    }
}
/** Resolve after `ms` milliseconds. */
export function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}
