/** TokenRelay browser client. The React hook is in `@tokenrelay/client/react`. */

export { ChatController, initialState } from "./chat.js";
export type { ChatOptions, ChatProgress, ChatState, ChatStatus, Transport } from "./chat.js";
export { eventSourceUrl, streamChatEventSource } from "./eventsource.js";
export type { EventSourceFactory, EventSourceLike, EventSourceOptions, QueryRequest } from "./eventsource.js";
export { cancelStream, streamChat } from "./http.js";
export type { CancelOptions, CancelResult, FetchLike, HttpOptions, StreamOptions } from "./http.js";
export { parseSse, SseParser } from "./sse.js";
export type { SseEvent, SseParserCallbacks } from "./sse.js";
export { describeError } from "./describe.js";
export { endpoint } from "./types.js";
export type {
  CancelledEvent,
  CancelReason,
  ChatMessage,
  ChatRequest,
  DoneEvent,
  ChatError,
  Role,
  StartEvent,
  StreamHandlers,
  TerminalEvent,
  TextEvent,
  UsageEvent,
} from "./types.js";
export { backoffDelay, DEFAULT_BACKOFF, keyProtocols, TokenRelaySocket } from "./websocket.js";
export type { Backoff, ChatHandle, SendOptions, SocketOptions, SocketStatus, WebSocketFactory, WebSocketLike } from "./websocket.js";
