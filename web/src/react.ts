/**
 * `useStreamingChat`: the React hook.
 *
 *   const chat = useStreamingChat({ baseUrl: FUNCTION_URL });            // or transport: "websocket", wsUrl
 *   <button onClick={() => chat.send("Hello")} disabled={chat.isStreaming}>Send</button>
 *   <button onClick={chat.cancel} disabled={!chat.isStreaming}>Stop</button>
 *   <p>{chat.content}</p>  {chat.error && <p>{chat.error.error}</p>}
 *   <details><summary>Reasoning</summary>{chat.reasoning}</details>
 *   {chat.toolCalls.map((c) => <pre key={c.index}>{c.name}({c.arguments})</pre>)}   // as they stream
 *
 * `options.onToolCall(call)` fires once per tool call, when its arguments are complete;
 * `chat.parts` is the whole answer in order (text, reasoning, tool calls: docs/protocol.md §11).
 *
 * State comes from a `ChatController` through `useSyncExternalStore`: text is
 * published once per animation frame (not once per token), and on unmount the
 * stream is aborted (and cancelled on the server) and no update follows.
 * Options may change between renders; they apply from the next `send`.
 */

import { useEffect, useMemo, useRef, useSyncExternalStore } from "react";

import { ChatController, type ChatOptions, type ChatState } from "./chat.js";
import type { ChatRequest, TerminalEvent } from "./types.js";

export interface UseStreamingChat extends ChatState {
  /** Start a turn: a prompt, or a full request body. A running turn is abandoned. */
  send(request: ChatRequest | string): Promise<TerminalEvent>;
  /** Ask the server to stop; the state becomes `cancelled` when it confirms. */
  cancel(): void;
  /** Back to idle (a running turn is abandoned). */
  reset(): void;
}

export function useStreamingChat(options: ChatOptions = {}): UseStreamingChat {
  const ref = useRef<ChatController | null>(null);
  if (ref.current === null) ref.current = new ChatController(options);
  const controller = ref.current;

  useEffect(() => {
    controller.configure(options);
  });
  useEffect(() => {
    controller.attach();
    return () => controller.detach();
  }, [controller]);

  const state = useSyncExternalStore(controller.subscribe, controller.getSnapshot, controller.getSnapshot);
  return useMemo(
    () => ({ ...state, send: controller.send, cancel: controller.cancel, reset: controller.reset }),
    [state, controller],
  );
}

export { ChatController } from "./chat.js";
export type { ChatOptions, ChatProgress, ChatState, ChatStatus, Transport } from "./chat.js";
export type { ChatPart, ThinkingBlock, ToolCall } from "./parts.js";
