import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ChatController } from "../src/chat.js";
import { eventSourceUrl, streamChatEventSource, type EventSourceLike } from "../src/eventsource.js";
import { json, recorder, scriptedFetch, tick } from "./helpers.js";

/** An EventSource double: the test plays the server by calling `emit`. */
class FakeEventSource implements EventSourceLike {
  static last: FakeEventSource | null = null;
  readonly listeners = new Map<string, Array<(event: Event) => void>>();
  closed = false;
  constructor(
    readonly url: string,
    readonly init?: EventSourceInit,
  ) {
    FakeEventSource.last = this;
  }
  addEventListener(type: string, listener: (event: Event) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  close(): void {
    this.closed = true;
  }
  /** A server event (data given) or, for "error" without data, the browser's connection error. */
  emit(type: string, data?: unknown, lastEventId = ""): void {
    const event = data === undefined ? new Event(type) : new MessageEvent(type, { data: JSON.stringify(data), lastEventId });
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }
}

const source = (): FakeEventSource => {
  assert.ok(FakeEventSource.last);
  return FakeEventSource.last;
};

describe("streamChatEventSource", () => {
  test("builds the GET URL from the request's query fields", () => {
    assert.equal(
      eventSourceUrl("http://127.0.0.1:8000/", { message: "a b&c", provider: "echo", max_tokens: 5, temperature: 0.5 }),
      "http://127.0.0.1:8000/chat/stream?message=a+b%26c&provider=echo&max_tokens=5&temperature=0.5",
    );
  });

  test("normalises the events to the same handlers as streamChat; closes on done", async () => {
    const r = recorder();
    const pending = streamChatEventSource("http://h", { message: "hi" }, r.handlers, { EventSource: FakeEventSource, withCredentials: true });
    const es = source();
    assert.deepEqual(es.init, { withCredentials: true });
    es.emit("start", { stream_id: "s-1", provider: "echo", model: "echo-1" });
    es.emit("message", { text: "Hel" }, "1");
    es.emit("message", { text: "lo" }, "2");
    es.emit("usage", { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
    es.emit("done", { status: "complete", stream_id: "s-1", finish_reason: "stop", ttft_ms: 1, total_time_ms: 2, completion_tokens: 2 });
    es.emit("message", { text: "late" }, "3");
    const result = await pending;
    assert.equal(result.type, "done");
    assert.deepEqual(r.kinds(), ["start", "text", "text", "usage", "done"]);
    assert.deepEqual(r.log[2]?.[1], { text: "lo", seq: 2, tokens: 1 });
    assert.equal(es.closed, true);
  });

  test("the server's error event (with data) is not the browser's connection error (without)", async () => {
    const pending = streamChatEventSource("http://h", { message: "hi" }, {}, { EventSource: FakeEventSource });
    source().emit("start", { stream_id: "s-1", provider: "echo", model: "echo-1" });
    source().emit("error", { error: "rate limited", code: "rate_limited", retryable: true });
    assert.deepEqual(await pending, { type: "error", error: "rate limited", code: "rate_limited", retryable: true, stream_id: "s-1" });

    const refused = streamChatEventSource("http://h", { message: "hi", model: "nope" }, {}, { EventSource: FakeEventSource });
    source().emit("error");
    const result = await refused;
    assert.equal(result.type === "error" && result.code, "network_error");
    assert.equal(result.type === "error" && result.retryable, false);
    assert.equal(source().closed, true, "closed, so EventSource does not re-run the request by reconnecting");
  });

  test("a connection lost mid-stream is a retryable network_error", async () => {
    const pending = streamChatEventSource("http://h", { message: "hi" }, {}, { EventSource: FakeEventSource, resume: false });
    source().emit("start", { stream_id: "s-1", provider: "echo", model: "echo-1" });
    source().emit("error");
    const result = await pending;
    assert.equal(result.type === "error" && result.retryable, true);
  });

  test("a connection lost mid-stream is resumed from the last id, each part once", async () => {
    const r = recorder();
    const pending = streamChatEventSource("http://h", { message: "hi" }, r.handlers, { EventSource: FakeEventSource, resumeDelayMs: 1 });
    const first = source();
    first.emit("start", { stream_id: "s-1", provider: "echo", model: "echo-1" });
    first.emit("message", { text: "a" }, "1");
    first.emit("message", { text: "b" }, "2");
    first.emit("error");
    assert.equal(first.closed, true);
    await tick(10);
    const second = source();
    assert.notEqual(second, first);
    assert.equal(second.url, "http://h/chat/stream/s-1?last_event_id=2");
    second.emit("message", { text: "b" }, "2"); // seen: dropped
    second.emit("message", { text: "c" }, "3");
    second.emit("done", { status: "complete", stream_id: "s-1", finish_reason: "stop", ttft_ms: 1, total_time_ms: 2, completion_tokens: 3 });
    const result = await pending;
    assert.equal(result.type, "done");
    assert.equal(r.text(), "abc");
  });

  test("abort closes the source and calls the cancel endpoint", async () => {
    const { fetch, calls } = scriptedFetch(() => json(200, { status: "cancelled" }));
    const abort = new AbortController();
    const pending = streamChatEventSource("http://h/", { message: "hi" }, {}, { EventSource: FakeEventSource, signal: abort.signal, fetch });
    source().emit("start", { stream_id: "s-9", provider: "echo", model: "echo-1" });
    abort.abort();
    assert.deepEqual(await pending, { type: "cancelled", stream_id: "s-9", reason: "client" });
    assert.equal(source().closed, true);
    await tick();
    assert.equal(calls[0]?.url, "http://h/chat/stream/s-9/cancel");
  });

  test("token: access_token on the stream's URLs (first and resumed), a Bearer header on the cancel", async () => {
    const token = "trk_0123456789abcdef_s3cr/t+";
    const { fetch, calls } = scriptedFetch(() => json(200, { status: "cancelled" }));
    const abort = new AbortController();
    const options = { EventSource: FakeEventSource, token, fetch, signal: abort.signal, resumeDelayMs: 1 };
    const pending = streamChatEventSource("http://h", { message: "hi" }, {}, options);
    const first = source();
    assert.equal(first.url, `http://h/chat/stream?message=hi&access_token=${encodeURIComponent(token)}`);
    assert.equal(new URL(first.url).searchParams.get("access_token"), token);
    first.emit("start", { stream_id: "s-1", provider: "echo", model: "echo-1" });
    first.emit("message", { text: "a" }, "1");
    first.emit("error");
    await tick(10);
    const resumed = new URL(source().url);
    assert.equal(resumed.pathname, "/chat/stream/s-1");
    assert.deepEqual([...resumed.searchParams.keys()], ["last_event_id", "access_token"]);
    assert.equal(resumed.searchParams.get("access_token"), token);
    abort.abort();
    assert.equal((await pending).type, "cancelled");
    await tick();
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.url, "http://h/chat/stream/s-1/cancel", "the key never goes in the cancel's URL");
    assert.equal((calls[0]?.init.headers as Record<string, string>).Authorization, `Bearer ${token}`);
    assert.equal(calls[0]?.init.keepalive, true);
  });

  test("without a token, no access_token anywhere and no Authorization on the cancel", async () => {
    const { fetch, calls } = scriptedFetch(() => json(200, { status: "cancelled" }));
    const abort = new AbortController();
    const pending = streamChatEventSource("http://h", { message: "hi" }, {}, { EventSource: FakeEventSource, fetch, signal: abort.signal });
    assert.equal(new URL(source().url).searchParams.has("access_token"), false);
    source().emit("start", { stream_id: "s-2", provider: "echo", model: "echo-1" });
    abort.abort();
    await pending;
    await tick();
    assert.equal((calls[0]?.init.headers as Record<string, string>).Authorization, undefined);
  });

  test("ChatController passes its token to the EventSource transport", async () => {
    const controller = new ChatController({ baseUrl: "http://h", transport: "eventsource", EventSource: FakeEventSource, token: "trk_k" });
    const result = controller.send("hi");
    assert.equal(new URL(source().url).searchParams.get("access_token"), "trk_k");
    source().emit("start", { stream_id: "s-3", provider: "echo", model: "echo-1" });
    source().emit("done", { status: "complete", stream_id: "s-3", finish_reason: "stop", ttft_ms: 1, total_time_ms: 2, completion_tokens: 0 });
    assert.equal((await result).type, "done");
    controller.detach();
  });

  test("messages (a history) cannot go in a query string", async () => {
    const result = await streamChatEventSource("http://h", { messages: [{ role: "user", content: "x" }] } as never, {}, { EventSource: FakeEventSource });
    assert.equal(result.type === "error" && result.field, "messages");
  });

  test("data that is not JSON is a bad_response", async () => {
    const pending = streamChatEventSource("http://h", { message: "hi" }, {}, { EventSource: FakeEventSource });
    for (const listener of source().listeners.get("message") ?? []) listener(new MessageEvent("message", { data: "{oops" }));
    const result = await pending;
    assert.equal(result.type === "error" && result.code, "bad_response");
  });
});
