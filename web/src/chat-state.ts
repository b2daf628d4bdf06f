/**
 * What a `ChatController` publishes (`ChatState`), and `ProgressMeter`, which computes its
 * live figures from the arrival times of the text.
 *
 * Tokens are what each text event says it carries (`TextEvent.tokens`: 1 per SSE
 * message; a WebSocket `text` message may merge several), replaced by the server's count
 * once usage or done gives it. Tokens per second is the decode speed: the tokens that
 * arrived after the first text, over the time since it. Counting tokens rather than
 * events makes it read the same over every transport; counting from the first text
 * leaves the time to first token out of it.
 */

import type { ChatPart, ThinkingBlock, ToolCall } from "./parts.js";
import type { CancelReason, ChatError, ConnectionState, UsageEvent } from "./types.js";

export type Transport = "sse" | "eventsource" | "websocket";
export type ChatStatus = "idle" | "streaming" | "done" | "cancelled" | "error";

export interface ChatState {
  status: ChatStatus;
  isStreaming: boolean;
  content: string;
  /** The reasoning text so far (section 11). */
  reasoning: string;
  /** The model's tool calls, each with its arguments as they stream. */
  toolCalls: ToolCall[];
  /** The answer in order: runs of text, of reasoning, and tool calls. */
  parts: ChatPart[];
  /** Signed or redacted reasoning blocks, to send back with the assistant message of a tool loop. */
  thinkingBlocks: ThinkingBlock[];
  error: ChatError | null;
  usage: UsageEvent | null;
  progress: ChatProgress;
  streamId: string | null;
  provider: string | null;
  model: string | null;
  finishReason: string | null;
  cancelReason: CancelReason | null;
  transport: Transport;
  /** The running stream's connection, while it is not simply open: (re)connecting, or given up. */
  connection: ConnectionState | null;
}

export interface ChatProgress {
  /** Milliseconds from `send` to the first text, measured here. */
  ttftMs: number | null;
  /** Tokens so far: what the text events carried, replaced by the server's count when usage or done arrives. */
  tokens: number;
  /** Tokens per second after the first text (decode speed). */
  tokensPerSecond: number | null;
  /** Milliseconds since `send`. */
  elapsedMs: number;
  /** Whether `tokens` is the server's count (usage, done) rather than the running count. */
  exact: boolean;
}

export const EMPTY_PROGRESS: ChatProgress = { ttftMs: null, tokens: 0, tokensPerSecond: null, elapsedMs: 0, exact: false };

export function initialState(transport: Transport = "sse"): ChatState {
  return {
    status: "idle",
    isStreaming: false,
    content: "",
    reasoning: "",
    toolCalls: [],
    parts: [],
    thinkingBlocks: [],
    error: null,
    usage: null,
    progress: EMPTY_PROGRESS,
    streamId: null,
    provider: null,
    model: null,
    finishReason: null,
    cancelReason: null,
    transport,
    connection: null,
  };
}

export class ProgressMeter {
  private firstTextAt: number | null = null;
  private lastTextAt: number | null = null;
  private tokens = 0;
  private firstTokens = 0;
  private exactTokens: number | null = null;

  constructor(private readonly startedAt: number) {}

  /** Text carrying `tokens` tokens arrived at `now`. */
  text(tokens: number, now: number): void {
    if (this.firstTextAt === null) {
      this.firstTextAt = now;
      this.firstTokens = tokens;
    }
    this.lastTextAt = now;
    this.tokens += tokens;
  }

  /** The server's count (usage, done). */
  exact(tokens: number): void {
    this.exactTokens = tokens;
  }

  read(now: number): ChatProgress {
    const tokens = this.exactTokens ?? this.tokens;
    const window = this.firstTextAt !== null && this.lastTextAt !== null ? this.lastTextAt - this.firstTextAt : 0;
    const after = tokens - this.firstTokens;
    return {
      ttftMs: this.firstTextAt === null ? null : Math.round(this.firstTextAt - this.startedAt),
      tokens,
      tokensPerSecond: window > 0 && after > 0 ? (after * 1000) / window : null,
      elapsedMs: Math.round(now - this.startedAt),
      exact: this.exactTokens !== null,
    };
  }
}
