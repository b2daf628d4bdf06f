/** What a page sees while a connection fails: `ChatState.connection`, and errors in words. */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { checkKey } from "../src/calls.js";
import { ChatController, type ChatOptions } from "../src/chat.js";
import type { ChatError, ConnectionState } from "../src/types.js";
import { streamChat } from "../src/http.js";
import { DONE, FakeWebSocket, json, msg, scriptedFetch, sse, START, tick } from "./helpers.js";

const KEY = "trk_0123456789abcdef_secret";

function controller(options: ChatOptions = {}) {
  FakeWebSocket.all = [];
  const timers: Array<() => void> = [];
  const c = new ChatController({
    transport: "websocket",
    wsUrl: "ws://gw.test",
    baseUrl: "http://api.test",
    clientId: "me",
    WebSocket: FakeWebSocket,
    requestFrame: (callback) => {
      callback();
      return null;
    },
    ...options,
  });
  return { c, timers };
}

describe("ChatController: the connection, as a page shows it", () => {
  test("a WebSocket lost mid-answer: reconnecting, attempt 1 of 6; then the answer goes on", async () => {
    const { c } = controller({ socketOptions: { backoff: { initialMs: 5, maxMs: 5, jitter: 0 } } });
    const result = c.send("hi");
    const first = FakeWebSocket.last();
    first.open();
    const id = String(first.sent[0]?.request_id);
    first.receive({ type: "start", request_id: id, stream_id: "s1", provider: "echo", model: "echo-1" });
    first.receive({ type: "text", request_id: id, stream_id: "s1", content: "a ", seq: 1, tokens: 1 });
    first.drop();
    const state = c.getSnapshot();
    assert.equal(state.status, "streaming");
    assert.deepEqual(state.connection, { status: "reconnecting", attempt: 1, maxAttempts: 6, delayMs: 5 });
    for (let wait = 0; wait < 100 && FakeWebSocket.last() === first; wait++) await tick(2); // the backoff timer
    const second = FakeWebSocket.last();
    assert.notEqual(second, first);
    second.open();
    assert.deepEqual(second.sent[0], { type: "resume", stream_id: "s1", after_seq: 1, request_id: id });
    second.receive({ type: "text", request_id: id, stream_id: "s1", content: "b", seq: 2, tokens: 1 });
    assert.equal(c.getSnapshot().connection, null, "text flows again: no connection notice");
    second.receive({ type: "done", request_id: id, stream_id: "s1", status: "complete", finish_reason: "stop", ttft_ms: 1, total_time_ms: 2, completion_tokens: 2 });
    assert.equal((await result).type, "done");
    assert.equal(c.getSnapshot().content, "a b");
    c.detach();
  });

  test("a refused API key on the WebSocket: unauthorized at once (asked over HTTP), no more handshakes", async () => {
    const { fetch, calls } = scriptedFetch(() => json(401, { error: { message: "invalid API key", type: "invalid_request_error", code: "invalid_api_key" } }));
    const { c } = controller({ token: KEY, fetch });
    const result = c.send("hi");
    assert.deepEqual(FakeWebSocket.last().protocols, ["tokenrelay", `bearer.${KEY}`]);
    FakeWebSocket.last().drop(); // what a browser sees of a 401 on the handshake
    const end = (await result) as ChatError;
    assert.deepEqual([end.code, end.status, end.error], ["unauthorized", 401, "invalid API key"]);
    assert.equal(calls[0]?.url, "http://api.test/v1/models");
    assert.equal((calls[0]?.init.headers as Record<string, string>).Authorization, `Bearer ${KEY}`);
    assert.equal(FakeWebSocket.all.length, 1);
    assert.deepEqual([c.getSnapshot().status, c.getSnapshot().connection], ["error", null]);
    c.detach();
  });

  test("a WebSocket URL where nothing listens: connecting, attempt n of 3, then connect_failed", async () => {
    const { fetch } = scriptedFetch(
      () => json(200, { data: [] }),
      () => json(200, { data: [] }),
      () => json(200, { data: [] }),
    );
    const seen: Array<ConnectionState | null> = [];
    const { c } = controller({ fetch, socketOptions: { backoff: { initialMs: 5, maxMs: 10, jitter: 0 } } });
    c.subscribe(() => seen.push(c.getSnapshot().connection));
    const result = c.send("hi");
    for (let i = 0; i < 3; i++) {
      const ws = FakeWebSocket.last();
      ws.drop();
      for (let wait = 0; wait < 50 && FakeWebSocket.last() === ws && i < 2; wait++) await tick(2);
    }
    const end = (await result) as ChatError;
    assert.equal(end.code, "connect_failed");
    assert.equal(end.error, "could not open a WebSocket to ws://gw.test/ (3 attempts)", "no query string in the message");
    const shown = seen.filter((s) => s !== null).map((s) => `${s.status} ${s.attempt}/${s.maxAttempts}`);
    assert.deepEqual([...new Set(shown)], ["connecting 1/3", "connecting 2/3", "connecting 3/3"]);
    c.detach();
  });

  test("SSE: each resume attempt is reported, then open", async () => {
    const states: ConnectionState[] = [];
    const { fetch } = scriptedFetch(
      () => sse([START, msg(1, "a")]),
      () => json(503, { error: "busy", code: "store_unavailable" }),
      () => sse([msg(2, "b"), DONE]),
    );
    const result = await streamChat("http://api.test", { message: "x" }, {}, { fetch, resumeDelayMs: 1, onConnection: (s) => states.push(s) });
    assert.equal(result.type, "done");
    assert.deepEqual(
      states.map((s) => `${s.status} ${s.attempt}/${s.maxAttempts}`),
      ["reconnecting 1/5", "reconnecting 2/5", "open 0/5"],
    );
  });
});

describe("checkKey", () => {
  test("a key the HTTP API takes, or an answer that says nothing about keys: null", async () => {
    for (const status of [200, 404, 500]) {
      const { fetch } = scriptedFetch(() => json(status, {}));
      assert.equal(await checkKey("http://api.test", { fetch }), null);
    }
    const failing = async (): Promise<Response> => Promise.reject(new TypeError("fetch failed"));
    assert.equal(await checkKey("http://api.test", { fetch: failing }), null);
  });

  test("401 and 403 become unauthorized and forbidden, in either error shape", async () => {
    const { fetch } = scriptedFetch(
      () => json(401, { error: "invalid API key", code: "unauthorized" }),
      () => json(403, {}),
    );
    assert.deepEqual(await checkKey("http://api.test/stage", { fetch }), {
      type: "error", error: "invalid API key", code: "unauthorized", retryable: false, status: 401,
    });
    const forbidden = await checkKey("http://api.test", { fetch });
    assert.deepEqual([forbidden?.code, forbidden?.error], ["forbidden", "the server refused the API key (HTTP 403)"]);
  });
});
