import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { streamChat } from "../src/http.js";
import { TokenRelaySocket, type WebSocketLike } from "../src/websocket.js";
import { DONE, json, msg, recorder, scriptedFetch, sse, START } from "./helpers.js";

const BASE = "https://fn.example";

describe("resume after a dropped connection (docs/protocol.md section 5)", () => {
  test("sse: a drop mid-stream resumes with Last-Event-ID and delivers each part once", async () => {
    const { fetch, calls } = scriptedFetch(
      () => sse([START, msg(1, "a"), msg(2, "b")]), // the connection ends with no terminal event
      () => sse([msg(2, "b"), msg(3, "c"), DONE]), // a repeated part is dropped by id
    );
    const r = recorder();
    const result = await streamChat(BASE, { message: "x" }, r.handlers, { fetch, resumeDelayMs: 1 });
    assert.equal(result.type, "done");
    assert.equal(r.text(), "abc");
    assert.equal(calls[1]?.url, `${BASE}/chat/stream/s-1`);
    assert.equal(calls[1]?.init.method, "GET");
    assert.equal((calls[1]?.init.headers as Record<string, string>)["Last-Event-ID"], "2");
    assert.equal(r.kinds().filter((k) => k === "done").length, 1);
  });

  test("sse: a stream the server does not know any more ends with its 404 error", async () => {
    const { fetch } = scriptedFetch(
      () => sse([START, msg(1, "a")]),
      () => json(404, { error: "no stream with id 's-1'", code: "stream_not_found" }),
    );
    const result = await streamChat(BASE, { message: "x" }, {}, { fetch, resumeDelayMs: 1 });
    assert.equal(result.type === "error" && result.code, "stream_not_found");
  });

  test("sse: resume: false keeps the old behaviour (stream_truncated)", async () => {
    const { fetch, calls } = scriptedFetch(() => sse([START, msg(1, "a")]));
    const result = await streamChat(BASE, { message: "x" }, {}, { fetch, resume: false });
    assert.equal(result.type === "error" && result.code, "stream_truncated");
    assert.equal(calls.length, 1);
  });

  test("websocket: with a clientId, a dropped stream is resumed on the next connection", async () => {
    const sockets: FakeSocket[] = [];
    class FakeSocket implements WebSocketLike {
      readyState = 0;
      sent: Array<Record<string, unknown>> = [];
      onopen: ((event: Event) => void) | null = null;
      onmessage: ((event: MessageEvent) => void) | null = null;
      onclose: ((event: CloseEvent) => void) | null = null;
      onerror: ((event: Event) => void) | null = null;
      constructor(readonly url: string) {
        sockets.push(this);
      }
      send(data: string): void {
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
    }
    const timers: Array<() => void> = [];
    const socket = new TokenRelaySocket("wss://ws.example/prod", {
      clientId: "me",
      WebSocket: FakeSocket,
      setTimeout: (fn) => timers.push(fn),
      clearTimeout: () => undefined,
      random: () => 0,
    });
    const r = recorder();
    const handle = socket.send({ message: "x" }, r.handlers);
    const first = sockets[0]!;
    first.open();
    const id = handle.requestId;
    first.receive({ type: "start", stream_id: "s1", request_id: id, provider: "echo", model: "echo-1" });
    first.receive({ type: "text", stream_id: "s1", request_id: id, content: "a", seq: 1 });
    first.receive({ type: "text", stream_id: "s1", request_id: id, content: "b", seq: 2 });
    first.readyState = 3;
    first.onclose?.({ code: 1006 } as CloseEvent);
    timers.shift()?.();
    const second = sockets[1]!;
    second.open();
    assert.deepEqual(second.sent, [{ type: "resume", stream_id: "s1", after_seq: 2, request_id: id }]);
    second.receive({ type: "text", stream_id: "s1", request_id: id, content: "b", seq: 2 }); // seen: dropped
    second.receive({ type: "text", stream_id: "s1", request_id: id, content: "c", seq: 3 });
    second.receive({ type: "done", stream_id: "s1", request_id: id, status: "complete", finish_reason: "stop", ttft_ms: 1, total_time_ms: 2, completion_tokens: 3 });
    const result = await handle.result;
    assert.equal(result.type, "done");
    assert.equal(r.text(), "abc");
  });
});
