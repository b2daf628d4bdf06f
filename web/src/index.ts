/** TokenRelay browser client. The React hook is in `@tokenrelay/client/react`. */

export { ChatController, initialState } from "./chat.js";
export type { ChatOptions, ChatProgress, ChatState, ChatStatus, Transport } from "./chat.js";
export { eventSourceUrl, streamChatEventSource } from "./eventsource.js";
export type { EventSourceFactory, EventSourceLike, EventSourceOptions, QueryRequest } from "./eventsource.js";
export { tokenRelayChat } from "./ai-sdk.js";
export type { TokenRelayChat } from "./ai-sdk.js";
export { cancelStream, checkKey, streamChat } from "./http.js";
export type { CancelOptions, CancelResult, FetchLike, HttpOptions, StreamOptions } from "./http.js";
export { parseSse, SseParser } from "./sse.js";
export type { SseEvent, SseParserCallbacks } from "./sse.js";
export { describeError } from "./describe.js";
export { endpoint } from "./types.js";
export { dispatchPart, PART_EVENTS, PartsBuilder, toPart } from "./parts.js";
export type {
  ChatPart,
  PartEvent,
  PartHandlers,
  ReasoningEvent,
  ThinkingBlock,
  ToolCall,
  ToolCallDeltaEvent,
  ToolCallEndEvent,
  ToolCallStartEvent,
} from "./parts.js";
export type {
  CancelledEvent,
  CancelReason,
  ChatMessage,
  ConnectionState,
  ChatRequest,
  DoneEvent,
  ChatError,
  Role,
  StartEvent,
  StreamHandlers,
  TerminalEvent,
  TextEvent,
  ToolCallParam,
  ToolDefinition,
  UsageEvent,
} from "./types.js";
export { backoffDelay, DEFAULT_BACKOFF, DEFAULT_MAX_CONNECT_ATTEMPTS, DEFAULT_MAX_RECONNECT_ATTEMPTS } from "./reconnect.js";
export type { Backoff } from "./reconnect.js";
export { keyProtocols, TokenRelaySocket } from "./websocket.js";
export type { ChatHandle, SendOptions, SocketOptions, SocketStatus, StatusDetail, WebSocketFactory, WebSocketLike } from "./websocket.js";
