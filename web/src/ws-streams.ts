/**
 * The streams of one `TokenRelaySocket`: routing, cancel, resume (docs/protocol.md sections 3, 5).
 *
 * The socket owns the connection (open, reconnect, outbox); `SocketStreams` owns what runs
 * on it. Each stream is an `Entry`, keyed by the `request_id` its `chat` carried and, from
 * `start` on, by its `stream_id`. The server's messages are handed to the stream's own
 * handlers; `text` is de-duplicated by `seq` (a resume may repeat what was seen).
 *
 * When the connection drops, `lost()` turns each running stream into a `resume` message for
 * the next connection (when it has an owner to resume as) or ends it (`connection_lost`);
 * `opened()` then starts each resumed stream's watchdog: if nothing comes back for it in
 * `resumeTimeoutMs`, its producer is gone, and it ends with `resume_timeout`.
 */

import { dispatchPart, toPart } from "./parts.js";
import {
  type ChatError,
  type ChatRequest,
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

/** What the streams need from the connection. */
export interface Link {
  /** Send now if open (then `entry.sent`), else queue in the outbox and connect. */
  transmit(data: string, entry?: Entry): void;
  /** Take a message that has not left yet out of the outbox. */
  unqueue(data: string): void;
  /** Errors that belong to no stream. */
  onError(error: ChatError): void;
  setTimer(callback: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export interface Entry {
  requestId: string;
  streamId: string | null;
  handlers: StreamHandlers;
  payload: string;
  sent: boolean;
  cancelRequested: boolean;
  done: boolean;
  /** The `seq` of the last text message handed to `onText` (a resume asks for what follows). */
  lastSeq: number;
  /** Resumed on a new connection, and nothing has come back for it yet. */
  awaitingResume: boolean;
  /** The watchdog of `awaitingResume`, once the resume is sent. */
  resumeTimer: unknown;
  resolve(event: TerminalEvent): void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

const CANCEL_PREFIX = "cancel:";

let counter = 0;
function newRequestId(): string {
  counter += 1;
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return `${random}-${counter}`;
}

export class SocketStreams {
  private readonly byRequest = new Map<string, Entry>();
  private readonly byStream = new Map<string, Entry>();
  private cancels = 0;

  constructor(
    private readonly link: Link,
    private readonly resumeTimeoutMs: number,
  ) {}

  get size(): number {
    return this.byRequest.size;
  }

  send(request: ChatRequest, handlers: StreamHandlers, options: SendOptions): ChatHandle {
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
      awaitingResume: false,
      resumeTimer: null,
      resolve,
      signal: options.signal,
      onAbort: () => this.abort(entry),
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
    this.link.transmit(entry.payload, entry);
    return handle;
  }

  /** Cancel one stream by id, or every active stream of the connection. */
  cancel(streamId?: string): void {
    if (streamId !== undefined) {
      const entry = this.byStream.get(streamId);
      if (entry !== undefined) this.cancelEntry(entry);
      else this.link.transmit(this.cancelMessage(streamId));
      return;
    }
    for (const entry of [...this.byRequest.values()]) {
      if (!entry.sent) this.finish(entry, { type: "cancelled", stream_id: null, reason: "client" });
    }
    this.link.transmit(this.cancelMessage(undefined));
  }

  /**
   * The connection dropped: the messages to send first on the next one (a `resume` for each
   * stream that can be resumed); the others end with `connection_lost`.
   */
  lost(resume: boolean): string[] {
    const resumes: string[] = [];
    for (const entry of [...this.byRequest.values()]) {
      if (!entry.sent) continue; // still in the outbox
      if (resume && entry.streamId !== null) {
        entry.sent = false;
        entry.payload = JSON.stringify({ type: "resume", stream_id: entry.streamId, after_seq: entry.lastSeq, request_id: entry.requestId });
        resumes.push(entry.payload);
        this.stopWatch(entry);
        entry.awaitingResume = true; // its watchdog starts once the resume is sent
      } else {
        this.finish(entry, clientError("connection_lost", "the WebSocket connection was lost", true, { stream_id: entry.streamId }));
      }
    }
    return resumes;
  }

  /** The outbox went out on a new connection. */
  opened(): void {
    for (const entry of this.byRequest.values()) {
      entry.sent = true;
      if (entry.awaitingResume && entry.resumeTimer === null) this.watchResume(entry);
    }
  }

  failAll(make: () => TerminalEvent): void {
    for (const entry of [...this.byRequest.values()]) this.finish(entry, make());
  }

  receive(raw: unknown): void {
    let message: unknown;
    try {
      message = JSON.parse(String(raw)) as unknown;
    } catch {
      this.link.onError(clientError("bad_response", "the server sent a message that is not JSON", false));
      return;
    }
    if (!isObject(message)) return;
    const type = message.type;
    const requestId = typeof message.request_id === "string" ? message.request_id : null;
    const streamId = typeof message.stream_id === "string" ? message.stream_id : null;
    if (typeof type !== "string") {
      // API Gateway's own answer when an integration fails: {"message": "Internal server error", ...}
      const text = typeof message.message === "string" ? message.message : "unexpected message";
      this.link.onError(clientError("gateway_error", text, true));
      return;
    }
    if (requestId !== null && requestId.startsWith(CANCEL_PREFIX)) {
      if (type === "error") this.link.onError(toError(message)); // a refused cancel (finished, unknown, forbidden)
      return;
    }
    const entry = (requestId !== null ? this.byRequest.get(requestId) : undefined) ?? (streamId !== null ? this.byStream.get(streamId) : undefined);
    if (entry === undefined) {
      if (type === "error" && requestId === null && streamId === null) this.link.onError(toError(message));
      return; // a late message for a stream already ended here
    }
    this.stopWatch(entry); // the stream is alive
    switch (type) {
      case "start": {
        const start = toStart(message);
        entry.streamId = start.stream_id || streamId;
        if (entry.streamId) this.byStream.set(entry.streamId, entry);
        entry.handlers.onStart?.(start);
        if (entry.cancelRequested && entry.streamId) this.link.transmit(this.cancelMessage(entry.streamId));
        break;
      }
      case "text":
        if (typeof message.content === "string") {
          const seq = typeof message.seq === "number" ? message.seq : entry.lastSeq + 1;
          if (seq <= entry.lastSeq) break; // already seen before a resume
          entry.lastSeq = seq;
          const tokens = message.tokens;
          const count = typeof tokens === "number" && Number.isInteger(tokens) && tokens >= 0 ? tokens : 1; // older servers: 1
          entry.handlers.onText?.({ text: message.content, seq, tokens: count });
        }
        break;
      case "reasoning":
      case "tool_call_start":
      case "tool_call_delta":
      case "tool_call_end": {
        const seq = typeof message.seq === "number" ? message.seq : entry.lastSeq + 1;
        if (seq <= entry.lastSeq) break; // already seen before a resume
        entry.lastSeq = seq;
        const part = toPart(type, message, seq);
        if (part !== null) dispatchPart(entry.handlers, part);
        break;
      }
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
      this.link.unqueue(entry.payload); // never reached the server
      this.finish(entry, { type: "cancelled", stream_id: null, reason: "client" });
      return;
    }
    if (entry.streamId !== null) this.link.transmit(this.cancelMessage(entry.streamId));
    else entry.cancelRequested = true; // sent on `start`
  }

  private abort(entry: Entry): void {
    if (entry.done) return;
    if (entry.sent && entry.streamId !== null) this.link.transmit(this.cancelMessage(entry.streamId));
    else if (entry.sent) {
      // the stream id is not known yet: keep routing its messages so `start` can trigger the cancel
      entry.cancelRequested = true;
      this.resolveOnly(entry, { type: "cancelled", stream_id: null, reason: "client" });
      return;
    }
    this.link.unqueue(entry.payload);
    this.finish(entry, { type: "cancelled", stream_id: entry.streamId, reason: "client" });
  }

  /** A resume went out: if nothing comes back for the stream in time, its producer is gone. */
  private watchResume(entry: Entry): void {
    const ms = this.resumeTimeoutMs;
    entry.resumeTimer = this.link.setTimer(() => {
      entry.resumeTimer = null;
      if (entry.done || entry.streamId === null) return;
      this.link.transmit(this.cancelMessage(entry.streamId)); // in case it is alive after all: stop it
      const error = `the stream did not go on within ${Math.round(ms / 100) / 10} s of the reconnect`;
      this.finish(entry, clientError("resume_timeout", error, true, { stream_id: entry.streamId }));
    }, ms);
  }

  private stopWatch(entry: Entry): void {
    entry.awaitingResume = false;
    if (entry.resumeTimer !== null) this.link.clearTimer(entry.resumeTimer);
    entry.resumeTimer = null;
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
    this.stopWatch(entry);
    this.byRequest.delete(entry.requestId);
    if (entry.streamId !== null) this.byStream.delete(entry.streamId);
    entry.signal?.removeEventListener("abort", entry.onAbort);
    try {
      dispatchTerminal(entry.handlers, event);
    } finally {
      entry.resolve(event);
    }
  }
}
