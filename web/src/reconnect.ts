/**
 * When to try a WebSocket connection again, and when to give up (`TokenRelaySocket`).
 *
 * Two budgets, because the two failures mean different things:
 *
 *   never opened   `maxConnectAttempts` tries in all (default 3: about 1.5 s). A socket
 *                  that has never opened is most often misconfigured (a wrong URL, a
 *                  refused key), and waiting longer would only hide that.
 *   lost           `maxReconnectAttempts` tries after a connection that was open dropped
 *                  (default 6: about 16-24 s with the default backoff), long enough to
 *                  ride out a network change or a gateway restart.
 *
 * Delays grow exponentially with jitter (`backoffDelay`); a connection that opens
 * starts both budgets over.
 */

export interface Backoff {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** 0..1: each delay is cut by up to this fraction, at random. */
  jitter: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 8_000, factor: 2, jitter: 0.3 };
export const DEFAULT_MAX_CONNECT_ATTEMPTS = 3;
export const DEFAULT_MAX_RECONNECT_ATTEMPTS = 6;

export function backoffDelay(attempt: number, backoff: Backoff, random: () => number): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** attempt);
  return Math.round(base * (1 - backoff.jitter * random()));
}

/** The next try: its number, out of how many, and how long to wait for it. */
export interface Retry {
  /** `connecting` before the socket ever opened, `reconnecting` after it was lost. */
  phase: "connecting" | "reconnecting";
  attempt: number;
  maxAttempts: number;
  delayMs: number;
}

export class Reconnects {
  private failures = 0;
  private wasEverOpen = false;

  constructor(
    private readonly maxConnect: number,
    private readonly maxReconnect: number,
    private readonly backoff: Backoff,
    private readonly random: () => number,
  ) {}

  /** Whether a connection has opened since the start (or since the last `reset`). */
  get everOpened(): boolean {
    return this.wasEverOpen;
  }

  /** The try under way, for a status report: the first connection is attempt 1 of `maxConnect`. */
  current(): Omit<Retry, "delayMs"> {
    return this.wasEverOpen
      ? { phase: "reconnecting", attempt: this.failures, maxAttempts: this.maxReconnect }
      : { phase: "connecting", attempt: this.failures + 1, maxAttempts: this.maxConnect };
  }

  opened(): void {
    this.failures = 0;
    this.wasEverOpen = true;
  }

  /** A connection closed (`wasOpen`: it had opened): the next try, or null to give up. */
  closed(wasOpen: boolean): Retry | null {
    this.failures = wasOpen ? 1 : this.failures + 1;
    const next = this.current();
    if (next.attempt > next.maxAttempts) return null;
    return { ...next, delayMs: backoffDelay(this.failures - 1, this.backoff, this.random) };
  }

  /** Start over, as a socket that never opened (after giving up). */
  reset(): void {
    this.failures = 0;
    this.wasEverOpen = false;
  }
}
