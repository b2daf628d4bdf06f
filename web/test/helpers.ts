/** Test doubles shared by the unit tests: a scripted fetch, a handler recorder. */

import type { FetchLike } from "../src/http.js";
import type { StreamHandlers } from "../src/types.js";

const enc = new TextEncoder();

export interface Call {
  url: string;
  init: RequestInit;
}

/** A body delivered in the given pieces (strings are UTF-8 encoded), each after a macrotask. */
export function body(pieces: Array<string | Uint8Array>, options: { hang?: boolean } = {}): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      await new Promise((r) => setTimeout(r, 0));
      const piece = pieces[i++];
      if (piece === undefined) {
        if (options.hang) return new Promise<void>(() => undefined); // never ends (until cancelled)
        controller.close();
        return;
      }
      controller.enqueue(typeof piece === "string" ? enc.encode(piece) : piece);
    },
  });
}

export function sse(pieces: Array<string | Uint8Array>, options: { hang?: boolean; headers?: Record<string, string> } = {}): Response {
  return new Response(body(pieces, options), {
    headers: { "content-type": "text/event-stream; charset=utf-8", ...options.headers },
  });
}

export function json(status: number, data: unknown): Response {
  return new Response(JSON.stringify(data), { status, headers: { "content-type": "application/json" } });
}

/** A fetch that answers each call with the next responder, honouring the abort signal. */
export function scriptedFetch(...responders: Array<(call: Call) => Response | Promise<Response>>): { fetch: FetchLike; calls: Call[] } {
  const calls: Call[] = [];
  const fetch: FetchLike = async (url, init) => {
    const call = { url, init };
    calls.push(call);
    const responder = responders.shift();
    if (responder === undefined) throw new Error(`unexpected fetch ${url}`);
    if (init.signal?.aborted) throw new DOMException("aborted", "AbortError");
    const response = await responder(call);
    const stream = response.body;
    if (stream === null || init.signal == null) return response;
    // tie the body to the signal, as a real fetch does
    const reader = stream.getReader();
    const signal = init.signal;
    const tied = new ReadableStream<Uint8Array>({
      start(controller) {
        signal.addEventListener("abort", () => {
          controller.error(new DOMException("aborted", "AbortError"));
          void reader.cancel();
        });
      },
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: () => reader.cancel(),
    });
    return new Response(tied, { status: response.status, headers: response.headers });
  };
  return { fetch, calls };
}

export type Logged = [string, unknown];

export function recorder(): { log: Logged[]; handlers: Required<StreamHandlers>; kinds(): string[]; text(): string } {
  const log: Logged[] = [];
  const handlers: Required<StreamHandlers> = {
    onStart: (e) => log.push(["start", e]),
    onText: (e) => log.push(["text", e]),
    onUsage: (e) => log.push(["usage", e]),
    onReasoning: (e) => log.push(["reasoning", e]),
    onToolCallStart: (e) => log.push(["tool_call_start", e]),
    onToolCallDelta: (e) => log.push(["tool_call_delta", e]),
    onToolCallEnd: (e) => log.push(["tool_call_end", e]),
    onDone: (e) => log.push(["done", e]),
    onCancelled: (e) => log.push(["cancelled", e]),
    onError: (e) => log.push(["error", e]),
  };
  return {
    log,
    handlers,
    kinds: () => log.map(([k]) => k),
    text: () => log.filter(([k]) => k === "text").map(([, e]) => (e as { text: string }).text).join(""),
  };
}

export const START = 'event: start\ndata: {"stream_id":"s-1","provider":"echo","model":"echo-1"}\n\n';
export const msg = (seq: number, text: string): string => `event: message\nid: ${seq}\ndata: ${JSON.stringify({ text })}\n\n`;
export const USAGE = 'event: usage\ndata: {"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}\n\n';
export const DONE =
  'event: done\ndata: {"status":"complete","stream_id":"s-1","finish_reason":"stop","ttft_ms":12,"total_time_ms":80,"completion_tokens":2}\n\n';

export const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A WebSocket double: the test plays API Gateway (`open`, `receive`, `drop`). */
export class FakeWebSocket {
  static all: FakeWebSocket[] = [];
  readyState = 0;
  sent: Array<Record<string, unknown>> = [];
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  constructor(
    readonly url: string,
    readonly protocols?: string[],
  ) {
    FakeWebSocket.all.push(this);
  }
  static last(): FakeWebSocket {
    const ws = FakeWebSocket.all.at(-1);
    if (ws === undefined) throw new Error("no socket");
    return ws;
  }
  send(data: string): void {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(): void {
    this.readyState = 3;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  receive(message: Record<string, unknown>): void {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(message) }));
  }
  /** The connection closes (1006: dropped, or a handshake that failed before open). */
  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code } as CloseEvent);
  }
}
