/**
 * The EventSource variant: `GET /chat/stream?message=...` (docs/protocol.md section 2).
 *
 * For pages that prefer the browser's own SSE reader. Same handlers and result
 * as `streamChat`, with two limits that come from EventSource itself:
 *
 * - the request travels in the query string, so `messages` (a history), `tools`,
 *   `tool_choice`, `parallel_tool_calls` and `reasoning` cannot be sent (an
 *   `invalid_request` naming the field, never a silent drop): use `streamChat` (POST);
 * - a refused request (400, 422...) only shows as a connection error, since
 *   EventSource hides HTTP statuses and bodies.
 *
 * EventSource reconnects by itself after a drop, but to the URL that started the
 * stream (a new generation), so the source is closed on a connection error instead;
 * once the stream id is known, a new source resumes it (`resume`, default on):
 * `GET /chat/stream/{id}?last_event_id=n` (docs/protocol.md section 5), each part once;
 * `onConnection` reports each attempt.
 *
 * An API key (`token`) cannot go in a header either: EventSource sends none. It goes
 * in the query string as `access_token=`, which the server accepts on GET routes only;
 * a URL may land in proxy logs and browser history (docs/security.md), so prefer
 * `streamChat` where a header is possible. The cancel call is a fetch, and sends the
 * key as `Authorization: Bearer`, never in its URL.
 */

import { cancelStream, type CancelOptions, type HttpOptions } from "./http.js";
import { dispatchPart, PART_EVENTS, toPart } from "./parts.js";
import {
  type ChatRequest,
  type ConnectionState,
  type StreamHandlers,
  type TerminalEvent,
  clientError,
  dispatchTerminal,
  endpoint,
  isObject,
  toCancelled,
  toDone,
  toError,
  toStart,
  toUsage,
} from "./types.js";

/** The EventSource members this client uses (the browser's, or a test double). */
export interface EventSourceLike {
  addEventListener(type: string, listener: (event: Event) => void): void;
  close(): void;
}
export type EventSourceFactory = new (url: string, init?: EventSourceInit) => EventSourceLike;

export interface EventSourceOptions extends Omit<HttpOptions, "headers"> {
  signal?: AbortSignal;
  /** On abort, also call the cancel endpoint (default true). */
  cancelOnAbort?: boolean;
  withCredentials?: boolean;
  /**
   * API key (`trk_...`): `?access_token=` on the stream's URLs (EventSource cannot send
   * headers; see docs/security.md for the trade-off), `Authorization: Bearer` on the cancel call.
   */
  token?: string;
  /** The EventSource class (default: the global one). */
  EventSource?: EventSourceFactory;
  /** Resume a stream whose connection was lost (default true). */
  resume?: boolean;
  /** Each resume attempt (`reconnecting`), and `open` when one is answered. */
  onConnection?: (state: ConnectionState) => void;
  /** Resume attempts in a row without progress before giving up (default 5). */
  maxResumeAttempts?: number;
  /** Delay before the first resume attempt, doubled after each failed one (default 250 ms, at most 4 s). */
  resumeDelayMs?: number;
}

/** What a POST body may hold that a query string cannot. */
const BODY_ONLY = [
  "messages",
  "stop",
  "response_format",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "reasoning",
] as const;

export type QueryRequest = Omit<ChatRequest, (typeof BODY_ONLY)[number]>;

const QUERY_FIELDS = [
  "message",
  "system",
  "provider",
  "model",
  "max_tokens",
  "temperature",
  "top_p",
  "seed",
  "presence_penalty",
  "frequency_penalty",
  "user",
  "prompt_cache_key",
] as const;

/** The `GET /chat/stream` URL for `request`; with `token`, the API key as `access_token` (last). */
export function eventSourceUrl(baseUrl: string, request: QueryRequest, token?: string): string {
  const url = new URL(endpoint(baseUrl, "chat/stream"));
  for (const key of QUERY_FIELDS) {
    const value = request[key];
    if (value !== undefined) url.searchParams.set(key, String(value));
  }
  if (token !== undefined) url.searchParams.set("access_token", token);
  return url.toString();
}

/** The cancel call's options: the key as a header (a fetch can send one), never in the URL. */
function cancelOptions(options: EventSourceOptions): CancelOptions {
  const { headers } = options as HttpOptions; // passed through by callers that have them (ChatController)
  const auth = options.token !== undefined ? { Authorization: `Bearer ${options.token}` } : {};
  return { ...(options.fetch ? { fetch: options.fetch } : {}), headers: { ...headers, ...auth }, keepalive: true };
}

export function streamChatEventSource(
  baseUrl: string,
  request: QueryRequest,
  handlers: StreamHandlers = {},
  options: EventSourceOptions = {},
): Promise<TerminalEvent> {
  return new Promise<TerminalEvent>((resolve) => {
    let streamId: string | null = null;
    let terminal: TerminalEvent | null = null;
    let source: EventSourceLike | null = null;
    const { signal, cancelOnAbort = true } = options;

    const finish = (event: TerminalEvent): void => {
      if (terminal !== null) return;
      terminal = event;
      source?.close();
      signal?.removeEventListener("abort", onAbort);
      try {
        dispatchTerminal(handlers, event);
      } finally {
        resolve(event);
      }
    };
    const onAbort = (): void => {
      if (streamId !== null && cancelOnAbort) void cancelStream(baseUrl, streamId, cancelOptions(options));
      finish({ type: "cancelled", stream_id: streamId, reason: "client" });
    };

    const bodyOnly = BODY_ONLY.find((field) => field in request);
    if (bodyOnly !== undefined) {
      const error = `${bodyOnly}: not supported by EventSource (GET); use streamChat`;
      finish(clientError("invalid_request", error, false, { field: bodyOnly }));
      return;
    }
    if (signal?.aborted) {
      finish({ type: "cancelled", stream_id: null, reason: "client" });
      return;
    }
    const Source = options.EventSource ?? (globalThis as { EventSource?: EventSourceFactory }).EventSource;
    if (Source === undefined) {
      finish(clientError("unsupported", "EventSource is not available here", false));
      return;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    let seq = 0;
    let attempts = 0;
    let progress = 0;
    let es: EventSourceLike;

    /** The connection was lost: open a resuming source, or give up. */
    const lost = (): boolean => {
      if (options.resume === false || streamId === null || terminal !== null) return false;
      if (seq > progress) [attempts, progress] = [0, seq];
      const maxAttempts = options.maxResumeAttempts ?? 5;
      if (attempts >= maxAttempts) return false;
      const delay = Math.min((options.resumeDelayMs ?? 250) * 2 ** attempts, 4000);
      attempts += 1;
      options.onConnection?.({ status: "reconnecting", attempt: attempts, maxAttempts, delayMs: delay });
      es.close();
      const url = new URL(endpoint(baseUrl, `chat/stream/${encodeURIComponent(streamId)}`));
      url.searchParams.set("last_event_id", String(seq));
      if (options.token !== undefined) url.searchParams.set("access_token", options.token);
      setTimeout(() => {
        if (terminal === null) open(url.toString());
      }, delay);
      return true;
    };

    const on = (name: string, handle: (data: Record<string, unknown>, event: MessageEvent<string>) => void): void => {
      const current = es;
      es.addEventListener(name, (event: Event) => {
        if (terminal !== null || current !== es) return;
        const data = (event as Partial<MessageEvent<unknown>>).data;
        if (typeof data !== "string") {
          if (lost()) return;
          // no data: the browser's own "error" (connection failed or refused), not the server's error event
          const message = streamId === null
            ? "could not open the event stream (the request may be invalid, or the server unreachable; EventSource does not show why)"
            : "the event stream connection was lost";
          finish(clientError("network_error", message, streamId !== null, { stream_id: streamId }));
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(data) as unknown;
        } catch {
          parsed = null;
        }
        if (!isObject(parsed)) {
          finish(clientError("bad_response", `event '${name}': data is not a JSON object`, false));
          return;
        }
        handle(parsed, event as MessageEvent<string>);
      });
    };
    const open = (url: string): void => {
      es = new Source(url, { withCredentials: options.withCredentials === true });
      source = es;
      if (attempts > 0 && options.onConnection !== undefined) {
        const report = options.onConnection;
        const current = es;
        es.addEventListener("open", () => {
          if (terminal === null && current === es) report({ status: "open", attempt: 0, maxAttempts: options.maxResumeAttempts ?? 5 });
        });
      }
      on("start", (data) => {
        const start = toStart(data);
        streamId = start.stream_id || streamId;
        handlers.onStart?.(start);
      });
      on("message", (data, event) => {
        const id = /^\d+$/.test(event.lastEventId) ? Number(event.lastEventId) : seq + 1;
        if (id <= seq) return; // seen before a resume
        seq = id;
        if (typeof data.text === "string") handlers.onText?.({ text: data.text, seq, tokens: 1 });
      });
      for (const name of PART_EVENTS) {
        on(name, (data, event) => {
          const id = /^\d+$/.test(event.lastEventId) ? Number(event.lastEventId) : seq + 1;
          if (id <= seq) return; // seen before a resume
          seq = id;
          const part = toPart(name, data, seq);
          if (part !== null) dispatchPart(handlers, part);
        });
      }
      on("usage", (data) => handlers.onUsage?.(toUsage(data)));
      on("done", (data) => finish(toDone(data)));
      on("cancelled", (data) => finish(toCancelled(data)));
      on("error", (data) => finish({ ...toError(data), stream_id: streamId }));
    };
    open(eventSourceUrl(baseUrl, request, options.token));
  });
}
