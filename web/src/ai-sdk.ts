/**
 * The Vercel AI SDK's `useChat` against TokenRelay (docs/ai-sdk.md), without importing the SDK.
 *
 * `useChat`'s `stop()` aborts its fetch. Behind a Lambda Function URL the function may never
 * learn that the client left, so the stream would go on generating (and billing) to its end.
 * `tokenRelayChat` gives the SDK's `DefaultChatTransport` a `fetch` that remembers each chat's
 * stream id (the `X-Stream-Id` header of `POST /api/chat` and of the resume
 * `GET /api/chat/{id}/stream`), and `stopStream(chatId)` sends the explicit cancel
 * (`POST /chat/stream/{id}/cancel`), from any instance:
 *
 *   const relay = tokenRelayChat("https://xyz.lambda-url.us-east-1.on.aws", { headers: { Authorization: `Bearer ${key}` } });
 *   const chat = useChat({ transport: new DefaultChatTransport({ api: relay.api, headers: relay.headers, fetch: relay.fetch }), resume: true });
 *   const stop = () => { void chat.stop(); void relay.stopStream(chat.id); };
 *
 * A stop pressed before the answer's headers arrived still reaches the stream: the fetch the SDK
 * aborted is answered "aborted" at once, while the request underneath is let run until its headers
 * name the stream, and only then closed.
 */

import { cancelStream, fetchOf, type CancelResult, type HttpOptions } from "./calls.js";
import { endpoint } from "./types.js";

export interface TokenRelayChat {
  /** `POST /api/chat` of this deployment: `DefaultChatTransport`'s `api`. */
  api: string;
  /** The headers every call sends (the API key, `X-Client-Id`...): the transport's `headers`. */
  headers: Record<string, string>;
  /** The transport's `fetch`: remembers each chat's stream id. */
  fetch: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
  /** The chat's stream id, once its answer (or its resume) began; null before that. */
  streamId(chatId: string): string | null;
  /** Cancel the chat's current stream on the server; null when no stream was ever named for it. */
  stopStream(chatId: string): Promise<CancelResult | null>;
}

/** How long `stopStream` waits for a starting answer's headers (its stream id). */
const HEADERS_WAIT_MS = 10_000;

const RESUME_PATH = /\/api\/chat\/([^/?#]+)\/stream(?:[?#]|$)/;

function chatIdOf(url: string, init: RequestInit | undefined): string | null {
  const resumed = RESUME_PATH.exec(url)?.[1];
  if (resumed !== undefined) return decodeURIComponent(resumed);
  if (typeof init?.body !== "string") return null;
  try {
    const body = JSON.parse(init.body) as { id?: unknown };
    return typeof body.id === "string" ? body.id : null;
  } catch {
    return null;
  }
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

export function tokenRelayChat(baseUrl: string, options: HttpOptions = {}): TokenRelayChat {
  const doFetch = fetchOf(options);
  const headers = { ...options.headers };
  const known = new Map<string, string>(); // chat id -> its latest stream id
  const pending = new Map<string, Promise<string | null>>(); // chat id -> the stream id of an answer starting

  const relayFetch = (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const chatId = chatIdOf(url, init);
    const outer = init?.signal ?? null;
    const inner = new AbortController(); // aborted only once the headers named the stream
    let answered = false;
    const request = doFetch(url, { ...init, signal: inner.signal });
    const named = request.then(
      (response) => {
        answered = true;
        const streamId = response.headers.get("x-stream-id");
        if (chatId !== null && streamId !== null) known.set(chatId, streamId);
        if (outer?.aborted === true) inner.abort(abortError(outer));
        return streamId;
      },
      () => null,
    );
    if (chatId !== null) {
      pending.set(chatId, named);
      void named.finally(() => {
        if (pending.get(chatId) === named) pending.delete(chatId);
      });
    }
    if (outer === null) return request;
    if (outer.aborted) return Promise.reject(abortError(outer));
    return new Promise<Response>((resolve, reject) => {
      const onAbort = (): void => {
        if (answered) inner.abort(abortError(outer)); // else: closed once its headers arrive
        reject(abortError(outer));
      };
      outer.addEventListener("abort", onAbort, { once: true });
      request.then(
        (response) => {
          outer.removeEventListener("abort", onAbort);
          resolve(response);
        },
        (error: unknown) => {
          outer.removeEventListener("abort", onAbort);
          reject(error);
        },
      );
    });
  };

  const waitForName = async (chatId: string): Promise<string | null> => {
    const starting = pending.get(chatId);
    if (starting === undefined) return known.get(chatId) ?? null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), HEADERS_WAIT_MS);
    });
    try {
      return (await Promise.race([starting, timeout])) ?? known.get(chatId) ?? null;
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    api: endpoint(baseUrl, "api/chat"),
    headers,
    fetch: relayFetch,
    streamId: (chatId) => known.get(chatId) ?? null,
    stopStream: async (chatId) => {
      const streamId = await waitForName(chatId);
      if (streamId === null) return null;
      return cancelStream(baseUrl, streamId, { ...options, headers, keepalive: true });
    },
  };
}
