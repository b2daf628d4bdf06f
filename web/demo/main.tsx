/**
 * TokenRelay demo page: the React hook over SSE (fetch or EventSource) or WebSocket.
 *
 * Base URLs come from the query string, then from the fields on the page:
 *   ?api=https://abc.lambda-url.eu-west-1.on.aws&ws=wss://xyz.execute-api.eu-west-1.amazonaws.com/prod
 * Defaults: the page's own origin for HTTP (scripts/dev serves it at /demo/),
 * and ws://<same host>:8001 for the local WebSocket gateway.
 * Also accepted: transport=sse|eventsource|websocket, provider, model, prompt, reasoning=1, tools=1.
 *
 * The API key is typed into its field, never taken from the URL: it is kept in this
 * tab's sessionStorage only, logged nowhere, and sent on every transport (Authorization
 * over fetch, access_token with EventSource, the bearer subprotocol on the WebSocket).
 */

import { StrictMode, useState, type FormEvent } from "react";
import { createRoot } from "react-dom/client";

import { describeError } from "../src/describe.js";
import { useStreamingChat, type Transport, type UseStreamingChat } from "../src/react.js";
import { whatToDo } from "./advice.js";
import { partOptions, Reasoning, ToolCalls } from "./parts.js";
import { useDeployment } from "./deployment.js";
import { ImageAttach, transportProblem, useImage, userTurn } from "./image.js";

const params = new URLSearchParams(location.search);
const TRANSPORTS: Array<[Transport, string]> = [
  ["sse", "SSE (fetch)"],
  ["eventsource", "SSE (EventSource)"],
  ["websocket", "WebSocket"],
];

function defaultApi(): string {
  return params.get("api") ?? (location.protocol.startsWith("http") ? location.origin : "http://127.0.0.1:8000");
}

function defaultWs(): string {
  const given = params.get("ws");
  if (given !== null) return given;
  const host = location.hostname || "127.0.0.1";
  return host === "127.0.0.1" || host === "localhost" ? `ws://${host}:8001` : "";
}

function asTransport(value: string | null): Transport {
  return value === "eventsource" || value === "websocket" ? value : "sse";
}

function formatMs(ms: number | null): string {
  return ms === null ? "–" : `${ms} ms`;
}

function Figure({ name, value, id }: { name: string; value: string; id: string }) {
  return (
    <div className="figure">
      <span>{name}</span>
      <b data-testid={id}>{value}</b>
    </div>
  );
}

/** The pill: the status, or where the connection stands while it is being (re)made. */
function statusText(chat: UseStreamingChat): string {
  const c = chat.connection;
  if (chat.isStreaming && c !== null && (c.status === "reconnecting" || (c.status === "connecting" && c.attempt > 1))) {
    return `${c.status}, attempt ${c.attempt} of ${c.maxAttempts}`;
  }
  return `${chat.status}${chat.cancelReason ? ` (${chat.cancelReason})` : ""}`;
}

const KEY_ITEM = "tokenrelay-api-key"; // sessionStorage: this tab only, gone when it closes

function storedKey(): string {
  return sessionStorage.getItem(KEY_ITEM) ?? "";
}

function storeKey(key: string): void {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

/** This tab's client id: the owner of its WebSocket streams, so a dropped one can be resumed. */
const CLIENT_ID = ((): string => {
  const key = "tokenrelay-client-id";
  const id = sessionStorage.getItem(key) ?? `demo-${globalThis.crypto?.randomUUID?.() ?? Math.random().toString(36).slice(2)}`;
  sessionStorage.setItem(key, id);
  return id;
})();

function App() {
  const [api, setApi] = useState(defaultApi);
  const [ws, setWs] = useState(defaultWs);
  const [transport, setTransport] = useState<Transport>(asTransport(params.get("transport")));
  const [provider, setProvider] = useState(params.get("provider") ?? "");
  const [model, setModel] = useState(params.get("model") ?? "");
  const [prompt, setPrompt] = useState(params.get("prompt") ?? "Tell me, one token at a time, how TokenRelay streams an answer from AWS Lambda to this page.");
  const [apiKey, setApiKey] = useState(storedKey);
  const [reasoning, setReasoning] = useState(params.get("reasoning") === "1");
  const [tools, setTools] = useState(params.get("tools") === "1");
  const image = useImage();
  const imageProblem = transportProblem(image.image, transport);
  const key = apiKey.trim();
  const deployment = useDeployment(api, key);
  const chat = useStreamingChat({ transport, baseUrl: api, wsUrl: ws, clientId: CLIENT_ID, ...(key ? { token: key } : {}) });
  const advice = chat.error ? whatToDo(chat.error, { wsUrl: ws, hasKey: key !== "", auth: deployment.auth }) : null;

  const submit = (event: FormEvent): void => {
    event.preventDefault();
    if (!prompt.trim() || imageProblem) return;
    void chat.send({
      ...userTurn(prompt, image.image),
      ...(provider ? { provider } : {}),
      ...(model.trim() ? { model: model.trim() } : {}),
      ...partOptions(reasoning, tools),
    });
  };

  const { progress, usage } = chat;
  const models = deployment.models[provider || deployment.defaultProvider || ""] ?? [];
  return (
    <main>
      <h1>
        TokenRelay <small>streaming LLM output, token by token</small>
      </h1>
      <form className="card" onSubmit={submit} data-testid="form">
        <div className="row">
          <label className="grow">
            HTTP base URL (Function URL)
            <input data-testid="api-url" value={api} onChange={(e) => setApi(e.target.value)} spellCheck={false} />
          </label>
          <label className="grow">
            WebSocket URL
            <input data-testid="ws-url" value={ws} onChange={(e) => setWs(e.target.value)} spellCheck={false} placeholder="wss://…/stage" />
          </label>
          <label>
            API key
            <input
              data-testid="api-key"
              type="password"
              autoComplete="off"
              spellCheck={false}
              value={apiKey}
              placeholder={deployment.auth === "api_key" ? "trk_… (required here)" : "trk_… (not needed here)"}
              title="Kept in this tab only (sessionStorage); sent as Authorization, access_token (EventSource) or the WebSocket subprotocol"
              onChange={(e) => {
                setApiKey(e.target.value);
                storeKey(e.target.value.trim());
              }}
            />
          </label>
        </div>
        <div className="row" style={{ marginTop: 10 }}>
          <fieldset data-testid="transport">
            <legend>Transport</legend>
            {TRANSPORTS.map(([value, label]) => (
              <label key={value}>
                <input type="radio" name="transport" value={value} checked={transport === value} onChange={() => setTransport(value)} data-testid={`transport-${value}`} />
                {label}
              </label>
            ))}
          </fieldset>
          <label>
            Provider
            <select data-testid="provider" value={provider} onChange={(e) => setProvider(e.target.value)}>
              <option value="">default{deployment.defaultProvider ? ` (${deployment.defaultProvider})` : ""}</option>
              {deployment.providers.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          </label>
          <label>
            Model
            <input data-testid="model" list="models" value={model} onChange={(e) => setModel(e.target.value)} placeholder="deployment default" spellCheck={false} />
            <datalist id="models">
              {models.map((m) => (
                <option key={m} value={m} />
              ))}
            </datalist>
          </label>
          <fieldset>
            <legend>Ask for</legend>
            <label title="reasoning: {effort: low}; echo thinks out loud first">
              <input type="checkbox" data-testid="want-reasoning" checked={reasoning} onChange={(e) => setReasoning(e.target.checked)} />
              Reasoning
            </label>
            <label title="offers get_weather; echo calls it when the prompt names it">
              <input type="checkbox" data-testid="want-tools" checked={tools} onChange={(e) => setTools(e.target.checked)} />
              Tools (get_weather)
            </label>
          </fieldset>
        </div>
        {deployment.problem && <p className="hint" data-testid="deployment-problem">{deployment.problem}</p>}
        {deployment.auth === "api_key" && !key && (
          <p className="hint" data-testid="needs-key">
            This deployment needs an API key: enter it in the API key field (kept for this tab only).
          </p>
        )}
        <label style={{ marginTop: 10 }}>
          Prompt
          <textarea
            data-testid="prompt"
            value={prompt}
            onChange={(e) => setPrompt(e.target.value)}
            onPaste={image.onPaste}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) submit(e);
            }}
          />
        </label>
        <ImageAttach state={image} />
        {imageProblem && <p className="hint" data-testid="image-transport">{imageProblem}</p>}
        <div className="row" style={{ marginTop: 10 }}>
          <button type="submit" data-testid="send" disabled={chat.isStreaming || !prompt.trim() || imageProblem !== null}>
            Send
          </button>
          <button type="button" className="danger" data-testid="cancel" onClick={chat.cancel} disabled={!chat.isStreaming}>
            Cancel
          </button>
          <button type="button" className="secondary" data-testid="reset" onClick={chat.reset} disabled={chat.status === "idle"}>
            Clear
          </button>
          <span className="hint">Ctrl+Enter sends</span>
        </div>
      </form>

      <section className={`card ${chat.isStreaming ? "streaming" : ""}`} aria-live="polite">
        <div className="row" style={{ justifyContent: "space-between" }}>
          <span className={`status ${chat.status}${chat.isStreaming && chat.connection ? " reconnecting" : ""}`} data-testid="status">
            {statusText(chat)}
          </span>
          <span className="meta">
            {chat.provider ? `${chat.provider} / ${chat.model}` : ""} {chat.transport}
          </span>
        </div>
        <Reasoning text={chat.reasoning} blocks={chat.thinkingBlocks} streaming={chat.isStreaming && !chat.content && chat.toolCalls.length === 0} />
        <ToolCalls calls={chat.toolCalls} />
        <div className={`output ${chat.content ? "" : "empty"}`} data-testid="output">
          {chat.content || (chat.isStreaming || chat.toolCalls.length > 0 ? "" : "The answer appears here as it streams.")}
        </div>
      </section>

      {chat.error && (
        <section className="card error" role="alert" data-testid="error">
          <b>{describeError(chat.error)}</b>
          {advice && (
            <p className="advice" data-testid="error-advice">
              {advice}
            </p>
          )}
          <div className="meta">
            code {chat.error.code}
            {chat.error.status ? `, HTTP ${chat.error.status}` : ""}
            {chat.error.retryable ? ", retryable" : ""}
          </div>
        </section>
      )}

      <section className="card figures" data-testid="figures">
        <Figure name="Time to first token" value={formatMs(progress.ttftMs)} id="ttft" />
        <Figure name={progress.exact ? "Tokens" : "Tokens (so far)"} value={String(progress.tokens)} id="tokens" />
        <Figure name="Tokens / s" value={progress.tokensPerSecond === null ? "–" : progress.tokensPerSecond.toFixed(1)} id="tps" />
        <Figure name="Elapsed" value={formatMs(progress.elapsedMs || null)} id="elapsed" />
        <Figure name="Usage: prompt" value={usage ? String(usage.prompt_tokens) : "–"} id="usage-prompt" />
        <Figure name="Usage: completion" value={usage ? String(usage.completion_tokens) : "–"} id="usage-completion" />
        <Figure name="Usage: total" value={usage ? String(usage.total_tokens) : "–"} id="usage-total" />
        <Figure name="Finish reason" value={chat.finishReason ?? "–"} id="finish-reason" />
      </section>
      <p className="meta" data-testid="stream-id">
        {chat.streamId ? `stream ${chat.streamId}` : ""}
      </p>
      <footer className="hint">
        <a href={`${api.replace(/\/+$/, "")}/docs`}>API reference</a> · <a href={`${api.replace(/\/+$/, "")}/health`}>health</a> ·{" "}
        the wire contract: docs/protocol.md
      </footer>
    </main>
  );
}

const root = document.getElementById("root");
if (root !== null) {
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}
