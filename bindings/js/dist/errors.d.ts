/**
 * Errors of the module. `code` names the C API's `wtd_result` it corresponds to
 * (`"TooLarge"` is `WTD_ERR_TOO_LARGE`, and so on), so code that handles both reads alike.
 */
export type ErrorCode = "InvalidArgument" | "Timeout" | "Closed" | "TooLarge" | "InvalidState" | "QueueFull" | "InvalidData";
/** Why a session or a layer closed (WebTransportCloseInfo, or a local close). */
export interface CloseInfo {
    /** The session's application close code (0 when the layer was closed locally). */
    closeCode: number;
    reason: string;
    /** True when this side closed it. */
    local: boolean;
}
export declare class WtdError extends Error {
    readonly code: ErrorCode;
    /** For `"Closed"`: how the session or layer closed, when known. */
    readonly close?: CloseInfo;
    /** For `"TooLarge"`: the size tried and the limit. */
    readonly size?: number;
    readonly max?: number;
    constructor(code: ErrorCode, message: string, extra?: {
        close?: CloseInfo;
        size?: number;
        max?: number;
    });
}
export declare function invalidArgument(message: string): WtdError;
export declare function invalidData(message: string): WtdError;
