/** What the demo page learns about a deployment: `/health`, then `/v1/models` when it may ask. */

import { useEffect, useState } from "react";

export interface Deployment {
  providers: string[];
  defaultProvider: string | null;
  models: Record<string, string[]>;
  /** `api_key` when the stream routes need a key; null when `/health` did not say. */
  auth: string | null;
  problem: string | null;
}

const NOTHING: Deployment = { providers: [], defaultProvider: null, models: {}, auth: null, problem: null };

/**
 * Providers and auth from `/health` (open); models from `/v1/models`, which needs the key
 * when auth is `api_key`: without one it is not asked (a 401 in the console helps nobody).
 * Read again when the key changes, after a pause (not on every keystroke).
 */
export function useDeployment(api: string, key: string): Deployment {
  const [info, setInfo] = useState<Deployment>(NOTHING);
  useEffect(() => {
    const abort = new AbortController();
    const base = api.replace(/\/+$/, "");
    const load = async (): Promise<void> => {
      const next: Deployment = { ...NOTHING, models: {} };
      try {
        const health = (await (await fetch(`${base}/health`, { signal: abort.signal })).json()) as {
          providers?: string[];
          default_provider?: string;
          auth?: string;
        };
        next.providers = health.providers ?? [];
        next.defaultProvider = health.default_provider ?? null;
        next.auth = health.auth ?? null;
      } catch {
        if (abort.signal.aborted) return;
        next.problem = `Cannot read ${base}/health: check the HTTP base URL (and CORS, if this page is on another origin).`;
      }
      if (next.auth !== "api_key" || key) {
        try {
          const headers: Record<string, string> = key ? { Authorization: `Bearer ${key}` } : {};
          const response = await fetch(`${base}/v1/models`, { signal: abort.signal, headers });
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
      }
      if (!abort.signal.aborted) setInfo(next);
    };
    const timer = setTimeout(() => void load(), key ? 400 : 0);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
  }, [api, key]);
  return info;
}
