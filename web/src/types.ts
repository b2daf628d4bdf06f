/**
 * The TokenRelay wire contract (docs/protocol.md sections 1-3) as TypeScript types.
 *
 * Every transport (SSE over fetch, EventSource, WebSocket) is normalised to the
 * same handlers: `onStart`, `onText`, `onUsage`, then exactly one of `onDone`,
 * `onCancelled`, `onError`. The promise a stream returns resolves with that
 * terminal event (it never rejects).
 */

import type { PartHandlers, ThinkingBlock } from "./parts.js";

export type Role = "system" | "user" | "assistant" | "tool";

/** A tool call as an assistant message carries it back (OpenAI's shape). */
export interface ToolCallParam {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** A content part (section 13); `cache_control` marks the end of a cached prompt prefix. */
export interface TextPart {
  type: "text";
  text: string;
  cache_control?: { type: "ephemeral"; ttl?: "5m" | "1h" };
}

/** An image (section 13): a `data:image/...;base64,...` URL, or an https URL the provider fetches. */
export interface ImageUrlPart {
  type: "image_url";
  image_url: { url: string; detail?: "auto" | "low" | "high" };
  cache_control?: { type: "ephemeral"; ttl?: "5m" | "1h" };
}

export type ContentPart = TextPart | ImageUrlPart;

export interface ChatMessage {
  role: Role;
  /** A string or a list of parts (section 13); `null` only for an assistant message with `tool_calls`. */
  content: string | ContentPart[] | null;
  tool_calls?: ToolCallParam[];
  /** A `tool` message: the call it answers. */
  tool_call_id?: string;
  /** An assistant message: the signed reasoning blocks to send back (section 11). */
  thinking_blocks?: ThinkingBlock[];
}

export interface ToolDefinition {
  type: "function";
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean };
}

/** Request body (section 1). Exactly one of `message` / `messages`. */
export interface ChatRequest {
  message?: string;
  messages?: ChatMessage[];
  system?: string;
  provider?: string;
  model?: string;
  max_tokens?: number;
  temperature?: number;
  /** Sampling settings (section 1): what the provider cannot take is a 400 naming it. */
  top_p?: number;
  seed?: number;
  stop?: string | string[];
  presence_penalty?: number;
  frequency_penalty?: number;
  user?: string;
  prompt_cache_key?: string;
  /** Structured output (section 14): the answer streams as JSON text. */
  response_format?:
    | { type: "text" | "json_object" }
    | {
        type: "json_schema";
        json_schema: { name: string; schema?: Record<string, unknown>; strict?: boolean; description?: string };
      };
  tools?: ToolDefinition[];
  tool_choice?: "auto" | "none" | "required" | { type: "function"; function: { name: string } };
  parallel_tool_calls?: boolean;
  /** Reasoning settings (section 11): an effort, a token budget, or both. */
  reasoning?: { effort?: "none" | "minimal" | "low" | "medium" | "high"; budget_tokens?: number };
}

export interface StartEvent {
  stream_id: string;
  provider: string;
  model: string;
}

/**
 * A piece of output. `seq` numbers the pieces (SSE `id:`, WebSocket `seq`); `tokens` says how
 * many of the stream's chunks it carries: 1 for an SSE `message`, the WebSocket `text`
 * message's `tokens` (a message may merge several; 1 from a server that does not say).
 */
export interface TextEvent {
  text: string;
  seq: number;
  tokens: number;
}

export interface UsageEvent {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Of `completion_tokens`, when the provider counts them apart. */
  reasoning_tokens?: number;
  /** Of `prompt_tokens`: read from and written to the provider's prompt cache (section 13). */
  prompt_tokens_details?: { cached_tokens?: number; cache_write_tokens?: number };
  completion_tokens_details?: { reasoning_tokens?: number };
}

export interface DoneEvent {
  type: "done";
  status: "complete";
  stream_id: string;
  finish_reason: string | null;
  ttft_ms: number | null;
  total_time_ms: number | null;
  completion_tokens: number;
}

export type CancelReason = "client" | "disconnect" | "timeout" | (string & {});

export interface CancelledEvent {
  type: "cancelled";
  stream_id: string | null;
  reason: CancelReason;
}

/**
 * A failure. `code` is the server's machine code (`invalid_request`,
 * `rate_limited` for this API key's own limit, `upstream_rate_limited` for the model
 * provider's, ...) or one of the client's own:
 *
 *   network_error      the request or the connection failed (retryable)
 *   http_error         a non-2xx answer without TokenRelay's JSON error body
 *   bad_response       not an event stream, or an event whose data is not JSON
 *   stream_truncated   the stream ended without done / cancelled / error (retryable)
 *   connection_lost    the WebSocket dropped while the stream ran, and could not be
 *                      resumed or reconnected (retryable)
 *   connect_failed     the WebSocket never opened: a wrong URL, the server down, or a
 *                      handshake refused for a reason the browser cannot see (retryable)
 *   resume_timeout     a stream resumed after a reconnect, and nothing came for it
 *                      (its producer is gone: a restarted local stack) (retryable)
 */
export interface ChatError {
  type: "error";
  error: string;
  code: string;
  retryable: boolean;
  /** The request field at fault, for `invalid_request`. */
  field?: string;
  /** Seconds to wait before trying again: an API key over its limit (`rate_limited`). */
  retry_after?: number;
  /** HTTP status, when the error was an HTTP answer rather than an in-band event. */
  status?: number;
  stream_id?: string | null;
}

export type TerminalEvent = DoneEvent | CancelledEvent | ChatError;

/**
 * Where a transport's connection stands, for a UI: `connecting` or `reconnecting` with the
 * try under way (`attempt` of `maxAttempts`, `delayMs` after the last failure), `open`, or
 * `closed` (given up, or closed by the client).
 */
export interface ConnectionState {
  status: "connecting" | "open" | "reconnecting" | "closed";
  attempt: number;
  maxAttempts: number;
  delayMs?: number;
}

export interface StreamHandlers extends PartHandlers {
  onStart?(event: StartEvent): void;
  onText?(event: TextEvent): void;
  onUsage?(event: UsageEvent): void;
  onDone?(event: DoneEvent): void;
  onCancelled?(event: CancelledEvent): void;
  onError?(event: ChatError): void;
}

/** Calls the handler matching a terminal event. */
export function dispatchTerminal(handlers: StreamHandlers, event: TerminalEvent): void {
  if (event.type === "done") handlers.onDone?.(event);
  else if (event.type === "cancelled") handlers.onCancelled?.(event);
  else handlers.onError?.(event);
}

export function clientError(code: string, error: string, retryable: boolean, extra?: Partial<ChatError>): ChatError {
  return { type: "error", error, code, retryable, ...extra };
}

// -- decoding the server's JSON payloads ---------------------------------------

type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const str = (v: unknown, fallback = ""): string => (typeof v === "string" ? v : fallback);
const num = (v: unknown, fallback = 0): number => (typeof v === "number" && Number.isFinite(v) ? v : fallback);
const numOrNull = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

export function toStart(data: Json): StartEvent {
  return { stream_id: str(data.stream_id), provider: str(data.provider), model: str(data.model) };
}

export function toUsage(data: Json): UsageEvent {
  const prompt = num(data.prompt_tokens);
  const completion = num(data.completion_tokens);
  const usage: UsageEvent = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: num(data.total_tokens, prompt + completion) };
  if (typeof data.reasoning_tokens === "number") usage.reasoning_tokens = data.reasoning_tokens;
  return usage;
}

export function toDone(data: Json): DoneEvent {
  return {
    type: "done",
    status: "complete",
    stream_id: str(data.stream_id),
    finish_reason: typeof data.finish_reason === "string" ? data.finish_reason : null,
    ttft_ms: numOrNull(data.ttft_ms),
    total_time_ms: numOrNull(data.total_time_ms),
    completion_tokens: num(data.completion_tokens),
  };
}

export function toCancelled(data: Json): CancelledEvent {
  return { type: "cancelled", stream_id: typeof data.stream_id === "string" ? data.stream_id : null, reason: str(data.reason, "client") };
}

export function toError(data: Json, status?: number): ChatError {
  const event: ChatError = {
    type: "error",
    error: str(data.error, str(data.message, "unknown error")),
    code: str(data.code, status === undefined ? "error" : "http_error"),
    // a key over its limit says when to try again (retry_after) instead of retryable: true
    retryable: data.retryable === true || typeof data.retry_after === "number",
  };
  if (typeof data.field === "string") event.field = data.field;
  if (typeof data.retry_after === "number") event.retry_after = data.retry_after;
  if (status !== undefined) event.status = status;
  if (typeof data.stream_id === "string") event.stream_id = data.stream_id;
  return event;
}

/** `base` + `path`, keeping any path prefix of `base` (an API Gateway stage, say). */
export function endpoint(base: string, path: string): string {
  const root = new URL(base, typeof location === "undefined" ? undefined : location.href);
  if (!root.pathname.endsWith("/")) root.pathname += "/";
  return new URL(path.replace(/^\/+/, ""), root).toString();
}
