/** What the demo page tells a person to do about an error, beyond what went wrong (`describeError`). */

import type { ChatError } from "../src/types.js";

export interface Context {
  wsUrl: string;
  hasKey: boolean;
  /** `api_key` when the deployment needs a key (from `/health`). */
  auth: string | null;
}

const KEYS =
  "Locally: AUTH_MODE=api_key scripts/dev, then TOKEN=$(scripts/keys --local create --name me) (add DDB_PORT=… if you changed the ports). Deployed: API_KEYS_TABLE=<stack output ApiKeysTableName> scripts/keys create --name me.";

export function whatToDo(error: ChatError, context: Context): string | null {
  switch (error.code) {
    case "connect_failed":
      return (
        `Check the WebSocket URL (${context.wsUrl || "empty"}): scripts/dev runs the gateway at ws://127.0.0.1:8001 (WS_PORT), ` +
        "a deployment gives it as the stack output WebSocketUrl." +
        (context.auth === "api_key" && !context.hasKey ? " This deployment needs an API key: enter it above." : "")
      );
    case "unauthorized":
      return `${context.hasKey ? "Check the key in the API key field: it may be mistyped or revoked." : "Enter a key in the API key field."} ${KEYS}`;
    case "connection_lost":
      return "The server went away and did not come back in time. Check that it is running (scripts/dev says which part stopped), then send again.";
    case "resume_timeout":
      return "Locally, the WebSocket gateway also runs the streams' workers: restarting it ends the streams it was running.";
    case "stream_not_found":
      return "Locally that is what a restart does: moto keeps the tables in memory. Deployed, a stream is forgotten a day (STREAM_TTL_S) after it started.";
    case "network_error":
      return "Check the HTTP base URL, and that the server is running (scripts/dev).";
    default:
      return null;
  }
}
