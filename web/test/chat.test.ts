import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ChatController, type ChatOptions, type ChatState } from "../src/chat.js";
import type { WebSocketLike } from "../src/websocket.js";
import { DONE, json, msg, scriptedFetch, START, tick, USAGE } from "./helpers.js";

const enc = new TextEncoder();

/** A response body the test writes to, piece by piece. */
function live(): { response: Response; push(text: string): Promise<void>; close(): void } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  return {
    response: new Response(stream, { headers: { "content-type": "text/event-stream", "x-stream-id": "s-1" } }),
    async push(text) {
      controller.enqueue(enc.encode(text));
      await tick(); // let the client read it
    },
    close: () => controller.close(),
  };
}

/** A controller with a manual clock and manual animation frames. */
function harness(options: ChatOptions = {}) {
  let clock = 1000;
  const frames = new Map<number, () => void>();
  let nextFrame = 0;
  const states: ChatState[] = [];
  const controller = new ChatController({
    baseUrl: "http://api.test",
    now: () => clock,
    requestFrame: (cb) => {
      frames.set(++nextFrame, cb);
      return nextFrame;
    },
    cancelFrame: (h) => frames.delete(h as number),
    ...options,
  });
  controller.subscribe(() => states.push(controller.getSnapshot()));
  return {
    controller,
    states,
    frames,
    advance: (ms: number) => void (clock += ms),
    runFrames() {
      const pending = [...frames.values()];
      frames.clear();
      for (const cb of pending) cb();
    },
    get state() {
      return controller.getSnapshot();
    },
  };
}

describe("ChatController", () => {
  test("tokens are published once per animation frame, not once per token", async () => {
    const body = live();
    const { fetch } = scriptedFetch(() => body.response);
    const h = harness({ fetch });
    const result = h.controller.send("hi");
    await body.push(START);
    const before = h.states.length;
    for (let i = 1; i <= 100; i++) await body.push(msg(i, `t${i} `));
    assert.equal(h.states.length, before, "no update between frames");
    assert.equal(h.frames.size, 1, "one frame scheduled for all of them");
    h.runFrames();
    assert.equal(h.states.length, before + 1);
    assert.equal(h.state.content, Array.from({ length: 100 }, (_, i) => `t${i + 1} `).join(""));
    assert.equal(h.state.progress.tokens, 100);
    await body.push(USAGE + DONE);
    assert.equal((await result).type, "done");
  });

  test("progress: time to first token, tokens, tokens per second; then the server's count", async () => {
    const body = live();
    const { fetch } = scriptedFetch(() => body.response);
    const h = harness({ fetch });
    void h.controller.send("hi");
    assert.deepEqual([h.state.status, h.state.isStreaming], ["streaming", true]);
    await body.push(START);
    assert.deepEqual([h.state.streamId, h.state.provider, h.state.model], ["s-1", "echo", "echo-1"]);
    h.advance(120);
    await body.push(msg(1, "a "));
    h.advance(500);
    await body.push(msg(2, "b "));
    await body.push(msg(3, "c "));
    h.runFrames();
    assert.deepEqual(h.state.progress, { ttftMs: 120, tokens: 3, tokensPerSecond: 4, elapsedMs: 620, exact: false });
    await body.push(USAGE);
    assert.deepEqual(h.state.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    assert.equal(h.state.progress.tokens, 2);
    assert.equal(h.state.progress.exact, true);
  });

  test("the terminal event publishes pending text at once, with the final state", async () => {
    const body = live();
    const { fetch } = scriptedFetch(() => body.response);
    const h = harness({ fetch });
    const result = h.controller.send({ message: "hi", provider: "echo" });
    await body.push(START + msg(1, "Hel") + msg(2, "lo") + USAGE + DONE);
    assert.equal((await result).type, "done");
    assert.equal(h.frames.size, 0, "the pending frame was cancelled");
    assert.equal(h.state.content, "Hello");
    assert.equal(h.state.status, "done");
    assert.equal(h.state.isStreaming, false);
    assert.equal(h.state.finishReason, "stop");
    assert.equal(h.state.progress.tokens, 2);
  });

  test("an invalid request: status error, the server's error, no text", async () => {
    const { fetch } = scriptedFetch(() => json(400, { error: "model: not allowed", code: "invalid_request", field: "model" }));
    const h = harness({ fetch });
    await h.controller.send({ message: "hi", model: "nope" });
    assert.equal(h.state.status, "error");
    assert.equal(h.state.error?.code, "invalid_request");
    assert.equal(h.state.error?.field, "model");
    assert.equal(h.state.content, "");
  });

  test("cancel(): calls the cancel endpoint and ends when the server says cancelled", async () => {
    const body = live();
    const { fetch, calls } = scriptedFetch(() => body.response, () => json(200, { status: "cancelled" }));
    const h = harness({ fetch });
    const result = h.controller.send("hi");
    await body.push(START + msg(1, "a"));
    h.controller.cancel();
    await tick();
    assert.equal(calls[1]?.url, "http://api.test/chat/stream/s-1/cancel");
    assert.equal(h.state.status, "streaming", "still streaming until the server confirms");
    await body.push('event: cancelled\ndata: {"stream_id":"s-1","reason":"client"}\n\n');
    assert.deepEqual(await result, { type: "cancelled", stream_id: "s-1", reason: "client" });
    assert.deepEqual([h.state.status, h.state.cancelReason, h.state.content], ["cancelled", "client", "a"]);
  });

  test("token: sent as Authorization: Bearer on the stream and on its cancel", async () => {
    const body = live();
    const { fetch, calls } = scriptedFetch(() => body.response, () => json(200, { status: "cancelled" }));
    const h = harness({ fetch, token: "trk_0123456789abcdef_secret", headers: { "X-Extra": "1" } });
    const result = h.controller.send("hi");
    await body.push(START + msg(1, "a"));
    h.controller.cancel();
    await tick();
    for (const call of calls) {
      const headers = call.init.headers as Record<string, string>;
      assert.equal(headers.Authorization, "Bearer trk_0123456789abcdef_secret");
      assert.equal(headers["X-Extra"], "1");
    }
    assert.equal(calls.length, 2);
    await body.push('event: cancelled\ndata: {"stream_id":"s-1","reason":"client"}\n\n');
    assert.equal((await result).type, "cancelled");
  });

  test("cancel() before start: the cancel goes out once the stream id is known", async () => {
    const body = live();
    const { fetch, calls } = scriptedFetch(() => body.response, () => json(200, { status: "cancelled" }));
    const h = harness({ fetch });
    void h.controller.send("hi");
    await tick();
    h.controller.cancel();
    assert.equal(calls.length, 1);
    await body.push(START);
    await tick();
    assert.equal(calls[1]?.url, "http://api.test/chat/stream/s-1/cancel");
    h.controller.detach();
  });

  test("cancel(): when the server cannot cancel (404), the stream is stopped here", async () => {
    const body = live();
    const { fetch } = scriptedFetch(() => body.response, () => json(404, { error: "gone", code: "stream_not_found" }), () => json(404, {}));
    const h = harness({ fetch });
    const result = h.controller.send("hi");
    await body.push(START);
    h.controller.cancel();
    assert.equal((await result).type, "cancelled");
    assert.equal(h.state.status, "cancelled");
  });

  test("detach() (unmount): aborts, cancels on the server, and nothing is published afterwards", async () => {
    const body = live();
    const { fetch, calls } = scriptedFetch(() => body.response, () => json(200, { status: "cancelled" }));
    const h = harness({ fetch });
    void h.controller.send("hi");
    await body.push(START + msg(1, "a"));
    assert.equal(h.frames.size, 1);
    const published = h.states.length;
    h.controller.detach();
    assert.equal(h.frames.size, 0, "the pending frame was cancelled");
    await tick();
    assert.equal(calls[0]?.init.signal?.aborted, true);
    assert.equal(calls[1]?.url, "http://api.test/chat/stream/s-1/cancel");
    await body.push(msg(2, "b")).catch(() => undefined);
    h.runFrames();
    assert.equal(h.states.length, published, "no update after detach");
  });

  test("send() while streaming abandons the running turn; its late events are ignored", async () => {
    const first = live();
    const second = live();
    const { fetch, calls } = scriptedFetch(() => first.response, () => json(200, {}), () => second.response);
    const h = harness({ fetch });
    void h.controller.send("one");
    await first.push(START + msg(1, "old"));
    const result = h.controller.send("two");
    assert.equal(h.state.content, "");
    await second.push(START.replace("s-1", "s-2") + msg(1, "new") + DONE.replace("s-1", "s-2"));
    assert.equal((await result).type, "done");
    assert.equal(h.state.content, "new");
    assert.equal(calls[0]?.init.signal?.aborted, true);
    assert.equal(calls[1]?.url, "http://api.test/chat/stream/s-1/cancel", "the abandoned stream is cancelled on the server");
  });

  test("reset(): back to idle", async () => {
    const { fetch } = scriptedFetch(() => new Response(START + msg(1, "a") + DONE, { headers: { "content-type": "text/event-stream" } }));
    const h = harness({ fetch });
    await h.controller.send("hi");
    h.controller.reset();
    assert.deepEqual([h.state.status, h.state.content, h.state.streamId], ["idle", "", null]);
  });

  test("the websocket transport: the same state from socket messages", async () => {
    const sockets: FakeWs[] = [];
    class FakeWs implements WebSocketLike {
      readyState = 0;
      sent: string[] = [];
      onopen: ((event: Event) => void) | null = null;
      onmessage: ((event: MessageEvent) => void) | null = null;
      onclose: ((event: CloseEvent) => void) | null = null;
      onerror: ((event: Event) => void) | null = null;
      constructor(readonly url: string) {
        sockets.push(this);
      }
      send(data: string): void {
        this.sent.push(data);
      }
      close(): void {
        this.readyState = 3;
      }
    }
    const h = harness({ transport: "websocket", wsUrl: "ws://127.0.0.1:8001", WebSocket: FakeWs });
    const result = h.controller.send("hi");
    const ws = sockets[0];
    assert.ok(ws);
    ws.readyState = 1;
    ws.onopen?.(new Event("open"));
    const requestId = (JSON.parse(ws.sent[0] ?? "{}") as { request_id: string }).request_id;
    const say = (m: object) => ws.onmessage?.(new MessageEvent("message", { data: JSON.stringify({ request_id: requestId, stream_id: "w-1", ...m }) }));
    say({ type: "start", provider: "echo", model: "echo-1" });
    say({ type: "text", content: "Hi ", seq: 1 });
    say({ type: "text", content: "there", seq: 2 });
    say({ type: "done", status: "complete", finish_reason: "stop", ttft_ms: 1, total_time_ms: 2, completion_tokens: 2 });
    assert.equal((await result).type, "done");
    assert.deepEqual([h.state.content, h.state.streamId, h.state.transport], ["Hi there", "w-1", "websocket"]);
    h.controller.detach();
  });

  test("the websocket transport without a URL: an error in words, not an exception", async () => {
    const h = harness({ transport: "websocket" });
    await h.controller.send("hi");
    assert.equal(h.state.error?.code, "invalid_config");
  });
});
