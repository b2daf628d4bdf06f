/**
 * WebSocket client for TokenRelay's API Gateway WebSocket API (docs/protocol.md section 3).
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
 * - After an unexpected close it reconnects with exponential backoff and jitter,
 *   within a budget (`reconnect.ts`): 3 tries for a socket that never opened, 6 after a
 *   lost connection; then it gives up, and what waits ends with `connect_failed` or
 *   `connection_lost`. `onStatus` reports each step ("reconnecting, attempt 2 of 6").
 * - A browser cannot see why a handshake failed: a refused key (401) and a wrong URL both
 *   look like a close before open. `checkRefusal` (the `ChatController` asks the HTTP API
 *   with the same key) turns a refused key into `unauthorized` at once, with no retries.
 * - With a `clientId` or a `token` (the owner), streams that were running on the lost
 *   connection are resumed on the new one from the last `seq` seen (section 5): no part
 *   is lost or repeated. A resumed stream that hears nothing for `resumeTimeoutMs` ends
 *   with `resume_timeout` (its producer is gone). Without an owner (or with
 *   `resume: false`) they end with `connection_lost` (retryable).
 * - `handle.cancel()` asks the server and resolves when it answers `cancelled`;
 *   an aborted `signal` also asks the server, but ends the stream here at once.
 */

import { DEFAULT_BACKOFF, DEFAULT_MAX_CONNECT_ATTEMPTS, DEFAULT_MAX_RECONNECT_ATTEMPTS, Reconnects, type Backoff } from "./reconnect.js";
import type { ChatError, ChatRequest, StreamHandlers } from "./types.js";
import { clientError } from "./types.js";
import { SocketStreams, type ChatHandle, type Entry, type SendOptions } from "./ws-streams.js";

export type { ChatHandle, SendOptions } from "./ws-streams.js";

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

/** What `onStatus` reports with each status. */
export interface StatusDetail {
  /** The try under way (1 = the first); 0 once open. */
  attempt: number;
  /** Tries allowed before giving up: `maxConnectAttempts` or `maxReconnectAttempts`. */
  maxAttempts: number;
  /** The wait before this try. */
  delayMs?: number;
  /** The close code of the connection that just closed (1006: it failed, or never opened). */
  code?: number;
  /** Why it gave up (status `closed`). */
  error?: ChatError;
}

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
   * After a reconnect, resume the streams that were running (section 5:
   * `{"type":"resume","stream_id","after_seq"}`), so they go on with no part lost or
   * repeated. Needs `clientId` or `token` (only the owner may resume); default true.
   */
  resume?: boolean;
  backoff?: Partial<Backoff>;
  /** Tries to open a socket that has never opened, the first included (default 3). */
  maxConnectAttempts?: number;
  /** Reconnect tries in a row after an open connection was lost (default 6). */
  maxReconnectAttempts?: number;
  /** A resumed stream that hears nothing for this long ends with `resume_timeout` (default 15,000 ms). */
  resumeTimeoutMs?: number;
  /**
   * Asked after each failed handshake (a close before open), before the next try: an error
   * it resolves to (a refused API key) ends every stream with it, with no more tries.
   */
  checkRefusal?: () => Promise<ChatError | null>;
  onStatus?: (status: SocketStatus, detail: StatusDetail) => void;
  /** Errors that belong to no stream. */
  onError?: (error: ChatError) => void;
  WebSocket?: WebSocketFactory;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  random?: () => number;
}

const OPEN = 1;

export class TokenRelaySocket {
  private ws: WebSocketLike | null = null;
  private connected = false;
  private statusValue: SocketStatus = "idle";
  private outbox: string[] = [];
  private timer: unknown = null;
  /** A try is due: waiting for its timer, or for `checkRefusal`. */
  private retryPending = false;
  private closedByUser = false;
  /** Bumped on close and on giving up: a refusal check that answers later is ignored. */
  private generation = 0;
  private readonly tries: Reconnects;
  private readonly streams: SocketStreams;
  private readonly url: string;

  constructor(url: string, private readonly options: SocketOptions = {}) {
    const parsed = new URL(url);
    if (options.clientId !== undefined) parsed.searchParams.set("client_id", options.clientId);
    this.url = parsed.toString();
    this.tries = new Reconnects(
      options.maxConnectAttempts ?? DEFAULT_MAX_CONNECT_ATTEMPTS,
      options.maxReconnectAttempts ?? DEFAULT_MAX_RECONNECT_ATTEMPTS,
      { ...DEFAULT_BACKOFF, ...options.backoff },
      options.random ?? Math.random,
    );
    this.streams = new SocketStreams(
      {
        transmit: (data, entry) => this.transmit(data, entry),
        unqueue: (data) => void (this.outbox = this.outbox.filter((queued) => queued !== data)),
        onError: (error) => this.options.onError?.(error),
        setTimer: (callback, ms) => (this.options.setTimeout ?? setTimeout)(callback, ms),
        clearTimer: (handle) => this.cancelTimer(handle),
      },
      options.resumeTimeoutMs ?? 15_000,
    );
  }

  get status(): SocketStatus {
    return this.statusValue;
  }

  /** Streams started on this socket that have not ended. */
  get activeStreams(): number {
    return this.streams.size;
  }

  /** Open the connection (done by `send` too). Idempotent. */
  connect(): void {
    this.closedByUser = false;
    if (this.ws !== null || this.retryPending) return;
    this.open();
  }

  /** Start a stream. */
  send(request: ChatRequest, handlers: StreamHandlers = {}, options: SendOptions = {}): ChatHandle {
    return this.streams.send(request, handlers, options);
  }

  /** Cancel one stream by id, or every active stream of this connection. */
  cancel(streamId?: string): void {
    this.streams.cancel(streamId);
  }

  /** Close for good: no reconnect; streams still running end as cancelled (the server cancels them too). */
  close(): void {
    this.closedByUser = true;
    this.generation += 1;
    this.clearRetry();
    const ws = this.ws;
    this.ws = null;
    this.connected = false;
    if (ws !== null) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      ws.close(1000, "client closed");
    }
    this.streams.failAll(() => ({ type: "cancelled", stream_id: null, reason: "client" }));
    this.outbox = [];
    this.tries.reset();
    this.setStatus("closed", { attempt: 0, maxAttempts: this.tries.current().maxAttempts });
  }

  // -- connection ----------------------------------------------------------------

  private open(): void {
    const Socket = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (Socket === undefined) throw new Error("WebSocket is not available here");
    if (this.statusValue !== "connecting" && this.statusValue !== "reconnecting") {
      const { phase, ...detail } = this.tries.current();
      this.setStatus(phase, detail);
    }
    let ws: WebSocketLike;
    try {
      ws = this.options.token !== undefined ? new Socket(this.url, keyProtocols(this.options.token)) : new Socket(this.url);
    } catch (exc) {
      // a malformed URL or a forbidden port: no retry can help
      this.giveUp(clientError("connect_failed", `cannot open ${this.where()}: ${String(exc)}`, false));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.connected = true;
      this.tries.opened();
      this.setStatus("open", { attempt: 0, maxAttempts: this.tries.current().maxAttempts });
      const outbox = this.outbox;
      this.outbox = [];
      for (const data of outbox) ws.send(data);
      this.streams.opened();
    };
    ws.onmessage = (event: MessageEvent) => this.streams.receive(event.data);
    ws.onerror = () => undefined; // a close event follows
    ws.onclose = (event: CloseEvent) => this.onClose(ws, event.code);
  }

  /** The URL for a message: no query string (it may hold `client_id` or `access_token`). */
  private where(): string {
    const url = new URL(this.url);
    return `${url.protocol}//${url.host}${url.pathname}`;
  }

  private onClose(ws: WebSocketLike, code: number): void {
    if (this.ws !== ws) return;
    this.ws = null;
    const wasOpen = this.connected;
    this.connected = false;
    // Streams that reached the server are resumed on the next connection when they can be
    // (they keep generating on the server for its grace period); otherwise they died with it.
    // The owner of the streams survives the reconnect: the client id, or the API key.
    const resume = this.options.resume !== false && (this.options.clientId !== undefined || this.options.token !== undefined);
    this.outbox.unshift(...this.streams.lost(resume));
    if (this.options.reconnect === false) {
      this.giveUp(wasOpen || this.tries.everOpened ? this.lostError(0) : this.connectError(1), code);
      return;
    }
    const retry = this.tries.closed(wasOpen);
    if (retry === null) {
      const { phase, maxAttempts } = this.tries.current();
      this.giveUp(phase === "connecting" ? this.connectError(maxAttempts) : this.lostError(maxAttempts), code);
      return;
    }
    const { phase, ...detail } = retry;
    this.setStatus(phase, { ...detail, code });
    this.retryPending = true;
    const generation = this.generation;
    const schedule = (): void => {
      if (generation !== this.generation) return;
      this.timer = (this.options.setTimeout ?? setTimeout)(() => {
        this.timer = null;
        this.retryPending = false;
        if (!this.closedByUser) this.open();
      }, retry.delayMs);
    };
    if (wasOpen || this.options.checkRefusal === undefined) {
      schedule();
      return;
    }
    // The handshake failed, and a browser cannot tell a refused key from an unreachable server.
    this.options
      .checkRefusal()
      .catch(() => null)
      .then((refusal) => {
        if (generation !== this.generation) return;
        if (refusal !== null) this.giveUp(refusal, code);
        else schedule();
      });
  }

  private connectError(attempts: number): ChatError {
    const tries = attempts === 1 ? "" : ` (${attempts} attempts)`;
    return clientError("connect_failed", `could not open a WebSocket to ${this.where()}${tries}`, true);
  }

  private lostError(attempts: number): ChatError {
    const tries = attempts === 0 ? "" : `; ${attempts} reconnect attempts failed`;
    return clientError("connection_lost", `the WebSocket connection was lost${tries}`, true);
  }

  /** No more tries: everything waiting ends with `error`; a later `send` starts afresh. */
  private giveUp(error: ChatError, code?: number): void {
    this.generation += 1;
    this.clearRetry();
    const { maxAttempts, attempt } = this.tries.current();
    this.tries.reset();
    const waiting = this.streams.size;
    this.streams.failAll(() => ({ ...error }));
    this.outbox = [];
    if (waiting === 0) this.options.onError?.(error);
    this.setStatus("closed", { attempt: Math.min(attempt, maxAttempts), maxAttempts, error, ...(code !== undefined ? { code } : {}) });
  }

  private clearRetry(): void {
    this.retryPending = false;
    if (this.timer === null) return;
    this.cancelTimer(this.timer);
    this.timer = null;
  }

  private cancelTimer(handle: unknown): void {
    if (this.options.clearTimeout !== undefined) this.options.clearTimeout(handle);
    else clearTimeout(handle as ReturnType<typeof setTimeout>);
  }

  private setStatus(status: SocketStatus, detail: StatusDetail): void {
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
}
