/** `describeError`: a sentence for a person, from a stream's error event. */

import type { ChatError } from "./types.js";

const SENTENCES: Record<string, string> = {
  rate_limited: "This API key is over its limit right now. Try again in a moment.",
  upstream_rate_limited: "The model provider is rate limiting requests right now. Try again in a moment.",
  upstream_unavailable: "The model provider is unavailable right now. Try again in a moment.",
  upstream_timeout: "The model provider took too long to answer. Try again in a moment.",
  upstream_rejected: "The model provider refused the request.",
  unauthorized: "The server needs a valid API key: this one is missing, wrong or revoked.",
  forbidden: "That stream belongs to another API key or client.",
  model_not_allowed: "This API key may not use that model. Pick another one.",
  internal_error: "The server failed while answering. Try again.",
  network_error: "Could not reach the server. Check the URL and your connection.",
  connection_lost: "The connection was lost before the answer was complete.",
  connect_failed: "Could not open the WebSocket connection. Check the WebSocket URL, and that the server is running.",
  resume_timeout:
    "The connection came back, but the answer did not go on: the server no longer runs this stream (a local stack that restarted loses the streams it was running). Send the message again.",
  stream_not_found:
    "The server does not know this stream. A local stack (scripts/dev) keeps no state across a restart, so the streams from before it are gone. Send the message again.",
  stream_truncated: "The answer stopped before it was complete (the stream ended without a final event).",
  too_many_streams: "Too many answers are streaming on this connection. Wait for one to finish.",
  payload_too_large: "The message is too long for this server.",
  unsupported_media_type: "The server expected a JSON request.",
  store_unavailable: "The server cannot reach its database right now. Try again in a moment.",
  worker_unavailable: "The server cannot start a stream right now. Try again in a moment.",
  gateway_error: "The WebSocket gateway reported an error.",
  bad_response: "The server sent something this client cannot read.",
  invalid_config: "The client is not configured for this transport.",
};

export function describeError(error: ChatError): string {
  if (error.code === "invalid_request" || error.code === "invalid_json") {
    const named = !error.field || error.error.startsWith(`${error.field}:`);
    return `The request was rejected: ${named ? "" : `${error.field}: `}${error.error.replace(/\.$/, "")}.`;
  }
  const sentence = SENTENCES[error.code];
  if (sentence === undefined) return `${error.error} (${error.code}).`;
  const detail = error.error && !sentence.includes(error.error) ? ` Details: ${error.error}.` : "";
  return `${sentence}${detail}`;
}
