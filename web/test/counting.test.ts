/**
 * Tokens per second reads the same over SSE and over the WebSocket (issue 20: 19.6 vs 33.0).
 *
 * One answer of 120 tokens produced every 30 ms, delivered two ways on the same manual
 * clock: over SSE one `message` per token as it is produced; over the WebSocket as the
 * worker's coalescing sender posts it (the first token at once, then whatever was produced
 * since the last post, every 50 ms, with `tokens` saying how many). Mid-stream and at the
 * end, the two controllers' figures agree within 10 %; counting messages, as before, read
 * the WebSocket at about half the rate.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ChatController } from "../src/chat.js";
import { ProgressMeter } from "../src/chat-state.js";
import { FakeWebSocket, msg, scriptedFetch, START, tick } from "./helpers.js";

const TOKENS = 120;
const PACE_MS = 30;
const FLUSH_MS = 50;

/** Production time of each token (ms after the first). */
const produced = Array.from({ length: TOKENS }, (_, i) => i * PACE_MS);

/** The WebSocket `text` messages the coalescing sender posts: [time, tokens in it]. */
function coalesced(): Array<[number, number]> {
  const posts: Array<[number, number]> = [[0, 1]]; // the first text goes out at once
  let next = 1;
  for (let at = FLUSH_MS; next < TOKENS; at += FLUSH_MS) {
    let count = 0;
    while (next < TOKENS && (produced[next] ?? Infinity) <= at) [next, count] = [next + 1, count + 1];
    if (count > 0) posts.push([at, count]);
  }
  return posts;
}

function live(): { response: Response; push(text: string): Promise<void> } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  return {
    response: new Response(stream, { headers: { "content-type": "text/event-stream" } }),
    async push(text) {
      controller.enqueue(new TextEncoder().encode(text));
      await tick();
    },
  };
}

describe("tokens per second over SSE and WebSocket", () => {
  test("the same answer at the same pace reads within 10 % over both, mid-stream and at the end", async () => {
    let clock = 0;
    // every text is published at once (a frame that runs immediately)
    const frameNow = (callback: () => void): null => {
      callback();
      return null;
    };
    const common = { now: () => clock, requestFrame: frameNow, cancelFrame: () => undefined };
    const body = live();
    const sse = new ChatController({ ...common, baseUrl: "http://api.test", fetch: scriptedFetch(() => body.response).fetch });
    FakeWebSocket.all = [];
    const ws = new ChatController({ ...common, transport: "websocket", wsUrl: "ws://gw.test", WebSocket: FakeWebSocket });
    void sse.send("x");
    void ws.send("x");
    await body.push(START);
    const socket = FakeWebSocket.last();
    socket.open();
    const requestId = String(socket.sent[0]?.request_id);
    const say = (m: object): void => socket.receive({ request_id: requestId, stream_id: "w-1", ...m });
    say({ type: "start", provider: "echo", model: "echo-1" });

    // both streams on one timeline
    const events: Array<[number, () => Promise<void> | void]> = [];
    produced.forEach((at, i) => events.push([at, () => body.push(msg(i + 1, `t${i} `))]));
    coalesced().forEach(([at, tokens], i) => events.push([at, () => say({ type: "text", content: "…", seq: i + 1, tokens })]));
    events.sort((a, b) => a[0] - b[0]);
    const midway = (TOKENS * PACE_MS) / 2;
    let sampled = false;
    for (const [at, deliver] of events) {
      if (!sampled && at > midway) {
        sampled = true;
        const [a, b] = [sse.getSnapshot().progress, ws.getSnapshot().progress];
        assertClose(a.tokensPerSecond, b.tokensPerSecond, "mid-stream");
        assert.ok(Math.abs(a.tokens - b.tokens) <= 2, `tokens so far: sse ${a.tokens}, websocket ${b.tokens}`);
      }
      clock = at;
      await deliver();
    }
    const end = { sse: sse.getSnapshot().progress, ws: ws.getSnapshot().progress };
    assert.equal(end.ws.tokens, TOKENS);
    assert.equal(end.sse.tokens, TOKENS);
    assertClose(end.sse.tokensPerSecond, end.ws.tokensPerSecond, "at the end");
    assertClose(end.sse.tokensPerSecond, 1000 / PACE_MS, "the real pace");
    sse.detach();
    ws.detach();
  });

  test("counting messages instead (the old way) reads the WebSocket at about half the rate", () => {
    const byTokens = new ProgressMeter(0);
    const byMessages = new ProgressMeter(0);
    for (const [at, tokens] of coalesced()) {
      byTokens.text(tokens, at);
      byMessages.text(1, at);
    }
    const real = 1000 / PACE_MS;
    assertClose(byTokens.read(0).tokensPerSecond, real, "counting tokens");
    const old = byMessages.read(0).tokensPerSecond ?? 0;
    assert.ok(old < real * 0.7, `counting messages reads ${old.toFixed(1)} tok/s for a real ${real.toFixed(1)}`);
  });
});

function assertClose(a: number | null, b: number | null, what: string): void {
  assert.ok(a !== null && b !== null, `${what}: no rate (${a}, ${b})`);
  assert.ok(Math.abs(a - b) / b <= 0.1, `${what}: ${a.toFixed(2)} vs ${b.toFixed(2)} tok/s differ by more than 10 %`);
}
