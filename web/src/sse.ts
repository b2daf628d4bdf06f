/**
 * An incremental Server-Sent Events parser, following the WHATWG HTML
 * "event stream interpretation" rules. Pure: no I/O, no timers.
 *
 * Feed it bytes (or text) in whatever pieces the network delivers: an event,
 * a line, a `\r\n` pair or a multi-byte UTF-8 character may be split across
 * pieces, and one piece may hold many events. Lines end with `\r\n`, `\n` or
 * `\r`; a leading BOM is dropped; `:` lines are comments (`: ping`); `data:`
 * lines accumulate with `\n` between them; an event is dispatched on a blank
 * line, and only if it had data; an unfinished event at the end is dropped.
 */

export interface SseEvent {
  /** `event:` field, or `"message"`. */
  event: string;
  /** `data:` lines joined with `\n`. */
  data: string;
  /** The last event ID seen on the stream so far (carried over between events). */
  id: string;
  /** Whether this event carried its own `id:` field. */
  hasId: boolean;
}

export interface SseParserCallbacks {
  onEvent(event: SseEvent): void;
  onComment?(text: string): void;
  onRetry?(ms: number): void;
}

export class SseParser {
  private readonly decoder = new TextDecoder("utf-8");
  private buffer = "";
  private afterCR = false; // the previous piece ended with "\r": a "\n" next is part of that line end
  private bomChecked = false;
  private data: string[] = [];
  private eventName = "";
  private hasId = false;
  lastEventId = "";

  constructor(private readonly callbacks: SseParserCallbacks) {}

  /** Parse a piece of the body as bytes (UTF-8, decoded across piece boundaries). */
  feed(bytes: Uint8Array): void {
    this.bomChecked = true; // TextDecoder drops a leading BOM itself
    this.push(this.decoder.decode(bytes, { stream: true }));
  }

  /** Parse a piece of already-decoded text. */
  push(text: string): void {
    if (!this.bomChecked && text.length > 0) {
      this.bomChecked = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (text.length === 0) return;
    if (this.afterCR && text.charCodeAt(0) === 0x0a) text = text.slice(1);
    this.afterCR = false;
    const buffer = this.buffer + text;
    let start = 0;
    let cr = buffer.indexOf("\r");
    let lf = buffer.indexOf("\n");
    while (cr >= 0 || lf >= 0) {
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      this.line(buffer.slice(start, end));
      start = end + 1;
      if (end === cr) {
        if (start === buffer.length) {
          this.afterCR = true; // a "\r\n" may be split between pieces
        } else if (buffer.charCodeAt(start) === 0x0a) {
          start += 1;
        }
      }
      if (cr >= 0 && cr < start) cr = buffer.indexOf("\r", start);
      if (lf >= 0 && lf < start) lf = buffer.indexOf("\n", start);
    }
    this.buffer = start === 0 ? buffer : buffer.slice(start);
  }

  /** The body ended: flush the decoder. An event with no blank line after it is dropped, per the spec. */
  end(): void {
    const rest = this.decoder.decode();
    if (rest) this.push(rest);
    this.buffer = "";
    this.data = [];
    this.eventName = "";
    this.hasId = false;
  }

  private line(line: string): void {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 0x3a /* ":" */) {
      this.callbacks.onComment?.(line.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.eventName = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) {
          this.lastEventId = value;
          this.hasId = true;
        }
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.callbacks.onRetry?.(Number(value));
        break;
      default: // unknown fields are ignored
    }
  }

  private dispatch(): void {
    const hasId = this.hasId;
    const name = this.eventName;
    this.hasId = false;
    this.eventName = "";
    if (this.data.length === 0) return;
    const data = this.data.join("\n");
    this.data = [];
    this.callbacks.onEvent({ event: name || "message", data, id: this.lastEventId, hasId });
  }
}

/** Parse a whole body at once (tests, fixtures). */
export function parseSse(body: string | Uint8Array): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = new SseParser({ onEvent: (e) => events.push(e) });
  if (typeof body === "string") parser.push(body);
  else parser.feed(body);
  parser.end();
  return events;
}
