/**
 * The small HTTP calls beside a stream: `cancelStream` (`POST /chat/stream/{id}/cancel`)
 * and `checkKey` (does the HTTP API take this API key?), and what every call shares.
 */

import { type ChatError, clientError, endpoint, isObject } from "./types.js";

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface HttpOptions {
  /** Extra request headers (an API key, `X-Client-Id`...). */
  headers?: Record<string, string>;
  /** The fetch to use (default: the global one). */
  fetch?: FetchLike;
}

export function fetchOf(options: HttpOptions): FetchLike {
  return options.fetch ?? ((input, init) => globalThis.fetch(input, init));
}

export async function readJson(response: Response): Promise<unknown> {
  try {
    return JSON.parse(await response.text()) as unknown;
  } catch {
    return null;
  }
}

export function errorMessage(exc: unknown): string {
  return exc instanceof Error ? exc.message : String(exc);
}

export interface CancelOptions extends HttpOptions {
  /** Let the request outlive the page (used when a stream is aborted during unload). */
  keepalive?: boolean;
}

/** The answer of `POST /chat/stream/{id}/cancel`. `ok` only for 200. */
export interface CancelResult {
  ok: boolean;
  /** HTTP status; 0 when the request itself failed. */
  httpStatus: number;
  /** Machine code on failure: `not_found` / `stream_not_found` (404), `stream_finished` (409), `network_error`... */
  code?: string;
  error?: string;
  /** The stream's final status when it had already ended (409). */
  status?: string;
}

export async function cancelStream(baseUrl: string, streamId: string, options: CancelOptions = {}): Promise<CancelResult> {
  const doFetch = fetchOf(options);
  let response: Response;
  try {
    response = await doFetch(endpoint(baseUrl, `chat/stream/${encodeURIComponent(streamId)}/cancel`), {
      method: "POST",
      headers: { ...options.headers },
      keepalive: options.keepalive === true,
    });
  } catch (exc) {
    return { ok: false, httpStatus: 0, code: "network_error", error: errorMessage(exc) };
  }
  const body = await readJson(response);
  const result: CancelResult = { ok: response.ok, httpStatus: response.status };
  if (isObject(body)) {
    if (typeof body.code === "string") result.code = body.code;
    if (typeof body.error === "string") result.error = body.error;
    if (typeof body.status === "string") result.status = body.status;
  }
  return result;
}

/**
 * Whether the HTTP API accepts these credentials (`headers`: the `Authorization` an app
 * sends): `GET /v1/models` with them. A 401 or 403 is the error (`unauthorized`,
 * `forbidden`, with the status); anything else, or no answer within `timeoutMs` (5 s), is
 * null: the key is not the problem, or this cannot tell. The WebSocket client asks this
 * after a failed handshake, since a browser cannot see a refused handshake's status; the
 * HTTP API and the WebSocket API of one stack share the key table.
 */
export async function checkKey(baseUrl: string, options: HttpOptions & { timeoutMs?: number } = {}): Promise<ChatError | null> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), options.timeoutMs ?? 5000);
  try {
    const response = await fetchOf(options)(endpoint(baseUrl, "v1/models"), {
      method: "GET",
      headers: { ...options.headers },
      signal: abort.signal,
      cache: "no-store",
    });
    if (response.status !== 401 && response.status !== 403) {
      void response.body?.cancel();
      return null;
    }
    const body = await readJson(response);
    // TokenRelay's {"error": "..."} or, under /v1, OpenAI's {"error": {"message": "..."}}
    const inner = isObject(body) ? body.error : undefined;
    const message = typeof inner === "string" ? inner : isObject(inner) && typeof inner.message === "string" ? inner.message : null;
    const code = response.status === 401 ? "unauthorized" : "forbidden";
    return clientError(code, message ?? `the server refused the API key (HTTP ${response.status})`, false, { status: response.status });
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}
