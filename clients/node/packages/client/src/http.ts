import { SharecacheError, SharecacheTimeoutError } from "./errors.js";

/** Options of every call. */
export interface CallOptions {
  /** Abort the call. */
  signal?: AbortSignal;
  /** This call's timeout in ms (overrides the client's `timeoutMs`). */
  timeoutMs?: number;
}

export interface TransportOptions {
  url: string;
  token: string;
  timeoutMs: number;
  retries: number;
  retryBaseMs: number;
  retryMaxMs: number;
  fetch: typeof fetch;
  headers: Record<string, string>;
}

export interface Request {
  method: "GET" | "HEAD" | "PUT" | "POST" | "DELETE" | "PATCH";
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** The body as JSON text already (values are sent as given). */
  rawBody?: string;
  /** A body of bytes, sent as `application/octet-stream`. */
  bytes?: Uint8Array;
  /** Read the answer as bytes (`Response.bytes`) rather than text. */
  binary?: boolean;
  headers?: Record<string, string>;
  /** Safe to send again: retried on network errors and 503. */
  idempotent: boolean;
  /** Statuses answered without an error (e.g. 404 for a miss). */
  ok?: number[];
  /** Keep the body unread (SSE). No timeout applies after the headers arrive. */
  stream?: boolean;
}

export interface Response {
  status: number;
  headers: Headers;
  /** The body text (empty for 204/HEAD), unless `stream` or `binary`. */
  text: string;
  /** The body, for a `binary` request. */
  bytes?: Uint8Array;
  body?: ReadableStream<Uint8Array> | null;
}

/** Percent-encodes one path segment; a leading `_` is `%5F` so a key is never a route segment. */
export function seg(s: string): string {
  const e = encodeURIComponent(s);
  return e.startsWith("_") ? "%5F" + e.slice(1) : e;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((res, rej) => {
    if (signal?.aborted) return rej(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      res();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      rej(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** Sends requests with auth, timeouts, abort and retries. Node's fetch keeps connections alive. */
export class Transport {
  constructor(readonly opts: TransportOptions) {}

  async send(req: Request, call: CallOptions = {}): Promise<Response> {
    const max = req.idempotent ? this.opts.retries : 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await this.once(req, call);
        if (r.status === 503 && attempt < max) {
          await this.backoff(attempt, r.headers.get("retry-after"), call.signal);
          continue;
        }
        return this.check(req, r);
      } catch (e) {
        if (e instanceof SharecacheError && e.code === "network" && attempt < max) {
          await this.backoff(attempt, null, call.signal);
          continue;
        }
        throw e;
      }
    }
  }

  private async backoff(attempt: number, retryAfter: string | null, signal?: AbortSignal) {
    const exp = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** attempt);
    let ms = Math.random() * exp; // full jitter
    const ra = retryAfter ? Number(retryAfter) * 1000 : 0;
    if (Number.isFinite(ra) && ra > ms) ms = Math.min(ra, this.opts.retryMaxMs);
    await sleep(ms, signal);
  }

  private url(req: Request): string {
    let u = this.opts.url + req.path;
    if (req.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(req.query)) if (v !== undefined) q.set(k, String(v));
      const s = q.toString();
      if (s) u += "?" + s;
    }
    return u;
  }

  private async once(req: Request, call: CallOptions): Promise<Response> {
    const timeoutMs = call.timeoutMs ?? this.opts.timeoutMs;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new SharecacheTimeoutError(timeoutMs)), timeoutMs);
    const signal = call.signal ? AbortSignal.any([call.signal, timeout.signal]) : timeout.signal;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.opts.token}`,
      ...this.opts.headers,
      ...req.headers,
    };
    let body: BodyInit | undefined;
    if (req.bytes !== undefined) {
      // A copy backed by a plain ArrayBuffer, which fetch takes (a view may share one).
      body = new Uint8Array(req.bytes);
      headers["content-type"] = "application/octet-stream";
    } else {
      if (req.rawBody !== undefined) body = req.rawBody;
      else if (req.body !== undefined) body = JSON.stringify(req.body);
      if (body !== undefined) headers["content-type"] = "application/json";
    }
    try {
      const r = await this.opts.fetch(this.url(req), { method: req.method, headers, body, signal });
      if (req.stream && r.ok) {
        clearTimeout(timer);
        return { status: r.status, headers: r.headers, text: "", body: r.body };
      }
      if (req.binary && r.ok) {
        return { status: r.status, headers: r.headers, text: "", bytes: new Uint8Array(await r.arrayBuffer()) };
      }
      const text = req.method === "HEAD" ? "" : await r.text();
      return { status: r.status, headers: r.headers, text };
    } catch (e) {
      if (timeout.signal.aborted && !call.signal?.aborted) throw new SharecacheTimeoutError(timeoutMs, e);
      if (call.signal?.aborted) {
        throw new SharecacheError("sharecache call aborted", { status: 0, code: "aborted", cause: call.signal.reason });
      }
      throw new SharecacheError(`sharecache unreachable: ${(e as Error).message}`, { status: 0, code: "network", cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  private check(req: Request, r: Response): Response {
    if ((r.status >= 200 && r.status < 300) || req.ok?.includes(r.status)) return r;
    let code = `http_${r.status}`;
    let message = `sharecache answered ${r.status}`;
    try {
      const b = JSON.parse(r.text) as { error?: { code?: string; message?: string } };
      if (b.error?.code) code = b.error.code;
      if (b.error?.message) message = b.error.message;
    } catch {
      /* not an API error body */
    }
    const ra = r.headers.get("retry-after");
    throw new SharecacheError(message, {
      status: r.status,
      code,
      retryAfter: ra ? Number(ra) : undefined,
      requestId: r.headers.get("x-request-id") ?? undefined,
    });
  }
}
