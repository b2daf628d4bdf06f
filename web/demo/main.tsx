/**
 * TokenRelay demo page: the React hook over SSE (fetch or EventSource) or WebSocket.
 *
 * Base URLs come from the query string, then from the fields on the page:
 *   ?api=https://abc.lambda-url.eu-west-1.on.aws&ws=wss://xyz.execute-api.eu-west-1.amazonaws.com/prod
 * Defaults: the page's own origin for HTTP (scripts/dev serves it at /demo/),
 * and ws://<same host>:8001 for the local WebSocket gateway.
 * Also accepted: transport=sse|eventsource|websocket, provider, model, prompt.
 */

import { StrictMode, useEffect, useState, type FormEvent } from "react";
import { createRoot } from "react-dom/client";

import { describeError } from "../src/describe.js";
import { useStreamingChat, type Transport } from "../src/react.js";

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

interface Deployment {
  providers: string[];
  defaultProvider: string | null;
  models: Record<string, string[]>;
  problem: string | null;
}

/** Providers from `/health`; models from `/v1/models` when the deployment serves it. */
function useDeployment(api: string): Deployment {
  const [info, setInfo] = useState<Deployment>({ providers: [], defaultProvider: null, models: {}, problem: null });
  useEffect(() => {
    const abort = new AbortController();
    const base = api.replace(/\/+$/, "");
    const load = async (): Promise<void> => {
      const next: Deployment = { providers: [], defaultProvider: null, models: {}, problem: null };
      try {
        const health = (await (await fetch(`${base}/health`, { signal: abort.signal })).json()) as {
          providers?: string[];
          default_provider?: string;
        };
        next.providers = health.providers ?? [];
        next.defaultProvider = health.default_provider ?? null;
      } catch {
        if (abort.signal.aborted) return;
        next.problem = `Cannot read ${base}/health: check the HTTP base URL (and CORS, if this page is on another origin).`;
      }
      try {
        const response = await fetch(`${base}/v1/models`, { signal: abort.signal });
        if (response.ok) {
          const body = (await response.json()) as { data?: Array<{ id?: string }> };
          for (const { id } of body.data ?? []) {
            const [provider, ...rest] = (id ?? "").split("/");
            if (provider && rest.length) (next.models[provider] ??= []).push(rest.join("/"));
          }
        }
      } catch {
        // optional
      }
      if (!abort.signal.aborted) setInfo(next);
    };
    void load();
    return () => abort.abort();
  }, [api]);
  return info;
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
  const deployment = useDeployment(api);
  const chat = useStreamingChat({ transport, baseUrl: api, wsUrl: ws, clientId: CLIENT_ID });

  const submit = (event: FormEvent): void => {
    event.preventDefault();
    if (!prompt.trim()) return;
    void chat.send({
      message: prompt,
      ...(provider ? { provider } : {}),
      ...(model.trim() ? { model: model.trim() } : {}),
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
        </div>
        {deployment.problem && <p className="hint" data-testid="deployment-problem">{deployment.problem}</p>}
        <label style={{ marginTop: 10 }}>
          Prompt
          <textarea
            data-testid="prompt"
            value={prompt}
            onChange={(e) => setPrompt(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) submit(e);
            }}
          />
        </label>
        <div className="row" style={{ marginTop: 10 }}>
          <button type="submit" data-testid="send" disabled={chat.isStreaming || !prompt.trim()}>
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
          <span className={`status ${chat.status}`} data-testid="status">
            {chat.status}
            {chat.cancelReason ? ` (${chat.cancelReason})` : ""}
          </span>
          <span className="meta">
            {chat.provider ? `${chat.provider} / ${chat.model}` : ""} {chat.transport}
          </span>
        </div>
        <div className={`output ${chat.content ? "" : "empty"}`} data-testid="output">
          {chat.content || (chat.isStreaming ? "" : "The answer appears here as it streams.")}
        </div>
      </section>

      {chat.error && (
        <section className="card error" role="alert" data-testid="error">
          <b>{describeError(chat.error)}</b>
          <div className="meta">
            code {chat.error.code}
            {chat.error.status ? `, HTTP ${chat.error.status}` : ""}
            {chat.error.retryable ? ", retryable" : ""}
          </div>
        </section>
      )}

      <section className="card figures" data-testid="figures">
        <Figure name="Time to first token" value={formatMs(progress.ttftMs)} id="ttft" />
        <Figure name={progress.exact ? "Tokens" : "Tokens (chunks so far)"} value={String(progress.tokens)} id="tokens" />
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
