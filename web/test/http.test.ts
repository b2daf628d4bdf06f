import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { cancelStream, streamChat } from "../src/http.js";
import { endpoint } from "../src/types.js";
import { DONE, json, msg, recorder, scriptedFetch, sse, START, tick, USAGE } from "./helpers.js";

const BASE = "https://abc.lambda-url.eu-west-1.on.aws/";

describe("streamChat", () => {
  test("POSTs the request and calls the handlers in order; resolves with done", async () => {
    const { fetch, calls } = scriptedFetch(() => sse([START, msg(1, "Hel"), msg(2, "lo"), USAGE, DONE]));
    const r = recorder();
    const result = await streamChat(BASE, { message: "hi", provider: "echo" }, r.handlers, { fetch, headers: { "X-Client-Id": "me" } });

    assert.equal(calls[0]?.url, "https://abc.lambda-url.eu-west-1.on.aws/chat/stream");
    assert.equal(calls[0]?.init.method, "POST");
    assert.deepEqual(JSON.parse(String(calls[0]?.init.body)), { message: "hi", provider: "echo" });
    const headers = calls[0]?.init.headers as Record<string, string>;
    assert.equal(headers["Content-Type"], "application/json");
    assert.equal(headers["X-Client-Id"], "me");
    assert.deepEqual(r.kinds(), ["start", "text", "text", "usage", "done"]);
    assert.equal(r.text(), "Hello");
    assert.deepEqual(r.log[1]?.[1], { text: "Hel", seq: 1, tokens: 1 });
    assert.deepEqual(result, {
      type: "done",
      status: "complete",
      stream_id: "s-1",
      finish_reason: "stop",
      ttft_ms: 12,
      total_time_ms: 80,
      completion_tokens: 2,
    });
  });

  test("events split across chunks at every byte, CRLF endings, pings: same result", async () => {
    const transcript = (START + ": ping\n\n" + msg(1, "Grüße ") + msg(2, "🙂") + USAGE + DONE).replaceAll("\n", "\r\n");
    const bytes = new TextEncoder().encode(transcript);
    for (const size of [1, 2, 3, 7, 64]) {
      const pieces: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.slice(i, i + size));
      const { fetch } = scriptedFetch(() => sse(pieces));
      const r = recorder();
      const comments: string[] = [];
      const result = await streamChat(BASE, { message: "x" }, r.handlers, { fetch, onComment: (c) => comments.push(c) });
      assert.equal(result.type, "done", `size ${size}`);
      assert.equal(r.text(), "Grüße 🙂", `size ${size}`);
      assert.deepEqual(comments, ["ping"]);
    }
  });

  test("the first-generation dialect: plain data lines without event names or ids", async () => {
    const { fetch } = scriptedFetch(() => sse(['data: {"text":"a"}\n\ndata: {"text":"b"}\n\n', DONE]));
    const r = recorder();
    await streamChat(BASE, { message: "x" }, r.handlers, { fetch });
    assert.deepEqual(r.log.slice(0, 2).map(([, e]) => e), [
      { text: "a", seq: 1, tokens: 1 },
      { text: "b", seq: 2, tokens: 1 },
    ]);
  });

  test("nothing is read after the terminal event; unknown events are ignored", async () => {
    const { fetch } = scriptedFetch(() => sse([START + "event: future\ndata: {}\n\n" + DONE + msg(9, "late")], { hang: true }));
    const r = recorder();
    const result = await streamChat(BASE, { message: "x" }, r.handlers, { fetch });
    assert.equal(result.type, "done");
    assert.deepEqual(r.kinds(), ["start", "done"]);
  });

  test("an error event ends the stream with the server's code and message", async () => {
    const error = 'event: error\ndata: {"error":"upstream is down","code":"upstream_unavailable","retryable":true}\n\n';
    const { fetch } = scriptedFetch(() => sse([START, msg(1, "a"), error]));
    const r = recorder();
    const result = await streamChat(BASE, { message: "x" }, r.handlers, { fetch });
    assert.deepEqual(result, { type: "error", error: "upstream is down", code: "upstream_unavailable", retryable: true, stream_id: "s-1" });
    assert.deepEqual(r.kinds(), ["start", "text", "error"]);
  });

  test("a cancelled event ends the stream", async () => {
    const { fetch } = scriptedFetch(() => sse([START, 'event: cancelled\ndata: {"stream_id":"s-1","reason":"timeout"}\n\n']));
    const result = await streamChat(BASE, { message: "x" }, {}, { fetch });
    assert.deepEqual(result, { type: "cancelled", stream_id: "s-1", reason: "timeout" });
  });

  test("HTTP 400 with TokenRelay's JSON body: an error naming the field, no stream", async () => {
    const { fetch } = scriptedFetch(() => json(400, { error: "model: not allowed", code: "invalid_request", field: "model" }));
    const r = recorder();
    const result = await streamChat(BASE, { message: "x", model: "nope" }, r.handlers, { fetch });
    assert.deepEqual(result, { type: "error", error: "model: not allowed", code: "invalid_request", retryable: false, field: "model", status: 400 });
    assert.deepEqual(r.kinds(), ["error"]);
  });

  test("HTTP 429 for the key's own limit: rate_limited, retryable, with retry_after", async () => {
    const { fetch } = scriptedFetch(() => json(429, { error: "over 60 requests per minute", code: "rate_limited", retry_after: 12 }));
    const result = await streamChat(BASE, { message: "x" }, {}, { fetch });
    assert.deepEqual(result, { type: "error", error: "over 60 requests per minute", code: "rate_limited", retryable: true, retry_after: 12, status: 429 });
  });

  test("the provider's rate limit in band: upstream_rate_limited, retryable", async () => {
    const error = 'event: error\ndata: {"error":"OpenAI rate limit exceeded (HTTP 429)","code":"upstream_rate_limited","retryable":true}\n\n';
    const { fetch } = scriptedFetch(() => sse([START, error]));
    const result = await streamChat(BASE, { message: "x" }, {}, { fetch });
    assert.equal(result.type === "error" && result.code, "upstream_rate_limited");
    assert.equal(result.type === "error" && result.retryable, true);
  });

  test("HTTP 502 from a proxy, with an HTML body: http_error, retryable", async () => {
    const { fetch } = scriptedFetch(() => new Response("<html>Bad gateway</html>", { status: 502 }));
    const result = await streamChat(BASE, { message: "x" }, {}, { fetch });
    assert.equal(result.type, "error");
    assert.equal(result.type === "error" && result.code, "http_error");
    assert.equal(result.type === "error" && result.retryable, true);
    assert.equal(result.type === "error" && result.status, 502);
  });

  test("a 200 that is not an event stream is a bad_response", async () => {
    const { fetch } = scriptedFetch(() => json(200, { hello: 1 }));
    const result = await streamChat(BASE, { message: "x" }, {}, { fetch });
    assert.equal(result.type === "error" && result.code, "bad_response");
  });

  test("a network failure is a retryable network_error", async () => {
    const { fetch } = scriptedFetch(() => Promise.reject(new TypeError("Failed to fetch")));
    const result = await streamChat(BASE, { message: "x" }, {}, { fetch });
    assert.equal(result.type === "error" && result.code, "network_error");
    assert.equal(result.type === "error" && result.retryable, true);
  });

  test("a body that ends without a terminal event is stream_truncated", async () => {
    const { fetch } = scriptedFetch(() => sse([START, msg(1, "a"), 'event: message\nid: 2\ndata: {"text":"b"}\n']));
    const r = recorder();
    const result = await streamChat(BASE, { message: "x" }, r.handlers, { fetch });
    assert.equal(result.type === "error" && result.code, "stream_truncated");
    assert.equal(r.text(), "a"); // the unfinished event is not delivered
  });

  test("data that is not JSON is a bad_response", async () => {
    const { fetch } = scriptedFetch(() => sse([START, "event: message\ndata: {oops\n\n"]));
    const result = await streamChat(BASE, { message: "x" }, {}, { fetch });
    assert.equal(result.type === "error" && result.code, "bad_response");
  });

  test("abort after start: resolves cancelled at once and calls the cancel endpoint with the stream id", async () => {
    const { fetch, calls } = scriptedFetch(
      () => sse([START, msg(1, "a")], { hang: true }),
      () => json(200, { status: "cancelled", stream_id: "s-1" }),
    );
    const abort = new AbortController();
    const r = recorder();
    const result = await streamChat(BASE, { message: "x" }, { ...r.handlers, onText: () => abort.abort() }, { fetch, signal: abort.signal });
    assert.deepEqual(result, { type: "cancelled", stream_id: "s-1", reason: "client" });
    await tick();
    assert.equal(calls[1]?.url, `${BASE}chat/stream/s-1/cancel`);
    assert.equal(calls[1]?.init.method, "POST");
    assert.equal(calls[1]?.init.keepalive, true);
    assert.equal(calls[0]?.init.signal?.aborted, true);
  });

  test("the stream id comes from X-Stream-Id before any event", async () => {
    const { fetch, calls } = scriptedFetch(
      () => sse([], { hang: true, headers: { "x-stream-id": "from-header" } }),
      () => json(200, {}),
    );
    const abort = new AbortController();
    const pending = streamChat(BASE, { message: "x" }, {}, { fetch, signal: abort.signal });
    await tick(5);
    abort.abort();
    assert.deepEqual(await pending, { type: "cancelled", stream_id: "from-header", reason: "client" });
    await tick();
    assert.equal(calls[1]?.url, `${BASE}chat/stream/from-header/cancel`);
  });

  test("cancelOnAbort: false only drops the connection", async () => {
    const { fetch, calls } = scriptedFetch(() => sse([START], { hang: true }));
    const abort = new AbortController();
    const result = await streamChat(BASE, { message: "x" }, { onStart: () => abort.abort() }, { fetch, signal: abort.signal, cancelOnAbort: false });
    assert.equal(result.type, "cancelled");
    await tick();
    assert.equal(calls.length, 1);
  });

  test("an already aborted signal sends nothing", async () => {
    const { fetch, calls } = scriptedFetch();
    const abort = new AbortController();
    abort.abort();
    const r = recorder();
    const result = await streamChat(BASE, { message: "x" }, r.handlers, { fetch, signal: abort.signal });
    assert.equal(result.type, "cancelled");
    assert.equal(calls.length, 0);
    assert.deepEqual(r.kinds(), ["cancelled"]);
  });

  test("a handler that throws rejects the promise and drops the connection", async () => {
    const { fetch, calls } = scriptedFetch(() => sse([START, msg(1, "a")], { hang: true }));
    await assert.rejects(
      streamChat(BASE, { message: "x" }, { onText: () => { throw new Error("boom"); } }, { fetch }),
      /boom/,
    );
    assert.equal(calls[0]?.init.signal?.aborted, true);
  });
});

describe("cancelStream", () => {
  test("200: ok", async () => {
    const { fetch, calls } = scriptedFetch(() => json(200, { status: "cancelled", stream_id: "a/b" }));
    assert.deepEqual(await cancelStream("http://127.0.0.1:8000", "a/b", { fetch }), { ok: true, httpStatus: 200, status: "cancelled" });
    assert.equal(calls[0]?.url, "http://127.0.0.1:8000/chat/stream/a%2Fb/cancel");
  });

  test("404 and 409 carry the server's code (and the final status)", async () => {
    const { fetch } = scriptedFetch(
      () => json(404, { error: "no stream with id 'x'", code: "stream_not_found" }),
      () => json(409, { error: "already complete", code: "stream_finished", status: "complete" }),
    );
    assert.deepEqual(await cancelStream(BASE, "x", { fetch }), { ok: false, httpStatus: 404, code: "stream_not_found", error: "no stream with id 'x'" });
    const finished = await cancelStream(BASE, "y", { fetch });
    assert.equal(finished.code, "stream_finished");
    assert.equal(finished.status, "complete");
  });

  test("a network failure is reported, not thrown", async () => {
    const { fetch } = scriptedFetch(() => Promise.reject(new TypeError("offline")));
    assert.deepEqual(await cancelStream(BASE, "x", { fetch }), { ok: false, httpStatus: 0, code: "network_error", error: "offline" });
  });
});

describe("endpoint", () => {
  test("keeps a stage prefix and tolerates trailing slashes", () => {
    assert.equal(endpoint("https://x.execute-api.us-east-1.amazonaws.com/prod", "chat/stream"), "https://x.execute-api.us-east-1.amazonaws.com/prod/chat/stream");
    assert.equal(endpoint("https://x.lambda-url.us-east-1.on.aws/", "/chat/stream"), "https://x.lambda-url.us-east-1.on.aws/chat/stream");
    assert.equal(endpoint("http://127.0.0.1:8000", "health"), "http://127.0.0.1:8000/health");
  });
});
