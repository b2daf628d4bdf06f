/**
 * WebSocket client for TokenRelay's API Gateway WebSocket API (PROTOCOL section 3).
 *
 *   const socket = new TokenRelaySocket("wss://abc.execute-api.eu-west-1.amazonaws.com/prod");
 *   const chat = socket.send({ message: "Hi" }, { onText: ({ text }) => out.append(text) });
 *   chat.cancel();              // or socket.cancel(chat.streamId), or socket.cancel() for all
 *   const result = await chat.result;
 *
 * - One connection carries many streams. Each `send` gets a `request_id`; the
 *   server echoes it on every message of that stream, with the `stream_id`
 *   from `start` on. Messages are routed to the stream's own handlers by
 *   `request_id`, else by `stream_id`; the rest (errors that belong to no
 *   stream, API Gateway's own `{"message": ...}` errors) go to `onError`.
 * - Messages sent while the socket is (re)connecting wait in an outbox.
 * - After an unexpected close it reconnects with exponential backoff and
 *   jitter. With a `clientId` (the owner), streams that were running on the lost
 *   connection are resumed on the new one from the last `seq` seen (PROTOCOL
 *   section 5): no part is lost or repeated. Without one (or with `resume: false`)
 *   they end with an `error` (`connection_lost`, retryable).
 * - `handle.cancel()` asks the server and resolves when it answers `cancelled`;
 *   an aborted `signal` also asks the server, but ends the stream here at once.
 */

import {
  type ChatRequest,
  type ChatError,
  type StreamHandlers,
  type TerminalEvent,
  clientError,
  dispatchTerminal,
  isObject,
  toCancelled,
  toDone,
  toError,
  toStart,
  toUsage,
} from "./types.js";

/** The WebSocket members this client uses (the browser's, or a test double). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketFactory = new (url: string, protocols?: string[]) => WebSocketLike;

/** The subprotocols that carry an API key through a browser's handshake (docs/security.md). */
export function keyProtocols(token: string): string[] {
  return ["tokenrelay", `bearer.${token}`];
}

export type SocketStatus = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface Backoff {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** 0..1: each delay is cut by up to this fraction, at random. */
  jitter: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 15_000, factor: 2, jitter: 0.3 };

export interface SocketOptions {
  /** Appended as `?client_id=`: the owner of this connection's streams (AUTH_MODE=off). */
  clientId?: string;
  /**
   * API key (`trk_...`), offered as the subprotocols `tokenrelay, bearer.<key>`: a browser
   * cannot set headers on a WebSocket, and this keeps the key out of the URL (and logs).
   */
  token?: string;
  /** Reconnect after an unexpected close (default true). */
  reconnect?: boolean;
  /**
   * After a reconnect, resume the streams that were running (PROTOCOL section 5:
   * `{"type":"resume","stream_id","after_seq"}`), so they go on with no part lost or
   * repeated. Needs `clientId` or `token` (only the owner may resume); default true.
   */
  resume?: boolean;
  backoff?: Partial<Backoff>;
  /** Give up after this many failed reconnects in a row (default: never). */
  maxReconnectAttempts?: number;
  onStatus?: (status: SocketStatus, detail: { attempt: number; delayMs?: number; code?: number }) => void;
  /** Errors that belong to no stream. */
  onError?: (error: ChatError) => void;
  WebSocket?: WebSocketFactory;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  random?: () => number;
}

export interface SendOptions {
  signal?: AbortSignal;
  requestId?: string;
}

export interface ChatHandle {
  readonly requestId: string;
  /** Known once the server's `start` arrived. */
  readonly streamId: string | null;
  /** The terminal event; never rejects. */
  readonly result: Promise<TerminalEvent>;
  /** Ask the server to cancel; `result` then resolves with its `cancelled`. */
  cancel(): void;
}

const OPEN = 1;
const CANCEL_PREFIX = "cancel:";

interface Entry {
  requestId: string;
  streamId: string | null;
  handlers: StreamHandlers;
  payload: string;
  sent: boolean;
  cancelRequested: boolean;
  done: boolean;
  /** The `seq` of the last text message handed to `onText` (a resume asks for what follows). */
  lastSeq: number;
  resolve(event: TerminalEvent): void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

let counter = 0;
function newRequestId(): string {
  counter += 1;
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return `${random}-${counter}`;
}

export function backoffDelay(attempt: number, backoff: Backoff, random: () => number): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** attempt);
  return Math.round(base * (1 - backoff.jitter * random()));
}

export class TokenRelaySocket {
  private ws: WebSocketLike | null = null;
  private statusValue: SocketStatus = "idle";
  private readonly byRequest = new Map<string, Entry>();
  private readonly byStream = new Map<string, Entry>();
  private outbox: string[] = [];
  private attempt = 0;
  private timer: unknown = null;
  private closedByUser = false;
  private cancels = 0;
  private readonly backoff: Backoff;
  private readonly url: string;

  constructor(url: string, private readonly options: SocketOptions = {}) {
    const parsed = new URL(url);
    if (options.clientId !== undefined) parsed.searchParams.set("client_id", options.clientId);
    this.url = parsed.toString();
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  }

  get status(): SocketStatus {
    return this.statusValue;
  }

  /** Streams started on this socket that have not ended. */
  get activeStreams(): number {
    return this.byRequest.size;
  }

  /** Open the connection (done by `send` too). Idempotent. */
  connect(): void {
    this.closedByUser = false;
    if (this.ws !== null || this.timer !== null) return;
    this.open();
  }

  /** Start a stream. */
  send(request: ChatRequest, handlers: StreamHandlers = {}, options: SendOptions = {}): ChatHandle {
    const requestId = options.requestId ?? newRequestId();
    let resolve!: (event: TerminalEvent) => void;
    const result = new Promise<TerminalEvent>((r) => (resolve = r));
    const entry: Entry = {
      requestId,
      streamId: null,
      handlers,
      payload: JSON.stringify({ ...request, type: "chat", request_id: requestId }),
      sent: false,
      cancelRequested: false,
      lastSeq: 0,
      done: false,
      resolve,
      signal: options.signal,
      onAbort: () => this.abortEntry(entry),
    };
    const handle: ChatHandle = {
      requestId,
      get streamId() {
        return entry.streamId;
      },
      result,
      cancel: () => this.cancelEntry(entry),
    };
    if (options.signal?.aborted) {
      this.finish(entry, { type: "cancelled", stream_id: null, reason: "client" });
      return handle;
    }
    options.signal?.addEventListener("abort", entry.onAbort, { once: true });
    this.byRequest.set(requestId, entry);
    this.transmit(entry.payload, entry);
    return handle;
  }

  /** Cancel one stream by id, or every active stream of this connection. */
  cancel(streamId?: string): void {
    if (streamId !== undefined) {
      const entry = this.byStream.get(streamId);
      if (entry !== undefined) this.cancelEntry(entry);
      else this.transmit(this.cancelMessage(streamId));
      return;
    }
    for (const entry of [...this.byRequest.values()]) {
      if (!entry.sent) this.finish(entry, { type: "cancelled", stream_id: null, reason: "client" });
    }
    this.transmit(this.cancelMessage(undefined));
  }

  /** Close for good: no reconnect; streams still running end as cancelled (the server cancels them too). */
  close(): void {
    this.closedByUser = true;
    if (this.timer !== null) {
      (this.options.clearTimeout ?? clearTimeout)(this.timer as ReturnType<typeof setTimeout>);
      this.timer = null;
    }
    const ws = this.ws;
    this.ws = null;
    if (ws !== null) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      ws.close(1000, "client closed");
    }
    this.failAll(() => ({ type: "cancelled", stream_id: null, reason: "client" }));
    this.outbox = [];
    this.setStatus("closed", { attempt: this.attempt });
  }

  // -- connection ----------------------------------------------------------------

  private open(): void {
    const Socket = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (Socket === undefined) throw new Error("WebSocket is not available here");
    this.setStatus(this.attempt === 0 ? "connecting" : "reconnecting", { attempt: this.attempt });
    let ws: WebSocketLike;
    try {
      ws = this.options.token !== undefined ? new Socket(this.url, keyProtocols(this.options.token)) : new Socket(this.url);
    } catch (exc) {
      this.ws = null;
      this.options.onError?.(clientError("network_error", `cannot open ${this.url}: ${String(exc)}`, false));
      this.closedByUser = true;
      this.failAll(() => clientError("network_error", "the WebSocket could not be opened", false));
      this.setStatus("closed", { attempt: this.attempt });
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setStatus("open", { attempt: 0 });
      const outbox = this.outbox;
      this.outbox = [];
      for (const data of outbox) ws.send(data);
      for (const entry of this.byRequest.values()) entry.sent = true;
    };
    ws.onmessage = (event: MessageEvent) => this.receive(event.data);
    ws.onerror = () => undefined; // a close event follows
    ws.onclose = (event: CloseEvent) => this.onClose(ws, event.code);
  }

  private onClose(ws: WebSocketLike, code: number): void {
    if (this.ws !== ws) return;
    this.ws = null;
    // streams that reached the server are resumed on the next connection when they can be
    // (they keep generating on the server for its grace period); otherwise they died with it
    // The owner of the streams survives the reconnect: the client id, or the API key.
    const resume = this.options.resume !== false && (this.options.clientId !== undefined || this.options.token !== undefined);
    for (const entry of [...this.byRequest.values()]) {
      if (entry.sent && resume && entry.streamId !== null) {
        entry.sent = false;
        entry.payload = JSON.stringify({ type: "resume", stream_id: entry.streamId, after_seq: entry.lastSeq, request_id: entry.requestId });
        this.outbox.push(entry.payload);
      } else if (entry.sent) {
        this.finish(entry, clientError("connection_lost", "the WebSocket connection was lost", true, { stream_id: entry.streamId }));
      }
    }
    const max = this.options.maxReconnectAttempts ?? Number.POSITIVE_INFINITY;
    if (this.closedByUser || this.options.reconnect === false || this.attempt >= max) {
      this.failAll(() => clientError("network_error", "the WebSocket is closed", false));
      this.outbox = [];
      this.setStatus("closed", { attempt: this.attempt, code });
      return;
    }
    const delayMs = backoffDelay(this.attempt, this.backoff, this.options.random ?? Math.random);
    this.attempt += 1;
    this.setStatus("reconnecting", { attempt: this.attempt, delayMs, code });
    this.timer = (this.options.setTimeout ?? setTimeout)(() => {
      this.timer = null;
      if (!this.closedByUser) this.open();
    }, delayMs);
  }

  private setStatus(status: SocketStatus, detail: { attempt: number; delayMs?: number; code?: number }): void {
    this.statusValue = status;
    this.options.onStatus?.(status, detail);
  }

  private transmit(data: string, entry?: Entry): void {
    if (this.closedByUser && this.ws === null) this.closedByUser = false; // a send reopens a closed socket
    if (this.ws !== null && this.ws.readyState === OPEN) {
      this.ws.send(data);
      if (entry !== undefined) entry.sent = true;
      return;
    }
    this.outbox.push(data);
    this.connect();
  }

  // -- incoming ------------------------------------------------------------------

  private receive(raw: unknown): void {
    let message: unknown;
    try {
      message = JSON.parse(String(raw)) as unknown;
    } catch {
      this.options.onError?.(clientError("bad_response", "the server sent a message that is not JSON", false));
      return;
    }
    if (!isObject(message)) return;
    const type = message.type;
    const requestId = typeof message.request_id === "string" ? message.request_id : null;
    const streamId = typeof message.stream_id === "string" ? message.stream_id : null;
    if (typeof type !== "string") {
      // API Gateway's own answer when an integration fails: {"message": "Internal server error", ...}
      const text = typeof message.message === "string" ? message.message : "unexpected message";
      this.options.onError?.(clientError("gateway_error", text, true));
      return;
    }
    if (requestId !== null && requestId.startsWith(CANCEL_PREFIX)) {
      if (type === "error") this.options.onError?.(toError(message)); // a refused cancel (finished, unknown, forbidden)
      return;
    }
    const entry = (requestId !== null ? this.byRequest.get(requestId) : undefined) ?? (streamId !== null ? this.byStream.get(streamId) : undefined);
    if (entry === undefined) {
      if (type === "error" && requestId === null && streamId === null) this.options.onError?.(toError(message));
      return; // a late message for a stream already ended here
    }
    switch (type) {
      case "start": {
        const start = toStart(message);
        entry.streamId = start.stream_id || streamId;
        if (entry.streamId) this.byStream.set(entry.streamId, entry);
        entry.handlers.onStart?.(start);
        if (entry.cancelRequested && entry.streamId) this.transmit(this.cancelMessage(entry.streamId));
        break;
      }
      case "text":
        if (typeof message.content === "string") {
          const seq = typeof message.seq === "number" ? message.seq : entry.lastSeq + 1;
          if (seq <= entry.lastSeq) break; // already seen before a resume
          entry.lastSeq = seq;
          entry.handlers.onText?.({ text: message.content, seq });
        }
        break;
      case "usage":
        entry.handlers.onUsage?.(toUsage(message));
        break;
      case "done":
        this.finish(entry, toDone(message));
        break;
      case "cancelled":
        this.finish(entry, toCancelled(message));
        break;
      case "error":
        this.finish(entry, { ...toError(message), stream_id: entry.streamId });
        break;
      default: // unknown message types are ignored (forward compatible)
    }
  }

  // -- per stream ----------------------------------------------------------------

  private cancelMessage(streamId: string | undefined): string {
    this.cancels += 1;
    const message: Record<string, string> = { type: "cancel", request_id: `${CANCEL_PREFIX}${this.cancels}` };
    if (streamId !== undefined) message.stream_id = streamId;
    return JSON.stringify(message);
  }

  private cancelEntry(entry: Entry): void {
    if (entry.done) return;
    if (!entry.sent) {
      // never reached the server: drop it from the outbox
      this.outbox = this.outbox.filter((data) => data !== entry.payload);
      this.finish(entry, { type: "cancelled", stream_id: null, reason: "client" });
      return;
    }
    if (entry.streamId !== null) this.transmit(this.cancelMessage(entry.streamId));
    else entry.cancelRequested = true; // sent on `start`
  }

  private abortEntry(entry: Entry): void {
    if (entry.done) return;
    if (entry.sent && entry.streamId !== null) this.transmit(this.cancelMessage(entry.streamId));
    else if (entry.sent) {
      // the stream id is not known yet: keep routing its messages so `start` can trigger the cancel
      entry.cancelRequested = true;
      this.resolveOnly(entry, { type: "cancelled", stream_id: null, reason: "client" });
      return;
    }
    this.outbox = this.outbox.filter((data) => data !== entry.payload);
    this.finish(entry, { type: "cancelled", stream_id: entry.streamId, reason: "client" });
  }

  /** End the stream for its caller but keep routing, silently, until the server's terminal message. */
  private resolveOnly(entry: Entry, event: TerminalEvent): void {
    const handlers = entry.handlers;
    entry.handlers = {};
    entry.signal?.removeEventListener("abort", entry.onAbort);
    dispatchTerminal(handlers, event);
    entry.resolve(event);
  }

  private finish(entry: Entry, event: TerminalEvent): void {
    if (entry.done) return;
    entry.done = true;
    this.byRequest.delete(entry.requestId);
    if (entry.streamId !== null) this.byStream.delete(entry.streamId);
    entry.signal?.removeEventListener("abort", entry.onAbort);
    try {
      dispatchTerminal(entry.handlers, event);
    } finally {
      entry.resolve(event);
    }
  }

  private failAll(make: () => TerminalEvent): void {
    for (const entry of [...this.byRequest.values()]) this.finish(entry, make());
  }
}
