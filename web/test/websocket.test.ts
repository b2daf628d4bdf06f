import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { backoffDelay, DEFAULT_BACKOFF } from "../src/reconnect.js";
import { TokenRelaySocket, type SocketStatus, type StatusDetail, type WebSocketLike } from "../src/websocket.js";
import type { ChatError } from "../src/types.js";
import { recorder, tick } from "./helpers.js";

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
  const timers: Array<{ fn: () => void; ms: number; cleared: boolean }> = [];
  const statuses: SocketStatus[] = [];
  const details: Array<[SocketStatus, StatusDetail]> = [];
  const errors: ChatError[] = [];
  const socket = new TokenRelaySocket("wss://ws.example/prod", {
    WebSocket: FakeSocket,
    setTimeout: (fn, ms) => {
      const timer = { fn, ms, cleared: false };
      timers.push(timer);
      return timer;
    },
    clearTimeout: (timer) => void ((timer as { cleared: boolean }).cleared = true),
    random: () => 0,
    onStatus: (s, d) => {
      statuses.push(s);
      details.push([s, d]);
    },
    onError: (e) => errors.push(e),
    ...options,
  });
  const ws = (i = -1): FakeSocket => {
    const s = FakeSocket.all.at(i);
    assert.ok(s, "no socket");
    return s;
  };
  /** Fire the next timer that is still set. */
  const fire = (): void => {
    const index = timers.findIndex((t) => !t.cleared);
    assert.ok(index >= 0, "no timer set");
    const [timer] = timers.splice(index, 1);
    timer?.fn();
  };
  const pending = (): number[] => timers.filter((t) => !t.cleared).map((t) => t.ms);
  return { socket, timers, statuses, details, errors, ws, fire, pending };
}

/** What `onStatus` said, as a UI would show it. */
const said = (details: Array<[SocketStatus, StatusDetail]>): string[] =>
  details.map(([s, d]) => (s === "connecting" || s === "reconnecting" ? `${s} ${d.attempt}/${d.maxAttempts}` : s));

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
    const { socket, ws, statuses, fire, pending } = setup({ backoff: { initialMs: 100, factor: 2, maxMs: 1000, jitter: 0 } });
    const handle = socket.send({ message: "x" });
    ws().open();
    ws().receive(start(handle.requestId, "s1"));
    ws().drop();
    const result = await handle.result;
    assert.equal(result.type === "error" && result.code, "connection_lost");
    assert.equal(result.type === "error" && result.retryable, true);
    assert.deepEqual(pending(), [100]);
    fire();
    ws().drop(); // the reconnect fails too: the next delay doubles
    assert.deepEqual(pending(), [200]);
    fire();
    const queued = socket.send({ message: "after" }); // waits in the outbox for the new connection
    ws().open();
    assert.deepEqual(ws().sent, [{ message: "after", type: "chat", request_id: queued.requestId }]);
    assert.deepEqual(statuses, ["connecting", "open", "reconnecting", "reconnecting", "open"]);
    ws().drop(); // after a successful open the backoff starts over
    assert.deepEqual(pending(), [100]);
  });

  test("a socket that never opens tries 3 times, then ends what waits with connect_failed", async () => {
    const { socket, ws, details, fire, pending } = setup({ clientId: "me" });
    const handle = socket.send({ message: "x" });
    ws().drop(); // a wrong URL: the handshake fails at once, every time
    assert.deepEqual(pending(), [500]);
    fire();
    ws().drop();
    assert.deepEqual(pending(), [1000]);
    fire();
    ws().drop();
    assert.deepEqual(pending(), [], "no fourth try");
    const result = await handle.result;
    assert.equal(result.type === "error" && result.code, "connect_failed");
    assert.equal(result.type === "error" && result.error, "could not open a WebSocket to wss://ws.example/prod (3 attempts)");
    assert.deepEqual(said(details), ["connecting 1/3", "connecting 2/3", "connecting 3/3", "closed"]);
    assert.equal(details.at(-1)?.[1].error?.code, "connect_failed");
    assert.equal(socket.status, "closed");
    // a later send starts afresh
    socket.send({ message: "again" });
    assert.equal(FakeSocket.all.length, 4);
    assert.deepEqual(said(details).at(-1), "connecting 1/3");
  });

  test("a lost connection is retried maxReconnectAttempts times (6), reported as attempt n of 6", async () => {
    const { socket, ws, details, fire, pending, errors } = setup();
    socket.connect();
    ws().open();
    ws().drop();
    for (let attempt = 1; attempt <= 6; attempt++) {
      assert.equal(pending().length, 1, `attempt ${attempt} is scheduled`);
      fire();
      ws().drop();
    }
    assert.deepEqual(pending(), []);
    assert.deepEqual(said(details), ["connecting 1/3", "open", ...[1, 2, 3, 4, 5, 6].map((n) => `reconnecting ${n}/6`), "closed"]);
    assert.deepEqual(errors.map((e) => [e.code, e.error]), [["connection_lost", "the WebSocket connection was lost; 6 reconnect attempts failed"]]);
    // the default backoff: 0.5 s doubling to 8 s, at most 23.5 s in all before the last try
    assert.deepEqual(
      details.filter(([s]) => s === "reconnecting").map(([, d]) => d.delayMs),
      [500, 1000, 2000, 4000, 8000, 8000],
    );
  });

  test("maxReconnectAttempts: gives up, fails what waits, status closed", async () => {
    const { socket, ws, statuses, fire, pending } = setup({ maxReconnectAttempts: 1 });
    socket.connect();
    ws().open();
    ws().drop();
    fire();
    const waiting = socket.send({ message: "x" });
    ws().drop();
    assert.deepEqual(pending(), []);
    assert.equal(statuses.at(-1), "closed");
    const result = await waiting.result;
    assert.equal(result.type === "error" && result.code, "connection_lost");
  });

  test("checkRefusal: a refused key after a failed handshake ends everything at once, no retry", async () => {
    const unauthorized: ChatError = { type: "error", error: "invalid API key", code: "unauthorized", retryable: false, status: 401 };
    let asked = 0;
    const { socket, ws, details, pending } = setup({
      token: "trk_0123456789abcdef_wrong",
      checkRefusal: async () => {
        asked += 1;
        return unauthorized;
      },
    });
    const handle = socket.send({ message: "x" });
    ws().drop();
    assert.deepEqual(await handle.result, unauthorized);
    assert.equal(asked, 1);
    assert.deepEqual(pending(), []);
    assert.equal(FakeSocket.all.length, 1, "no second handshake");
    assert.deepEqual(said(details), ["connecting 1/3", "connecting 2/3", "closed"]);
  });

  test("checkRefusal: no refusal (the key is fine): the tries go on; not asked after a drop", async () => {
    let asked = 0;
    const { socket, ws, fire, pending } = setup({
      checkRefusal: async () => {
        asked += 1;
        return null;
      },
    });
    socket.connect();
    ws().drop();
    await tick();
    assert.deepEqual(pending(), [500]);
    fire();
    ws().open();
    ws().drop(); // a drop after open is not a refused handshake
    await tick();
    assert.equal(asked, 1);
    assert.deepEqual(pending(), [500]);
  });

  test("checkRefusal: an answer that comes after close() changes nothing", async () => {
    let answer!: (error: ChatError | null) => void;
    const { socket, ws, pending, statuses } = setup({ checkRefusal: () => new Promise((r) => (answer = r)) });
    socket.connect();
    ws().drop();
    socket.close();
    answer({ type: "error", error: "no", code: "unauthorized", retryable: false });
    await tick();
    assert.deepEqual(pending(), []);
    assert.equal(statuses.at(-1), "closed");
    assert.equal(FakeSocket.all.length, 1);
  });

  test("a send while the refusal check runs waits for it (no handshake behind its back)", async () => {
    let answer!: (error: ChatError | null) => void;
    const { socket, ws, fire } = setup({ checkRefusal: () => new Promise((r) => (answer = r)) });
    socket.connect();
    ws().drop();
    const handle = socket.send({ message: "x" });
    assert.equal(FakeSocket.all.length, 1);
    answer(null);
    await tick();
    fire();
    ws().open();
    assert.deepEqual(ws().sent, [{ message: "x", type: "chat", request_id: handle.requestId }]);
  });

  test("text messages hand on how many tokens they carry (1 when the server does not say)", async () => {
    const { socket, ws } = setup();
    const r = recorder();
    const handle = socket.send({ message: "x" }, r.handlers);
    ws().open();
    ws().receive(start(handle.requestId, "s1"));
    ws().receive({ ...text(handle.requestId, "s1", "a b c ", 1), tokens: 3 });
    ws().receive(text(handle.requestId, "s1", "d ", 2));
    ws().receive({ ...text(handle.requestId, "s1", "e ", 3), tokens: "many" });
    const texts = r.log.filter(([k]) => k === "text").map(([, e]) => e);
    assert.deepEqual(texts, [
      { text: "a b c ", seq: 1, tokens: 3 },
      { text: "d ", seq: 2, tokens: 1 },
      { text: "e ", seq: 3, tokens: 1 },
    ]);
  });

  test("a resumed stream that hears nothing within resumeTimeoutMs ends with resume_timeout, and is cancelled", async () => {
    const { socket, ws, fire, timers } = setup({ clientId: "me", resumeTimeoutMs: 4000 });
    const handle = socket.send({ message: "x" });
    ws().open();
    ws().receive(start(handle.requestId, "s1"));
    ws().receive(text(handle.requestId, "s1", "a", 1));
    ws().drop();
    fire(); // reconnect
    ws().open();
    assert.deepEqual(ws().sent, [{ type: "resume", stream_id: "s1", after_seq: 1, request_id: handle.requestId }]);
    const watchdog = timers.find((t) => !t.cleared);
    assert.equal(watchdog?.ms, 4000);
    fire();
    const result = await handle.result;
    assert.equal(result.type === "error" && result.code, "resume_timeout");
    assert.equal(result.type === "error" && result.error, "the stream did not go on within 4 s of the reconnect");
    assert.equal(ws().sent[1]?.type, "cancel");
    assert.equal(ws().sent[1]?.stream_id, "s1");
  });

  test("a resumed stream that answers (even with an error) disarms its watchdog", async () => {
    const { socket, ws, fire, pending } = setup({ clientId: "me" });
    const handle = socket.send({ message: "x" });
    ws().open();
    ws().receive(start(handle.requestId, "s1"));
    ws().drop();
    fire();
    ws().open();
    assert.deepEqual(pending(), [15_000]);
    ws().receive({ type: "error", request_id: handle.requestId, error: "no stream with id 's1'", code: "stream_not_found", retryable: false });
    assert.deepEqual(pending(), []);
    const result = await handle.result;
    assert.equal(result.type === "error" && result.code, "stream_not_found");
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
    assert.deepEqual([0, 1, 2, 10].map((n) => backoffDelay(n, b, () => 0)), [500, 1000, 2000, 8000]);
    assert.equal(backoffDelay(0, b, () => 1), 250);
  });
});
