/**
 * Browser test page for the Vercel AI SDK's `useChat` against TokenRelay's `/api/chat`
 * (driven by tests/browser/test_ai_sdk.py): the real `ai` and `@ai-sdk/react` packages, with
 * `DefaultChatTransport` and TokenRelay's `tokenRelayChat` helper (explicit cancel on stop).
 *
 * Query: `api` (TokenRelay's base URL), `chat` (the chat id: the same after a reload), `resume=1`
 * (useChat's `resume: true`). Messages are kept in sessionStorage, as an app keeps them, so a reload
 * shows what the page had and the resumed stream replaces the partial answer.
 */

import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport, lastAssistantMessageIsCompleteWithToolCalls, type UIMessage } from "ai";
import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";

import { tokenRelayChat } from "../src/ai-sdk.js";
import type { CancelResult } from "../src/calls.js";

const params = new URLSearchParams(location.search);
const chatId = params.get("chat") ?? "ai-sdk-test";
const storageKey = `tokenrelay-ai-sdk:${chatId}`;
const relay = tokenRelayChat(params.get("api") ?? location.origin);
const fields: Record<string, unknown> = { provider: "echo" }; // TokenRelay's request fields, beside useChat's
const transport = new DefaultChatTransport({ api: relay.api, headers: relay.headers, fetch: relay.fetch, body: () => fields });

const WEATHER = {
  type: "function",
  function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
};

interface Probe {
  streamId: () => string | null;
  cancels: (CancelResult | null)[];
  toolCalls: number;
  finishes: number;
}

declare global {
  interface Window {
    aiSdk: Probe;
  }
}

window.aiSdk = { streamId: () => relay.streamId(chatId), cancels: [], toolCalls: 0, finishes: 0 };

function saved(): UIMessage[] {
  try {
    return JSON.parse(sessionStorage.getItem(storageKey) ?? "[]") as UIMessage[];
  } catch {
    return [];
  }
}

function Part({ part }: { part: UIMessage["parts"][number] }) {
  if (part.type === "text") return <span data-testid="text">{part.text}</span>;
  if (part.type === "reasoning") return <em data-testid="reasoning">{part.text}</em>;
  if (part.type.startsWith("tool-") && "toolCallId" in part) {
    return (
      <div data-testid="tool" data-name={part.type.slice(5)} data-state={part.state}>
        <code data-testid="tool-input">{JSON.stringify(part.input ?? null)}</code>
        <code data-testid="tool-output">{part.state === "output-available" ? JSON.stringify(part.output) : ""}</code>
      </div>
    );
  }
  return null;
}

function App() {
  const [input, setInput] = useState("");
  const [tools, setTools] = useState(false);
  const chat = useChat({
    id: chatId,
    transport,
    messages: saved(),
    resume: params.get("resume") === "1",
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
    onToolCall: ({ toolCall }) => {
      window.aiSdk.toolCalls += 1;
      const city = (toolCall.input as { city?: string }).city ?? "";
      void chat.addToolOutput({ tool: toolCall.toolName, toolCallId: toolCall.toolCallId, output: { sky: "sunny", city } });
    },
    onFinish: () => {
      window.aiSdk.finishes += 1;
    },
  });
  useEffect(() => {
    sessionStorage.setItem(storageKey, JSON.stringify(chat.messages));
  }, [chat.messages]);

  const send = (): void => {
    if (tools) Object.assign(fields, { tools: [WEATHER], reasoning: { effort: "low" } });
    else for (const name of ["tools", "reasoning"]) delete fields[name];
    void chat.sendMessage({ text: input });
  };
  const stop = (): void => {
    void chat.stop();
    void relay.stopStream(chat.id).then((result) => window.aiSdk.cancels.push(result));
  };
  return (
    <main>
      <textarea data-testid="prompt" value={input} onChange={(e) => setInput(e.target.value)} />
      <label>
        <input data-testid="want-tools" type="checkbox" checked={tools} onChange={(e) => setTools(e.target.checked)} />
        tools and reasoning
      </label>
      <button data-testid="send" onClick={send}>Send</button>
      <button data-testid="stop" onClick={stop}>Stop</button>
      <p data-testid="status">{chat.status}</p>
      <p data-testid="error">{chat.error?.message ?? ""}</p>
      {chat.messages.map((message) => (
        <section key={message.id} data-testid={`message-${message.role}`} data-id={message.id}>
          {message.parts.map((part, i) => (
            <Part key={i} part={part} />
          ))}
        </section>
      ))}
    </main>
  );
}

const root = document.getElementById("root");
if (root === null) throw new Error("no #root");
createRoot(root).render(<App />);
