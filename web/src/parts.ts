/**
 * Reasoning and tool calls (docs/protocol.md section 11): the events, their decoding from each
 * transport, and `PartsBuilder`, which folds them into what a UI shows.
 *
 * Every part has the stream's `seq` (SSE `id:`, WebSocket `seq`), like text: the transports
 * de-duplicate parts by it after a resume, so a tool call cut in the middle continues exactly.
 * Handlers: `onReasoning`, `onToolCallStart`, `onToolCallDelta`, `onToolCallEnd`, and `onPart`
 * for every part (text included), in stream order.
 */

export interface ReasoningEvent {
  kind: "reasoning";
  /** Reasoning text ("" on a part that only signs or redacts). */
  text: string;
  seq: number;
  tokens: number;
  /** Closes a signed block (Anthropic, Bedrock): send it back with `thinking_blocks`. */
  signature?: string;
  /** An encrypted (redacted) block: opaque base64, sent back as is. */
  redacted?: string;
}

export interface ToolCallStartEvent {
  kind: "tool_call_start";
  index: number;
  id: string;
  name: string;
  seq: number;
}

export interface ToolCallDeltaEvent {
  kind: "tool_call_delta";
  index: number;
  /** A fragment of the JSON arguments. */
  arguments: string;
  seq: number;
  tokens: number;
}

export interface ToolCallEndEvent {
  kind: "tool_call_end";
  index: number;
  seq: number;
}

export type PartEvent = ReasoningEvent | ToolCallStartEvent | ToolCallDeltaEvent | ToolCallEndEvent;

export interface PartHandlers {
  onReasoning?(event: ReasoningEvent): void;
  onToolCallStart?(event: ToolCallStartEvent): void;
  onToolCallDelta?(event: ToolCallDeltaEvent): void;
  onToolCallEnd?(event: ToolCallEndEvent): void;
}

/** The SSE event names (and WebSocket message types) of the parts that are not text. */
export const PART_EVENTS: readonly string[] = ["reasoning", "tool_call_start", "tool_call_delta", "tool_call_end"];

type Json = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === "string" ? v : "");
const int = (v: unknown): number => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : 0);
const tokensOf = (v: unknown): number => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : 1);

/**
 * A part from its event `name` and `data`: SSE (reasoning text in `text`) or a WebSocket message
 * (in `content`, with `tokens`). `null` for a name that is not a part.
 */
export function toPart(name: string, data: Json, seq: number): PartEvent | null {
  switch (name) {
    case "reasoning": {
      const event: ReasoningEvent = { kind: "reasoning", text: str(data.text ?? data.content), seq, tokens: tokensOf(data.tokens) };
      if (typeof data.signature === "string" && data.signature) event.signature = data.signature;
      if (typeof data.redacted === "string" && data.redacted) event.redacted = data.redacted;
      if (event.signature !== undefined || event.redacted !== undefined) event.tokens = 0;
      return event;
    }
    case "tool_call_start":
      return { kind: "tool_call_start", index: int(data.index), id: str(data.id), name: str(data.name), seq };
    case "tool_call_delta":
      return { kind: "tool_call_delta", index: int(data.index), arguments: str(data.arguments), seq, tokens: tokensOf(data.tokens) };
    case "tool_call_end":
      return { kind: "tool_call_end", index: int(data.index), seq };
    default:
      return null;
  }
}

export function dispatchPart(handlers: PartHandlers, part: PartEvent): void {
  if (part.kind === "reasoning") handlers.onReasoning?.(part);
  else if (part.kind === "tool_call_start") handlers.onToolCallStart?.(part);
  else if (part.kind === "tool_call_delta") handlers.onToolCallDelta?.(part);
  else handlers.onToolCallEnd?.(part);
}

// -- what a UI shows -------------------------------------------------------------

/** A tool call as it streams: `arguments` grows fragment by fragment; `done` once it ended. */
export interface ToolCall {
  index: number;
  id: string;
  name: string;
  arguments: string;
  done: boolean;
}

/** A signed or redacted reasoning block, in the shape a later turn sends back (`thinking_blocks`). */
export type ThinkingBlock = { type: "thinking"; thinking: string; signature: string } | { type: "redacted_thinking"; data: string };

/** The answer so far, in order: runs of text, of reasoning, and tool calls. */
export type ChatPart =
  | { kind: "text"; text: string }
  | { kind: "reasoning"; text: string; signature?: string; redacted?: string }
  | { kind: "tool_call"; call: ToolCall };

/**
 * Folds part events into `parts` (consecutive text or reasoning joined; a signature closes its
 * reasoning block), `reasoning` (all reasoning text), `toolCalls` and `thinkingBlocks`. Immutable
 * snapshots: each `snapshot()` returns new arrays only for what changed.
 */
export class PartsBuilder {
  private list: ChatPart[] = [];
  private calls = new Map<number, ToolCall>();
  private reasoningText = "";
  private blocks: ThinkingBlock[] = [];
  private blockText = "";

  text(text: string): void {
    const last = this.list[this.list.length - 1];
    if (last !== undefined && last.kind === "text") this.list[this.list.length - 1] = { kind: "text", text: last.text + text };
    else this.list.push({ kind: "text", text });
  }

  /** Take one part; returns the tool call that it completed, if any. */
  add(part: PartEvent): ToolCall | null {
    if (part.kind === "reasoning") {
      this.reasoning(part);
      return null;
    }
    if (part.kind === "tool_call_start") {
      const call: ToolCall = { index: part.index, id: part.id, name: part.name, arguments: "", done: false };
      this.calls.set(part.index, call);
      this.list.push({ kind: "tool_call", call });
      return null;
    }
    const call = this.calls.get(part.index);
    if (call === undefined) return null;
    const next: ToolCall =
      part.kind === "tool_call_delta" ? { ...call, arguments: call.arguments + part.arguments } : { ...call, done: true };
    this.calls.set(part.index, next);
    const at = this.list.findIndex((p) => p.kind === "tool_call" && p.call.index === part.index);
    if (at >= 0) this.list[at] = { kind: "tool_call", call: next };
    return part.kind === "tool_call_end" ? next : null;
  }

  private reasoning(part: ReasoningEvent): void {
    const last = this.list[this.list.length - 1];
    if (part.redacted !== undefined) {
      this.list.push({ kind: "reasoning", text: "", redacted: part.redacted });
      this.blocks.push({ type: "redacted_thinking", data: part.redacted });
      return;
    }
    const open = last !== undefined && last.kind === "reasoning" && last.signature === undefined && last.redacted === undefined;
    const text = (open ? last.text : "") + part.text;
    const block: ChatPart = { kind: "reasoning", text, ...(part.signature !== undefined ? { signature: part.signature } : {}) };
    if (open) this.list[this.list.length - 1] = block;
    else this.list.push(block);
    this.reasoningText += part.text;
    this.blockText += part.text;
    if (part.signature !== undefined) {
      this.blocks.push({ type: "thinking", thinking: this.blockText, signature: part.signature });
      this.blockText = "";
    }
  }

  snapshot(): { parts: ChatPart[]; reasoning: string; toolCalls: ToolCall[]; thinkingBlocks: ThinkingBlock[] } {
    return {
      parts: [...this.list],
      reasoning: this.reasoningText,
      toolCalls: [...this.calls.values()].sort((a, b) => a.index - b.index),
      thinkingBlocks: [...this.blocks],
    };
  }
}
