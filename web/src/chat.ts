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
 * `connection` says where the running stream's connection stands, so a UI can show
 * "reconnecting, attempt 2 of 6" instead of a cursor that blinks forever: the
 * WebSocket's reconnects, and the SSE transports' resumes after a drop.
 *
 * `tokens` counts what each text event carries (`TextEvent.tokens`: one per SSE
 * message, the `tokens` of a WebSocket message that merges several), so tokens per
 * second reads the same over every transport.
 *
 * `detach()` (the hook calls it on unmount) aborts the running stream,
 * cancels the pending frame and stops notifying: nothing updates afterwards.
 */

import { streamChatEventSource, type EventSourceFactory } from "./eventsource.js";
import { cancelStream, checkKey, streamChat, type FetchLike } from "./http.js";
import { initialState, ProgressMeter, type ChatState, type Transport } from "./chat-state.js";
import { PartsBuilder, type PartEvent, type ToolCall } from "./parts.js";
import { type ChatRequest, type ConnectionState, type StartEvent, type StreamHandlers, type TerminalEvent, clientError } from "./types.js";
import { TokenRelaySocket, type SocketOptions, type SocketStatus, type StatusDetail, type WebSocketFactory } from "./websocket.js";

export { initialState } from "./chat-state.js";
export type { ChatProgress, ChatState, ChatStatus, Transport } from "./chat-state.js";

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
  /** A tool call the model made, once its arguments are complete (section 11): run the tool here. */
  onToolCall?: (call: ToolCall) => void;
  /** How long `cancel()` waits for the server's `cancelled` before ending the stream here. */
  cancelTimeoutMs?: number;
  /** Share one socket between controllers (not closed by `detach`). */
  socket?: TokenRelaySocket;
  /** Reconnect budgets and timeouts of the socket this controller makes (read when it makes it). */
  socketOptions?: Pick<SocketOptions, "backoff" | "maxConnectAttempts" | "maxReconnectAttempts" | "resumeTimeoutMs" | "resume" | "reconnect">;
  fetch?: FetchLike;
  EventSource?: EventSourceFactory;
  WebSocket?: WebSocketFactory;
  requestFrame?: (callback: () => void) => unknown;
  cancelFrame?: (handle: unknown) => void;
  now?: () => number;
}

function defaultBaseUrl(): string {
  return typeof location === "undefined" ? "http://127.0.0.1:8000" : location.origin;
}

interface Run {
  id: number;
  abort: AbortController;
  meter: ProgressMeter;
  pending: string;
  parts: PartsBuilder;
  partsChanged: boolean;
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
      meter: new ProgressMeter(this.now()),
      pending: "",
      parts: new PartsBuilder(),
      partsChanged: false,
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
      const onConnection = (state: ConnectionState): void => this.onConnection(run, state);
      result = streamChatEventSource(baseUrl, body, handlers, { signal: run.abort.signal, onConnection, ...http, ...es, ...key });
    } else {
      const onConnection = (state: ConnectionState): void => this.onConnection(run, state);
      result = streamChat(baseUrl, body, handlers, { signal: run.abort.signal, onConnection, ...http });
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
        ...this.options.socketOptions,
        ...(this.options.clientId !== undefined ? { clientId: this.options.clientId } : {}),
        ...(this.options.token !== undefined ? { token: this.options.token } : {}),
        ...(this.options.WebSocket ? { WebSocket: this.options.WebSocket } : {}),
        // a browser cannot see why a handshake failed: ask the HTTP API whether it takes the key
        checkRefusal: () => checkKey(this.options.baseUrl || defaultBaseUrl(), this.httpOptions()),
        onStatus: (status, detail) => this.onSocketStatus(status, detail),
      });
    }
    return this.ownSocket;
  }

  private onSocketStatus(status: SocketStatus, detail: StatusDetail): void {
    if (this.run === null || status === "idle") return;
    const { attempt, maxAttempts } = detail;
    this.onConnection(this.run, { status, attempt, maxAttempts, ...(detail.delayMs !== undefined ? { delayMs: detail.delayMs } : {}) });
  }

  /** The running stream's connection changed: shown while it is not simply open. */
  private onConnection(run: Run, state: ConnectionState): void {
    if (this.run !== run) return;
    const connection = state.status === "open" ? null : state;
    if (connection === null && this.state.connection === null) return;
    this.flush(run, { connection });
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
      onText: ({ text, tokens }) => {
        if (this.run !== run) return;
        run.meter.text(tokens, this.now());
        run.pending += text;
        run.parts.text(text);
        run.partsChanged = true;
        if (this.state.connection !== null) this.flush(run, { connection: null }); // text flows again
        else this.scheduleFrame(run);
      },
      onReasoning: (event) => this.part(run, event),
      onToolCallStart: (event) => this.part(run, event),
      onToolCallDelta: (event) => this.part(run, event),
      onToolCallEnd: (event) => this.part(run, event),
      onUsage: (usage) => {
        if (this.run !== run) return;
        run.meter.exact(usage.completion_tokens);
        this.flush(run, { usage });
      },
      onDone: (event) => this.end(run, event),
      onCancelled: (event) => this.end(run, event),
      onError: (event) => this.end(run, event),
    };
  }

  /** A reasoning or tool call part: folded into the parts, published with the next frame. */
  private part(run: Run, event: PartEvent): void {
    if (this.run !== run) return;
    if (event.kind === "reasoning" || event.kind === "tool_call_delta") run.meter.text(event.tokens, this.now());
    const completed = run.parts.add(event);
    run.partsChanged = true;
    if (completed !== null) {
      this.flush(run, {}); // the UI shows the whole call before the tool runs
      this.options.onToolCall?.(completed);
      return;
    }
    if (this.state.connection !== null) this.flush(run, { connection: null });
    else this.scheduleFrame(run);
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

  /** Publish pending text and progress, with `extra` fields. */
  private flush(run: Run, extra: Partial<ChatState>): void {
    const content = run.pending ? this.state.content + run.pending : this.state.content;
    run.pending = "";
    const parts = run.partsChanged ? run.parts.snapshot() : {};
    run.partsChanged = false;
    this.publish({ ...this.state, ...extra, ...parts, content, progress: run.meter.read(this.now()) });
  }

  private end(run: Run, event: TerminalEvent): void {
    if (this.run !== run) return;
    this.run = null;
    this.cancelFrameIfAny();
    if (run.cancelTimer !== null) clearTimeout(run.cancelTimer);
    if (event.type === "done") run.meter.exact(event.completion_tokens);
    const extra: Partial<ChatState> =
      event.type === "done"
        ? { status: "done", finishReason: event.finish_reason }
        : event.type === "cancelled"
          ? { status: "cancelled", cancelReason: event.reason }
          : { status: "error", error: event };
    this.flush(run, { ...extra, isStreaming: false, connection: null, streamId: this.state.streamId ?? event.stream_id ?? null });
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
