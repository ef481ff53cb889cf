/** An error answer of the API (`{"error":{"code","message"}}`), or a failure to reach it. */
export class SharecacheError extends Error {
  /** HTTP status; 0 when no answer came (network error, timeout, abort). */
  readonly status: number;
  /** The API's stable error code (`not_found`, `invalid_key`...), or `network`, `timeout`, `aborted`. */
  readonly code: string;
  /** Seconds the server asked to wait (`Retry-After`), for 429 and 503. */
  readonly retryAfter?: number;
  /** The server's `x-request-id` of the failed call. */
  readonly requestId?: string;
  constructor(
    message: string,
    opts: { status: number; code: string; retryAfter?: number; requestId?: string; cause?: unknown },
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "SharecacheError";
    this.status = opts.status;
    this.code = opts.code;
    this.retryAfter = opts.retryAfter;
    this.requestId = opts.requestId;
  }
}

/** The call did not finish within its timeout. */
export class SharecacheTimeoutError extends SharecacheError {
  constructor(ms: number, cause?: unknown) {
    super(`sharecache call timed out after ${ms} ms`, { status: 0, code: "timeout", cause });
    this.name = "SharecacheTimeoutError";
  }
}
