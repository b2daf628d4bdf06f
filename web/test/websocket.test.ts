import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { backoffDelay, DEFAULT_BACKOFF, TokenRelaySocket, type SocketStatus, type WebSocketLike } from "../src/websocket.js";
import type { ChatError } from "../src/types.js";
import { recorder } from "./helpers.js";

/** A WebSocket double: the test plays API Gateway. */
class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: Array<Record<string, unknown>> = [];
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  closedWith: number | null = null;
  constructor(
    readonly url: string,
    readonly protocols?: string[],
  ) {
    FakeSocket.all.push(this);
  }
  send(data: string): void {
    assert.equal(this.readyState, 1, "send on a socket that is not open");
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(code = 1000): void {
    this.closedWith = code;
    this.readyState = 3;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  receive(message: Record<string, unknown>): void {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(message) }));
  }
  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code } as CloseEvent);
  }
}

function setup(options: ConstructorParameters<typeof TokenRelaySocket>[1] = {}) {
  FakeSocket.all = [];
  const timers: Array<{ fn: () => void; ms: number }> = [];
  const statuses: SocketStatus[] = [];
  const errors: ChatError[] = [];
  const socket = new TokenRelaySocket("wss://ws.example/prod", {
    WebSocket: FakeSocket,
    setTimeout: (fn, ms) => timers.push({ fn, ms }),
    clearTimeout: () => undefined,
    random: () => 0,
    onStatus: (s) => statuses.push(s),
    onError: (e) => errors.push(e),
    ...options,
  });
  const ws = (i = -1): FakeSocket => {
    const s = FakeSocket.all.at(i);
    assert.ok(s, "no socket");
    return s;
  };
  return { socket, timers, statuses, errors, ws };
}

const start = (requestId: string, streamId: string) => ({ type: "start", stream_id: streamId, request_id: requestId, provider: "echo", model: "echo-1" });
const text = (requestId: string, streamId: string, content: string, seq: number) => ({ type: "text", stream_id: streamId, request_id: requestId, content, seq });
const done = (requestId: string, streamId: string) => ({
  type: "done", stream_id: streamId, request_id: requestId, status: "complete", finish_reason: "stop", ttft_ms: 5, total_time_ms: 9, completion_tokens: 2,
});

describe("TokenRelaySocket", () => {
  test("queues until open, then sends chat with a request_id; client_id in the URL", async () => {
    const { socket, ws, statuses } = setup({ clientId: "me-1" });
    const handle = socket.send({ message: "hi", provider: "echo" });
    assert.equal(ws().url, "wss://ws.example/prod?client_id=me-1");
    assert.deepEqual(ws().sent, []);
    ws().open();
    assert.deepEqual(ws().sent, [{ message: "hi", provider: "echo", type: "chat", request_id: handle.requestId }]);
    assert.deepEqual(statuses, ["connecting", "open"]);
  });

  test("an API key is offered as the tokenrelay + bearer subprotocols, never in the URL", () => {
    const { socket, ws } = setup({ token: "trk_0123456789abcdef_secret" });
    socket.connect();
    assert.deepEqual(ws().protocols, ["tokenrelay", "bearer.trk_0123456789abcdef_secret"]);
    assert.equal(ws().url, "wss://ws.example/prod");
    const { socket: plain, ws: plainWs } = setup();
    plain.connect();
    assert.equal(plainWs().protocols, undefined);
  });

  test("routes interleaved streams to their own handlers by request_id, then stream_id", async () => {
    const { socket, ws } = setup();
    const a = recorder();
    const b = recorder();
    const ha = socket.send({ message: "a" }, a.handlers);
    const hb = socket.send({ message: "b" }, b.handlers);
    ws().open();
    ws().receive(start(ha.requestId, "sa"));
    ws().receive(start(hb.requestId, "sb"));
    ws().receive(text(hb.requestId, "sb", "B1", 1));
    ws().receive(text(ha.requestId, "sa", "A1", 1));
    ws().receive({ type: "text", stream_id: "sa", content: "A2", seq: 2 }); // no request_id: by stream_id
    ws().receive({ type: "usage", stream_id: "sa", request_id: ha.requestId, prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
    ws().receive(done(ha.requestId, "sa"));
    ws().receive(done(hb.requestId, "sb"));
    assert.equal((await ha.result).type, "done");
    assert.equal((await hb.result).type, "done");
    assert.equal(a.text(), "A1A2");
    assert.equal(b.text(), "B1");
    assert.deepEqual(a.kinds(), ["start", "text", "text", "usage", "done"]);
    assert.equal(ha.streamId, "sa");
    assert.equal(socket.activeStreams, 0);
  });

  test("a refused chat (error with request_id, no stream_id) ends that stream only", async () => {
    const { socket, ws, errors } = setup();
    const bad = socket.send({ message: "x", model: "nope" });
    const good = socket.send({ message: "y" });
    ws().open();
    ws().receive({ type: "error", request_id: bad.requestId, error: "model: not allowed", code: "invalid_request", retryable: false, field: "model" });
    assert.deepEqual(await bad.result, { type: "error", error: "model: not allowed", code: "invalid_request", retryable: false, field: "model", stream_id: null });
    assert.equal(socket.activeStreams, 1);
    assert.deepEqual(errors, []);
    ws().receive(start(good.requestId, "s2"));
    ws().receive(done(good.requestId, "s2"));
    assert.equal((await good.result).type, "done");
  });

  test("errors that belong to no stream, and API Gateway's own errors, go to onError", () => {
    const { socket, ws, errors } = setup();
    socket.connect();
    ws().open();
    ws().receive({ type: "error", error: "unknown message type", code: "unknown_type", retryable: false });
    ws().receive({ message: "Internal server error", connectionId: "c1", requestId: "r1" });
    assert.deepEqual(errors.map((e) => e.code), ["unknown_type", "gateway_error"]);
    assert.equal(errors[1]?.error, "Internal server error");
  });

  test("cancel after start sends cancel with the stream id; the server's cancelled ends it", async () => {
    const { socket, ws } = setup();
    const handle = socket.send({ message: "x" });
    ws().open();
    ws().receive(start(handle.requestId, "s1"));
    handle.cancel();
    const cancel = ws().sent[1];
    assert.equal(cancel?.type, "cancel");
    assert.equal(cancel?.stream_id, "s1");
    assert.match(String(cancel?.request_id), /^cancel:/);
    ws().receive({ type: "cancelled", stream_id: "s1", request_id: handle.requestId, reason: "client" });
    assert.deepEqual(await handle.result, { type: "cancelled", stream_id: "s1", reason: "client" });
  });

  test("cancel before start waits for the stream id, then sends it", async () => {
    const { socket, ws } = setup();
    const handle = socket.send({ message: "x" });
    ws().open();
    handle.cancel();
    assert.equal(ws().sent.length, 1);
    ws().receive(start(handle.requestId, "s1"));
    assert.equal(ws().sent[1]?.stream_id, "s1");
  });

  test("cancel before the chat left the outbox drops it: nothing is sent", async () => {
    const { socket, ws } = setup();
    const handle = socket.send({ message: "x" });
    handle.cancel();
    ws().open();
    assert.deepEqual(ws().sent, []);
    assert.equal((await handle.result).type, "cancelled");
  });

  test("a refused cancel (stream_finished) is reported, and does not end another stream", async () => {
    const { socket, ws, errors } = setup();
    const handle = socket.send({ message: "x" });
    ws().open();
    ws().receive(start(handle.requestId, "s1"));
    handle.cancel();
    const cancelId = ws().sent[1]?.request_id;
    ws().receive({ type: "error", request_id: cancelId, stream_id: "s1", error: "already complete", code: "stream_finished", retryable: false, status: "complete" });
    assert.deepEqual(errors.map((e) => e.code), ["stream_finished"]);
    assert.equal(socket.activeStreams, 1);
  });

  test("socket.cancel() without an id cancels every stream of the connection", () => {
    const { socket, ws } = setup();
    socket.connect();
    ws().open();
    socket.cancel();
    assert.equal(ws().sent[0]?.type, "cancel");
    assert.equal("stream_id" in (ws().sent[0] ?? {}), false);
  });

  test("abort: resolves cancelled at once and still asks the server", async () => {
    const { socket, ws } = setup();
    const abort = new AbortController();
    const handle = socket.send({ message: "x" }, {}, { signal: abort.signal });
    ws().open();
    ws().receive(start(handle.requestId, "s1"));
    abort.abort();
    assert.deepEqual(await handle.result, { type: "cancelled", stream_id: "s1", reason: "client" });
    assert.equal(ws().sent[1]?.stream_id, "s1");
  });

  test("abort before start: resolves at once; the cancel goes out when start arrives", async () => {
    const { socket, ws } = setup();
    const abort = new AbortController();
    const r = recorder();
    const handle = socket.send({ message: "x" }, r.handlers, { signal: abort.signal });
    ws().open();
    abort.abort();
    assert.equal((await handle.result).type, "cancelled");
    ws().receive(start(handle.requestId, "s1"));
    ws().receive(text(handle.requestId, "s1", "late", 1));
    assert.equal(ws().sent[1]?.stream_id, "s1");
    assert.deepEqual(r.kinds(), ["cancelled"], "no handler runs after the local end");
  });

  test("a dropped connection ends running streams (connection_lost) and reconnects with backoff", async () => {
    const { socket, ws, timers, statuses } = setup({ backoff: { initialMs: 100, factor: 2, maxMs: 1000, jitter: 0 } });
    const handle = socket.send({ message: "x" });
    ws().open();
    ws().receive(start(handle.requestId, "s1"));
    ws().drop();
    const result = await handle.result;
    assert.equal(result.type === "error" && result.code, "connection_lost");
    assert.equal(result.type === "error" && result.retryable, true);
    assert.deepEqual(timers.map((t) => t.ms), [100]);
    timers.shift()?.fn();
    ws().drop(); // the reconnect fails too: the next delay doubles
    assert.deepEqual(timers.map((t) => t.ms), [200]);
    timers.shift()?.fn();
    const queued = socket.send({ message: "after" }); // waits in the outbox for the new connection
    ws().open();
    assert.deepEqual(ws().sent, [{ message: "after", type: "chat", request_id: queued.requestId }]);
    assert.deepEqual(statuses, ["connecting", "open", "reconnecting", "reconnecting", "reconnecting", "reconnecting", "open"]);
    ws().drop(); // after a successful open the backoff starts over
    assert.deepEqual(timers.map((t) => t.ms), [100]);
  });

  test("maxReconnectAttempts: gives up, fails what waits, status closed", async () => {
    const { socket, ws, timers, statuses } = setup({ maxReconnectAttempts: 1 });
    socket.connect();
    ws().drop();
    timers.shift()?.fn();
    const waiting = socket.send({ message: "x" });
    ws().drop();
    assert.equal(timers.length, 0);
    assert.equal(statuses.at(-1), "closed");
    const result = await waiting.result;
    assert.equal(result.type === "error" && result.code, "network_error");
  });

  test("close(): no reconnect; running streams end cancelled", async () => {
    const { socket, ws, timers } = setup();
    const handle = socket.send({ message: "x" });
    ws().open();
    socket.close();
    assert.equal(ws().closedWith, 1000);
    assert.equal((await handle.result).type, "cancelled");
    assert.equal(timers.length, 0);
    assert.equal(socket.status, "closed");
  });

  test("backoff grows by the factor up to the maximum, less the jitter", () => {
    const b = { ...DEFAULT_BACKOFF, jitter: 0.5 };
    assert.deepEqual([0, 1, 2, 10].map((n) => backoffDelay(n, b, () => 0)), [500, 1000, 2000, 15000]);
    assert.equal(backoffDelay(0, b, () => 1), 250);
  });
});
