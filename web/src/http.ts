/**
 * SSE over fetch: `POST /chat/stream` (docs/protocol.md section 2), and the cancel endpoint.
 *
 *   const result = await streamChat(FUNCTION_URL, { message: "Hi" }, {
 *     onText: ({ text }) => output.append(text),
 *   }, { signal: controller.signal });
 *
 * The promise resolves with the terminal event (done, cancelled or error) and
 * never rejects, unless one of your handlers throws (then the request is
 * aborted and the promise rejects with that exception).
 *
 * Aborting the signal stops reading at once and resolves with a `cancelled`
 * event (`reason: "client"`); once the stream id is known it also POSTs
 * `/chat/stream/{id}/cancel` (fire and forget, `keepalive`), so the server
 * stops generating even where a dropped connection would not stop it (a
 * Function URL, a resumable stream). `cancelStream` does the same on demand.
 *
 * A connection lost mid-stream is resumed (`resume`, default on): `GET
 * /chat/stream/{id}` with `Last-Event-ID` set to the last message id seen, with
 * backoff, so the handlers see every part once, in order, and one terminal event;
 * `onConnection` reports each attempt ("reconnecting, attempt 2 of 5").
 *
 * `cancelStream` and `checkKey` are in `calls.ts`.
 */

import { cancelStream, errorMessage, fetchOf, readJson, type HttpOptions } from "./calls.js";
import { SseParser, type SseEvent } from "./sse.js";
import { dispatchPart, toPart } from "./parts.js";
import {
  type ChatRequest,
  type ChatError,
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

export { cancelStream, checkKey } from "./calls.js";
export type { CancelOptions, CancelResult, FetchLike, HttpOptions } from "./calls.js";

export interface StreamOptions extends HttpOptions {
  signal?: AbortSignal;
  /** On abort, also call the cancel endpoint (default true). */
  cancelOnAbort?: boolean;
  /** Comment lines, such as the server's `: ping` keep-alives. */
  onComment?: (text: string) => void;
  /**
   * When the connection drops mid-stream, resume it: `GET /chat/stream/{id}` with
   * `Last-Event-ID` (docs/protocol.md section 5), so no part is lost or repeated. Default true.
   */
  resume?: boolean;
  /** Each resume attempt (`reconnecting`), and `open` when one is answered. */
  onConnection?: (state: ConnectionState) => void;
  /** Resume attempts in a row without progress before giving up (default 5). */
  maxResumeAttempts?: number;
  /** Delay before the first resume attempt, doubled after each failed one (default 250 ms, at most 4 s). */
  resumeDelayMs?: number;
}

function httpError(status: number, body: unknown): ChatError {
  if (isObject(body) && typeof body.error === "string") return toError(body, status);
  return clientError("http_error", `the server answered HTTP ${status}`, status >= 500 || status === 429, { status });
}

export async function streamChat(
  baseUrl: string,
  request: ChatRequest,
  handlers: StreamHandlers = {},
  options: StreamOptions = {},
): Promise<TerminalEvent> {
  const { signal, cancelOnAbort = true } = options;
  const doFetch = fetchOf(options);
  const abort = new AbortController();
  let streamId: string | null = null;
  let terminal: TerminalEvent | null = null;
  let seq = 0;

  const finish = (event: TerminalEvent): void => {
    if (terminal !== null) return;
    terminal = event;
    dispatchTerminal(handlers, event);
  };
  const cancelledHere = (): TerminalEvent => ({ type: "cancelled", stream_id: streamId, reason: "client" });
  const onAbort = (): void => {
    if (streamId !== null && cancelOnAbort) {
      void cancelStream(baseUrl, streamId, { ...options, keepalive: true });
    }
    abort.abort();
  };

  if (signal?.aborted) {
    finish(cancelledHere());
    return terminal ?? cancelledHere();
  }
  signal?.addEventListener("abort", onAbort, { once: true });
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  try {
    let response: Response;
    try {
      response = await doFetch(endpoint(baseUrl, "chat/stream"), {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...options.headers },
        body: JSON.stringify(request),
        signal: abort.signal,
        cache: "no-store",
      });
    } catch (exc) {
      finish(abort.signal.aborted ? cancelledHere() : clientError("network_error", `request failed: ${errorMessage(exc)}`, true));
      return terminal ?? cancelledHere();
    }
    if (!response.ok) {
      finish(httpError(response.status, await readJson(response)));
      return terminal ?? cancelledHere();
    }
    const type = response.headers.get("content-type") ?? "";
    if (!type.toLowerCase().startsWith("text/event-stream") || response.body === null) {
      void response.body?.cancel();
      finish(clientError("bad_response", `expected an event stream, got '${type || "no content type"}'`, false));
      return terminal ?? cancelledHere();
    }
    streamId = response.headers.get("x-stream-id"); // readable cross-origin only if exposed by CORS

    const onEvent = (event: SseEvent): void => {
      if (terminal !== null) return;
      let data: unknown;
      try {
        data = JSON.parse(event.data) as unknown;
      } catch {
        finish(clientError("bad_response", `event '${event.event}': data is not JSON`, false));
        return;
      }
      if (!isObject(data)) {
        finish(clientError("bad_response", `event '${event.event}': data is not a JSON object`, false));
        return;
      }
      switch (event.event) {
        case "start": {
          const start = toStart(data);
          streamId = start.stream_id || streamId;
          handlers.onStart?.(start);
          break;
        }
        case "message":
        case "reasoning":
        case "tool_call_start":
        case "tool_call_delta":
        case "tool_call_end": {
          const id = event.hasId && /^\d+$/.test(event.id) ? Number(event.id) : seq + 1;
          if (id <= seq) break; // seen before a resume
          seq = id;
          if (event.event !== "message") {
            const part = toPart(event.event, data, seq);
            if (part !== null) dispatchPart(handlers, part);
          } else if (typeof data.text === "string") handlers.onText?.({ text: data.text, seq, tokens: 1 });
          break;
        }
        case "usage":
          handlers.onUsage?.(toUsage(data));
          break;
        case "done":
          finish(toDone(data));
          break;
        case "cancelled":
          finish(toCancelled(data));
          break;
        case "error":
          finish({ ...toError(data), stream_id: streamId });
          break;
        default: // an event this client does not know: ignore (forward compatible)
      }
    };
    /** Read one response until the terminal event (null) or until the connection is lost (the error). */
    const pump = async (body: ReadableStream<Uint8Array>): Promise<TerminalEvent | null> => {
      const parser = new SseParser({ onEvent, ...(options.onComment ? { onComment: options.onComment } : {}) });
      reader = body.getReader();
      while (terminal === null) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (exc) {
          return abort.signal.aborted ? cancelledHere() : clientError("network_error", `connection lost: ${errorMessage(exc)}`, true);
        }
        if (chunk.done) {
          parser.end();
          return clientError("stream_truncated", "the stream ended without a final event", true, { stream_id: streamId });
        }
        parser.feed(chunk.value);
      }
      return null;
    };
    let lost = await pump(response.body);
    const firstLoss = lost; // reported if resuming does not work out
    const maxAttempts = options.maxResumeAttempts ?? 5;
    let attempts = 0;
    let progress = seq;
    while (terminal === null && lost !== null) {
      if (options.resume === false || streamId === null || abort.signal.aborted || attempts >= maxAttempts) break;
      if (seq > progress) [attempts, progress] = [0, seq]; // the last attempt got somewhere
      const delayMs = Math.min((options.resumeDelayMs ?? 250) * 2 ** attempts, 4000);
      options.onConnection?.({ status: "reconnecting", attempt: attempts + 1, maxAttempts: maxAttempts, delayMs });
      await sleep(delayMs, abort.signal);
      attempts += 1;
      if (abort.signal.aborted) break;
      let again: Response;
      try {
        again = await doFetch(endpoint(baseUrl, `chat/stream/${encodeURIComponent(streamId)}`), {
          method: "GET",
          headers: { Accept: "text/event-stream", "Last-Event-ID": String(seq), ...options.headers },
          signal: abort.signal,
          cache: "no-store",
        });
      } catch {
        if (abort.signal.aborted) lost = cancelledHere();
        continue;
      }
      if (!again.ok || again.body === null) {
        const error = httpError(again.status, await readJson(again));
        if (again.status >= 500 || again.status === 429) continue;
        lost = { ...error, stream_id: streamId };
        break; // unknown (404) or not ours (403): resuming cannot work
      }
      options.onConnection?.({ status: "open", attempt: 0, maxAttempts });
      lost = (await pump(again.body)) ?? null;
    }
    if (lost !== null) finish(abort.signal.aborted ? cancelledHere() : lost.type === "error" && lost.code === "network_error" ? firstLoss ?? lost : lost);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (terminal === null) abort.abort(); // a handler threw: drop the connection
    const last = reader as ReadableStreamDefaultReader<Uint8Array> | null; // assigned inside pump()
    if (last !== null) last.cancel().catch(() => undefined); // stop reading after the terminal event
  }
  return terminal ?? cancelledHere();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

