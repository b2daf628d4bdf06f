import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { tokenRelayChat } from "../src/ai-sdk.js";
import { json, scriptedFetch, sse, tick } from "./helpers.js";

const BASE = "https://abc.lambda-url.eu-west-1.on.aws";
const UI = ['data: {"type":"start","messageId":"msg-s-7"}\n\n', "data: [DONE]\n\n"];

function post(chatId: string, signal?: AbortSignal): RequestInit {
  return { method: "POST", body: JSON.stringify({ id: chatId, messages: [], trigger: "submit-message" }), ...(signal ? { signal } : {}) };
}

describe("tokenRelayChat (useChat's transport helper)", () => {
  test("api and headers for DefaultChatTransport; the stream id of each chat from X-Stream-Id", async () => {
    const { fetch, calls } = scriptedFetch(
      () => sse(UI, { headers: { "x-stream-id": "s-7" } }),
      () => sse(UI, { headers: { "x-stream-id": "s-7" } }),
    );
    const relay = tokenRelayChat(BASE, { fetch, headers: { Authorization: "Bearer trk_x" } });
    assert.equal(relay.api, `${BASE}/api/chat`);
    assert.deepEqual(relay.headers, { Authorization: "Bearer trk_x" });
    assert.equal(relay.streamId("chat-1"), null);

    const response = await relay.fetch(relay.api, post("chat-1"));
    assert.equal(await response.text(), UI.join(""));
    assert.equal(relay.streamId("chat-1"), "s-7");
    await relay.fetch(`${BASE}/api/chat/chat%202/stream`, { method: "GET" }); // resumeStream(): the id is in the path
    assert.equal(relay.streamId("chat 2"), "s-7");
    assert.equal(calls.length, 2);
  });

  test("stopStream cancels the chat's stream with the same headers", async () => {
    const { fetch, calls } = scriptedFetch(
      () => sse(UI, { headers: { "x-stream-id": "s-7" } }),
      () => json(200, { status: "cancelled", stream_id: "s-7" }),
    );
    const relay = tokenRelayChat(BASE, { fetch, headers: { Authorization: "Bearer trk_x" } });
    await relay.fetch(relay.api, post("chat-1"));
    const result = await relay.stopStream("chat-1");
    assert.deepEqual(result, { ok: true, httpStatus: 200, status: "cancelled" });
    assert.equal(calls[1]?.url, `${BASE}/chat/stream/s-7/cancel`);
    assert.equal(calls[1]?.init.method, "POST");
    assert.equal((calls[1]?.init.headers as Record<string, string>).Authorization, "Bearer trk_x");
    assert.equal(await relay.stopStream("never-sent"), null);
  });

  test("a stop before the headers: the SDK's fetch rejects at once, the cancel still names the stream", async () => {
    let answer: (r: Response) => void = () => undefined;
    const { fetch, calls } = scriptedFetch(
      () => new Promise<Response>((resolve) => (answer = resolve)),
      () => json(200, { status: "cancelled", stream_id: "s-9" }),
    );
    const relay = tokenRelayChat(BASE, { fetch });
    const abort = new AbortController();
    const sent = relay.fetch(relay.api, post("chat-1", abort.signal));
    await tick();
    abort.abort();
    await assert.rejects(sent, (e: unknown) => e instanceof Error && e.name === "AbortError");
    const stopping = relay.stopStream("chat-1"); // waits for the headers that name the stream
    await tick();
    assert.equal(calls.length, 1);
    answer(sse(UI, { headers: { "x-stream-id": "s-9" }, hang: true }));
    assert.deepEqual(await stopping, { ok: true, httpStatus: 200, status: "cancelled" });
    assert.equal(calls[1]?.url, `${BASE}/chat/stream/s-9/cancel`);
    assert.equal(calls[0]?.init.signal?.aborted, true); // the request underneath is closed once named
  });

  test("a request that fails names no stream: stopStream answers null", async () => {
    const { fetch } = scriptedFetch(() => Promise.reject(new TypeError("network down")));
    const relay = tokenRelayChat(BASE, { fetch });
    await assert.rejects(relay.fetch(relay.api, post("chat-1")), TypeError);
    assert.equal(await relay.stopStream("chat-1"), null);
  });
});
