/** Opening a WebTransport session to a server with a self-signed certificate. */
import { invalidArgument } from "./errors.js";
/** The bytes of a hex SHA-256 (64 digits; `:` separators allowed), as `wtd serve` prints it. */
export function hashFromHex(hex) {
    const digits = hex.replace(/:/g, "");
    if (!/^[0-9a-fA-F]{64}$/.test(digits))
        throw invalidArgument(`certificate hash must be 64 hex digits, not ${hex}`);
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++)
        out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
    return out;
}
/** Open a WebTransport session to `url` and wait until it is ready. */
export async function connect(url, opts = {}) {
    if (typeof WebTransport === "undefined")
        throw new Error("this browser has no WebTransport");
    const options = { ...(opts.options ?? {}) };
    if (opts.certificateHash !== undefined) {
        const value = typeof opts.certificateHash === "string" ? hashFromHex(opts.certificateHash) : opts.certificateHash;
        options.serverCertificateHashes = [{ algorithm: "sha-256", value }];
    }
    const wt = new WebTransport(url, options);
    wt.closed.catch(() => { }); // handled by whoever awaits it; avoid an unhandled rejection
    const timeoutMs = opts.timeoutMs ?? 10000;
    let timer;
    try {
        await Promise.race([
            wt.ready,
            new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`WebTransport to ${url} not ready after ${timeoutMs} ms`)), timeoutMs);
            }),
        ]);
    }
    catch (e) {
        try {
            wt.close();
        }
        catch {
            /* already failed */
        }
        throw e;
    }
    finally {
        clearTimeout(timer);
    }
    return wt;
}
