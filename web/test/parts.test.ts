import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ChatController } from "../src/chat.js";
import { streamChat } from "../src/http.js";
import { PartsBuilder, toPart, type ToolCall } from "../src/parts.js";
import { DONE, msg, recorder, scriptedFetch, sse, START, tick } from "./helpers.js";

const part = (name: string, seq: number, data: object): string => `event: ${name}\nid: ${seq}\ndata: ${JSON.stringify(data)}\n\n`;
const TOOL_DONE = DONE.replace('"finish_reason":"stop"', '"finish_reason":"tool_calls"');
const STREAM = [
  START,
  part("reasoning", 1, { text: "Let me " }),
  part("reasoning", 2, { text: "think." }),
  part("reasoning", 3, { text: "", signature: "sig-1" }),
  msg(4, "Checking. "),
  part("tool_call_start", 5, { index: 0, id: "call_1", name: "get_weather" }),
  part("tool_call_delta", 6, { index: 0, arguments: '{"city":' }),
  part("tool_call_delta", 7, { index: 0, arguments: '"Paris"}' }),
  part("tool_call_end", 8, { index: 0 }),
  TOOL_DONE,
];

describe("parts", () => {
  test("SSE parts reach their handlers in order, with their seq", async () => {
    const { fetch } = scriptedFetch(() => sse(STREAM));
    const rec = recorder();
    const end = await streamChat("http://api.test", { message: "hi" }, rec.handlers, { fetch });

    assert.equal(end.type, "done");
    assert.deepEqual(rec.kinds(), [
      "start",
      "reasoning",
      "reasoning",
      "reasoning",
      "text",
      "tool_call_start",
      "tool_call_delta",
      "tool_call_delta",
      "tool_call_end",
      "done",
    ]);
    assert.deepEqual(rec.log[3]![1], { kind: "reasoning", text: "", seq: 3, tokens: 0, signature: "sig-1" });
    assert.deepEqual(rec.log[5]![1], { kind: "tool_call_start", index: 0, id: "call_1", name: "get_weather", seq: 5 });
    assert.equal(rec.text(), "Checking. ");
  });

  test("a WebSocket message decodes the same as its SSE event", () => {
    assert.deepEqual(toPart("reasoning", { content: "hm", seq: 4, tokens: 3 }, 4), { kind: "reasoning", text: "hm", seq: 4, tokens: 3 });
    assert.deepEqual(toPart("tool_call_delta", { index: 1, arguments: "{}", tokens: 2 }, 9), {
      kind: "tool_call_delta",
      index: 1,
      arguments: "{}",
      seq: 9,
      tokens: 2,
    });
    assert.equal(toPart("message", { text: "x" }, 1), null);
  });

  test("PartsBuilder keeps the answer in order and the blocks to send back", () => {
    const b = new PartsBuilder();
    b.add({ kind: "reasoning", text: "a", seq: 1, tokens: 1 });
    b.add({ kind: "reasoning", text: "b", seq: 2, tokens: 1 });
    b.add({ kind: "reasoning", text: "", seq: 3, tokens: 0, signature: "s" });
    b.add({ kind: "reasoning", text: "", seq: 4, tokens: 0, redacted: "eA==" });
    b.text("Hi");
    b.add({ kind: "tool_call_start", index: 0, id: "c", name: "f", seq: 6 });
    b.add({ kind: "tool_call_delta", index: 0, arguments: "{}", seq: 7, tokens: 1 });
    const done = b.add({ kind: "tool_call_end", index: 0, seq: 8 });

    const snap = b.snapshot();
    assert.deepEqual(done, { index: 0, id: "c", name: "f", arguments: "{}", done: true });
    assert.equal(snap.reasoning, "ab");
    assert.deepEqual(snap.thinkingBlocks, [
      { type: "thinking", thinking: "ab", signature: "s" },
      { type: "redacted_thinking", data: "eA==" },
    ]);
    assert.deepEqual(
      snap.parts.map((p) => p.kind),
      ["reasoning", "reasoning", "text", "tool_call"],
    );
  });

  test("the controller shows reasoning and tool calls as they stream, and calls onToolCall once each", async () => {
    const { fetch } = scriptedFetch(() => sse(STREAM));
    const calls: ToolCall[] = [];
    const controller = new ChatController({ baseUrl: "http://api.test", fetch, onToolCall: (c) => calls.push(c), requestFrame: (cb) => setTimeout(cb, 0) });
    const end = await controller.send("hi");
    await tick(5);

    const state = controller.getSnapshot();
    assert.equal(end.type, "done");
    assert.equal(state.reasoning, "Let me think.");
    assert.equal(state.content, "Checking. ");
    assert.deepEqual(state.toolCalls, [{ index: 0, id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}', done: true }]);
    assert.deepEqual(calls, state.toolCalls);
    assert.equal(state.finishReason, "tool_calls");
    assert.deepEqual(state.thinkingBlocks, [{ type: "thinking", thinking: "Let me think.", signature: "sig-1" }]);
  });
});
