/** Opening a WebTransport session to a server with a self-signed certificate. */
/** The bytes of a hex SHA-256 (64 digits; `:` separators allowed), as `wtd serve` prints it. */
export declare function hashFromHex(hex: string): Uint8Array;
export interface ConnectOptions {
    /** SHA-256 of the server's certificate (hex, or 32 bytes): `serverCertificateHashes`,
     * for a self-signed certificate (ECDSA P-256, valid at most 14 days) such as
     * `wtd serve`'s. */
    certificateHash?: string | Uint8Array;
    /** Give up after this long (default 10000 ms). */
    timeoutMs?: number;
    /** More WebTransport options, passed on. */
    options?: Record<string, unknown>;
}
/** Open a WebTransport session to `url` and wait until it is ready. */
export declare function connect(url: string, opts?: ConnectOptions): Promise<WebTransport>;
