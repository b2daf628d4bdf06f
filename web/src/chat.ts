/**
 * `ChatController`: one conversation turn at a time, as observable state.
 *
 * The framework-free core of `useStreamingChat` (React) that any UI can
 * subscribe to. It runs a stream over the chosen transport and keeps a
 * snapshot: the text so far, status, error, usage and live progress (time to
 * first token, tokens, tokens per second).
 *
 * Text is appended at most once per animation frame: tokens that arrive
 * between two frames are joined and published together, so a long answer
 * causes one re-render per frame, not one per token. Terminal events are
 * published at once (with any text still pending).
 *
 * `detach()` (the hook calls it on unmount) aborts the running stream,
 * cancels the pending frame and stops notifying: nothing updates afterwards.
 */

import { streamChatEventSource, type EventSourceFactory } from "./eventsource.js";
import { cancelStream, streamChat, type FetchLike } from "./http.js";
import {
  type CancelReason,
  type ChatRequest,
  type ChatError,
  type StartEvent,
  type StreamHandlers,
  type TerminalEvent,
  type UsageEvent,
  clientError,
} from "./types.js";
import { TokenRelaySocket, type WebSocketFactory } from "./websocket.js";

export type Transport = "sse" | "eventsource" | "websocket";
export type ChatStatus = "idle" | "streaming" | "done" | "cancelled" | "error";

export interface ChatProgress {
  /** Milliseconds from `send` to the first text, measured here. */
  ttftMs: number | null;
  /** Tokens so far: text chunks received, replaced by the server's count when usage or done arrives. */
  tokens: number;
  /** Tokens per second after the first one (decode speed). */
  tokensPerSecond: number | null;
  /** Milliseconds since `send`. */
  elapsedMs: number;
  /** Whether `tokens` is the server's count rather than the number of chunks. */
  exact: boolean;
}

export interface ChatState {
  status: ChatStatus;
  isStreaming: boolean;
  content: string;
  error: ChatError | null;
  usage: UsageEvent | null;
  progress: ChatProgress;
  streamId: string | null;
  provider: string | null;
  model: string | null;
  finishReason: string | null;
  cancelReason: CancelReason | null;
  transport: Transport;
}

export interface ChatOptions {
  transport?: Transport;
  /** HTTP base URL: the Function URL, or the local app (default: this page's origin). */
  baseUrl?: string;
  /** WebSocket API URL (`wss://.../stage`), for the `websocket` transport. */
  wsUrl?: string;
  headers?: Record<string, string>;
  /**
   * API key (`trk_...`): `Authorization: Bearer` over HTTP, the subprotocol on the WebSocket,
   * `?access_token=` with EventSource (which cannot send headers; docs/security.md).
   */
  token?: string;
  /** WebSocket `client_id` (the owner of its streams). */
  clientId?: string;
  /** How long `cancel()` waits for the server's `cancelled` before ending the stream here. */
  cancelTimeoutMs?: number;
  /** Share one socket between controllers (not closed by `detach`). */
  socket?: TokenRelaySocket;
  fetch?: FetchLike;
  EventSource?: EventSourceFactory;
  WebSocket?: WebSocketFactory;
  requestFrame?: (callback: () => void) => unknown;
  cancelFrame?: (handle: unknown) => void;
  now?: () => number;
}

const EMPTY_PROGRESS: ChatProgress = { ttftMs: null, tokens: 0, tokensPerSecond: null, elapsedMs: 0, exact: false };

export function initialState(transport: Transport = "sse"): ChatState {
  return {
    status: "idle",
    isStreaming: false,
    content: "",
    error: null,
    usage: null,
    progress: EMPTY_PROGRESS,
    streamId: null,
    provider: null,
    model: null,
    finishReason: null,
    cancelReason: null,
    transport,
  };
}

function defaultBaseUrl(): string {
  return typeof location === "undefined" ? "http://127.0.0.1:8000" : location.origin;
}

interface Run {
  id: number;
  abort: AbortController;
  startedAt: number;
  firstTextAt: number | null;
  lastTextAt: number | null;
  chunks: number;
  exactTokens: number | null;
  pending: string;
  cancelRequested: boolean;
  cancelTimer: ReturnType<typeof setTimeout> | null;
  socketCancel: (() => void) | null;
}

export class ChatController {
  private options: ChatOptions;
  private state: ChatState;
  private readonly listeners = new Set<() => void>();
  private run: Run | null = null;
  private runs = 0;
  private frame: unknown = null;
  private attached = true;
  private ownSocket: TokenRelaySocket | null = null;

  constructor(options: ChatOptions = {}) {
    this.options = options;
    this.state = initialState(options.transport ?? "sse");
  }

  /** New options apply from the next `send`. */
  configure(options: ChatOptions): void {
    const old = this.options;
    this.options = options;
    const changed = old.wsUrl !== options.wsUrl || old.clientId !== options.clientId || old.token !== options.token;
    if (this.ownSocket !== null && changed) {
      this.ownSocket.close();
      this.ownSocket = null;
    }
  }

  // -- store interface (useSyncExternalStore) ---------------------------------------

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getSnapshot = (): ChatState => this.state;

  // -- actions ---------------------------------------------------------------------

  /** Start a turn (a running one is abandoned). Resolves with the terminal event; never rejects. */
  readonly send = (request: ChatRequest | string): Promise<TerminalEvent> => {
    const body: ChatRequest = typeof request === "string" ? { message: request } : request;
    this.abandon();
    const transport = this.options.transport ?? "sse";
    const run: Run = {
      id: ++this.runs,
      abort: new AbortController(),
      startedAt: this.now(),
      firstTextAt: null,
      lastTextAt: null,
      chunks: 0,
      exactTokens: null,
      pending: "",
      cancelRequested: false,
      cancelTimer: null,
      socketCancel: null,
    };
    this.run = run;
    this.publish({ ...initialState(transport), status: "streaming", isStreaming: true });
    const handlers = this.handlersFor(run);
    const baseUrl = this.options.baseUrl || defaultBaseUrl();
    const http = this.httpOptions();
    let result: Promise<TerminalEvent>;
    if (transport === "websocket") {
      const socket = this.socket();
      if (socket === null) {
        result = Promise.resolve(clientError("invalid_config", "no WebSocket URL configured", false));
      } else {
        const handle = socket.send(body, handlers, { signal: run.abort.signal });
        run.socketCancel = () => handle.cancel();
        result = handle.result;
      }
    } else if (transport === "eventsource") {
      const es = this.options.EventSource ? { EventSource: this.options.EventSource } : {};
      const key = this.options.token !== undefined ? { token: this.options.token } : {}; // ?access_token= (GET only)
      result = streamChatEventSource(baseUrl, body, handlers, { signal: run.abort.signal, ...http, ...es, ...key });
    } else {
      result = streamChat(baseUrl, body, handlers, { signal: run.abort.signal, ...http });
    }
    return result.then((event) => {
      this.end(run, event); // the handlers have done it, unless the transport ended before any
      return event;
    });
  };

  /**
   * Ask the server to stop this stream (the cancel endpoint, or the socket's
   * `cancel`) and wait for its `cancelled`; after `cancelTimeoutMs` (3 s)
   * without it, end the stream here.
   */
  readonly cancel = (): void => {
    const run = this.run;
    if (run === null || run.cancelRequested) return;
    run.cancelRequested = true;
    run.cancelTimer = setTimeout(() => this.abortRun(run), this.options.cancelTimeoutMs ?? 3000);
    if (run.socketCancel !== null) run.socketCancel();
    else if (this.state.streamId !== null) this.cancelOnServer(run, this.state.streamId);
    // else: the stream id is not known yet; `start` sends the cancel
  };

  /** Back to idle; a running stream is abandoned (and cancelled on the server). */
  readonly reset = (): void => {
    this.abandon();
    this.publish(initialState(this.options.transport ?? "sse"));
  };

  /** Resume notifying (the hook calls it on mount). */
  attach(): void {
    this.attached = true;
  }

  /** Abort the running stream and stop all updates (the hook calls it on unmount). */
  detach(): void {
    this.attached = false;
    this.abandon();
    this.ownSocket?.close();
    this.ownSocket = null;
  }

  // -- internals -----------------------------------------------------------------------

  private now(): number {
    return (this.options.now ?? (() => performance.now()))();
  }

  private httpOptions(): { headers?: Record<string, string>; fetch?: FetchLike } {
    const auth = this.options.token !== undefined ? { Authorization: `Bearer ${this.options.token}` } : {};
    const headers = { ...auth, ...this.options.headers };
    return { ...(Object.keys(headers).length > 0 ? { headers } : {}), ...(this.options.fetch ? { fetch: this.options.fetch } : {}) };
  }

  private socket(): TokenRelaySocket | null {
    if (this.options.socket) return this.options.socket;
    if (!this.options.wsUrl) return null;
    if (this.ownSocket === null) {
      this.ownSocket = new TokenRelaySocket(this.options.wsUrl, {
        ...(this.options.clientId !== undefined ? { clientId: this.options.clientId } : {}),
        ...(this.options.token !== undefined ? { token: this.options.token } : {}),
        ...(this.options.WebSocket ? { WebSocket: this.options.WebSocket } : {}),
      });
    }
    return this.ownSocket;
  }

  private cancelOnServer(run: Run, streamId: string): void {
    const options = this.httpOptions();
    void cancelStream(this.options.baseUrl || defaultBaseUrl(), streamId, options).then((answer) => {
      if (!answer.ok && answer.code !== "stream_finished") this.abortRun(run); // the server cannot: stop here
    });
  }

  private abortRun(run: Run): void {
    if (this.run === run) run.abort.abort();
  }

  /** Drop the running stream: abort it (the transports also cancel it on the server) and forget it. */
  private abandon(): void {
    const run = this.run;
    if (run === null) return;
    this.run = null;
    if (run.cancelTimer !== null) clearTimeout(run.cancelTimer);
    this.cancelFrameIfAny();
    run.abort.abort();
  }

  private handlersFor(run: Run): StreamHandlers {
    return {
      onStart: (event: StartEvent) => {
        if (this.run !== run) return;
        this.publish({ ...this.state, streamId: event.stream_id, provider: event.provider, model: event.model });
        if (run.cancelRequested && run.socketCancel === null) this.cancelOnServer(run, event.stream_id);
      },
      onText: ({ text }) => {
        if (this.run !== run) return;
        const now = this.now();
        if (run.firstTextAt === null) run.firstTextAt = now;
        run.lastTextAt = now;
        run.chunks += 1;
        run.pending += text;
        this.scheduleFrame(run);
      },
      onUsage: (usage) => {
        if (this.run !== run) return;
        run.exactTokens = usage.completion_tokens;
        this.flush(run, { usage });
      },
      onDone: (event) => this.end(run, event),
      onCancelled: (event) => this.end(run, event),
      onError: (event) => this.end(run, event),
    };
  }

  private scheduleFrame(run: Run): void {
    if (this.frame !== null || !this.attached) return;
    const request = this.options.requestFrame ?? defaultRequestFrame;
    this.frame = request(() => {
      this.frame = null;
      if (this.run === run) this.flush(run, {});
    });
  }

  private cancelFrameIfAny(): void {
    if (this.frame === null) return;
    (this.options.cancelFrame ?? defaultCancelFrame)(this.frame);
    this.frame = null;
  }

  private progress(run: Run): ChatProgress {
    const now = this.now();
    const tokens = run.exactTokens ?? run.chunks;
    const window = run.firstTextAt !== null && run.lastTextAt !== null ? run.lastTextAt - run.firstTextAt : 0;
    return {
      ttftMs: run.firstTextAt === null ? null : Math.round(run.firstTextAt - run.startedAt),
      tokens,
      tokensPerSecond: window > 0 && tokens > 1 ? ((tokens - 1) * 1000) / window : null,
      elapsedMs: Math.round(now - run.startedAt),
      exact: run.exactTokens !== null,
    };
  }

  /** Publish pending text and progress, with `extra` fields. */
  private flush(run: Run, extra: Partial<ChatState>): void {
    const content = run.pending ? this.state.content + run.pending : this.state.content;
    run.pending = "";
    this.publish({ ...this.state, ...extra, content, progress: this.progress(run) });
  }

  private end(run: Run, event: TerminalEvent): void {
    if (this.run !== run) return;
    this.run = null;
    this.cancelFrameIfAny();
    if (run.cancelTimer !== null) clearTimeout(run.cancelTimer);
    if (event.type === "done") run.exactTokens = event.completion_tokens;
    const extra: Partial<ChatState> =
      event.type === "done"
        ? { status: "done", finishReason: event.finish_reason }
        : event.type === "cancelled"
          ? { status: "cancelled", cancelReason: event.reason }
          : { status: "error", error: event };
    this.flush(run, { ...extra, isStreaming: false, streamId: this.state.streamId ?? event.stream_id ?? null });
  }

  private publish(state: ChatState): void {
    if (!this.attached) return;
    this.state = state;
    for (const listener of [...this.listeners]) listener();
  }
}

/** An animation frame; a short timer where there is none, or while the page is hidden (no frames run then). */
const defaultRequestFrame = (callback: () => void): unknown => {
  const hidden = typeof document !== "undefined" && document.visibilityState === "hidden";
  if (typeof requestAnimationFrame === "function" && !hidden) return { frame: requestAnimationFrame(callback) };
  return { timer: setTimeout(callback, hidden ? 100 : 16) };
};

const defaultCancelFrame = (handle: unknown): void => {
  const h = handle as { frame?: number; timer?: ReturnType<typeof setTimeout> };
  if (h.frame !== undefined) cancelAnimationFrame(h.frame);
  if (h.timer !== undefined) clearTimeout(h.timer);
};
