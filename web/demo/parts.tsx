/**
 * The demo's reasoning and tool calls (docs/protocol.md section 11): the request options that ask
 * for them, and how they show as they stream.
 *
 * With the offline `echo` provider: "Reasoning" makes it think first ("Thinking about: ..."),
 * and "Tools" offers `get_weather`, which echo calls when the prompt names it.
 */

import type { ChatRequest, ToolDefinition } from "../src/types.js";
import type { ThinkingBlock, ToolCall } from "../src/parts.js";

export const WEATHER_TOOL: ToolDefinition = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

/** The request fields for the options ticked on the page. */
export function partOptions(reasoning: boolean, tools: boolean): Partial<ChatRequest> {
  return {
    ...(reasoning ? { reasoning: { effort: "low" } } : {}),
    ...(tools ? { tools: [WEATHER_TOOL] } : {}),
  };
}

export function Reasoning({ text, blocks, streaming }: { text: string; blocks: ThinkingBlock[]; streaming: boolean }) {
  if (!text && blocks.length === 0) return null;
  const signed = blocks.filter((b) => b.type === "thinking").length;
  const redacted = blocks.length - signed;
  return (
    <details className="reasoning" data-testid="reasoning" open={streaming}>
      <summary>
        Reasoning{streaming ? " …" : ""}
        {signed ? <span className="meta"> · signed</span> : null}
        {redacted ? <span className="meta"> · {redacted} redacted</span> : null}
      </summary>
      <div className="reasoning-text" data-testid="reasoning-text">
        {text}
      </div>
    </details>
  );
}

export function ToolCalls({ calls }: { calls: ToolCall[] }) {
  if (calls.length === 0) return null;
  return (
    <div className="tool-calls" data-testid="tool-calls">
      {calls.map((call) => (
        <div className={`tool-call ${call.done ? "done" : "streaming"}`} key={call.index} data-testid="tool-call">
          <span className="tool-name" data-testid="tool-call-name">
            {call.name}
          </span>
          <code data-testid="tool-call-args">{call.arguments || "…"}</code>
          <span className="meta" data-testid="tool-call-state">
            {call.done ? `call ${call.id}` : "streaming arguments…"}
          </span>
        </div>
      ))}
    </div>
  );
}
