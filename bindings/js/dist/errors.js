export class WtdError extends Error {
    constructor(code, message, extra = {}) {
        super(message);
        this.name = "WtdError";
        this.code = code;
        if (extra.close !== undefined)
            this.close = extra.close;
        if (extra.size !== undefined)
            this.size = extra.size;
        if (extra.max !== undefined)
            this.max = extra.max;
    }
}
export function invalidArgument(message) {
    return new WtdError("InvalidArgument", message);
}
export function invalidData(message) {
    return new WtdError("InvalidData", message);
}
