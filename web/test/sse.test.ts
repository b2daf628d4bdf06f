import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { parseSse, SseParser, type SseEvent } from "../src/sse.js";

const enc = new TextEncoder();

/** Feed `body` in the given byte pieces; the events, comments and retries seen. */
function run(pieces: Uint8Array[]): { events: SseEvent[]; comments: string[]; retries: number[] } {
  const out = { events: [] as SseEvent[], comments: [] as string[], retries: [] as number[] };
  const parser = new SseParser({
    onEvent: (e) => out.events.push(e),
    onComment: (c) => out.comments.push(c),
    onRetry: (ms) => out.retries.push(ms),
  });
  for (const piece of pieces) parser.feed(piece);
  parser.end();
  return out;
}

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const cut of cuts) {
    pieces.push(bytes.slice(start, cut));
    start = cut;
  }
  pieces.push(bytes.slice(start));
  return pieces;
}

const pick = (events: SseEvent[]) => events.map((e) => [e.event, e.data, e.id]);

// A TokenRelay stream as the server sends it, with a ping, a multi-byte character and an emoji.
const TRANSCRIPT =
  'event: start\ndata: {"stream_id":"s1","provider":"echo","model":"echo-1"}\n\n' +
  ": ping\n\n" +
  'event: message\nid: 1\ndata: {"text":"Grüße "}\n\n' +
  'event: message\nid: 2\ndata: {"text":"🙂 "}\n\n' +
  'event: usage\ndata: {"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}\n\n' +
  'event: done\ndata: {"status":"complete","stream_id":"s1"}\n\n';

const EXPECTED = [
  ["start", '{"stream_id":"s1","provider":"echo","model":"echo-1"}', ""],
  ["message", '{"text":"Grüße "}', "1"],
  ["message", '{"text":"🙂 "}', "2"],
  ["usage", '{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}', "2"],
  ["done", '{"status":"complete","stream_id":"s1"}', "2"],
];

describe("SseParser", () => {
  test("a whole transcript in one chunk: several events, a ping comment", () => {
    const out = run([enc.encode(TRANSCRIPT)]);
    assert.deepEqual(pick(out.events), EXPECTED);
    assert.deepEqual(out.comments, ["ping"]);
    assert.deepEqual(out.events.map((e) => e.hasId), [false, true, true, false, false]);
  });

  test("split at every byte position (events, lines and UTF-8 characters cut in two)", () => {
    const bytes = enc.encode(TRANSCRIPT);
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.deepEqual(pick(run(splitAt(bytes, [cut])).events), EXPECTED, `cut at byte ${cut}`);
    }
  });

  test("one byte at a time", () => {
    const bytes = enc.encode(TRANSCRIPT);
    const pieces = Array.from(bytes, (b) => Uint8Array.of(b));
    assert.deepEqual(pick(run(pieces).events), EXPECTED);
  });

  test("random chunkings, with \\n, \\r\\n and \\r line endings", () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const eol of ["\n", "\r\n", "\r"]) {
      const bytes = enc.encode(TRANSCRIPT.replaceAll("\n", eol));
      for (let round = 0; round < 200; round++) {
        const cuts = Array.from({ length: 1 + Math.floor(random() * 12) }, () => 1 + Math.floor(random() * (bytes.length - 1)));
        cuts.sort((a, b) => a - b);
        assert.deepEqual(pick(run(splitAt(bytes, cuts)).events), EXPECTED, `eol ${JSON.stringify(eol)} cuts ${cuts}`);
      }
    }
  });

  test("\\r\\n split between two chunks is one line end, not two", () => {
    const out = run([enc.encode("data: a\r"), enc.encode("\ndata: b\r"), enc.encode("\n\r"), enc.encode("\n")]);
    assert.deepEqual(pick(out.events), [["message", "a\nb", ""]]);
  });

  test("a lone \\r ends a line, and a blank line of \\r dispatches", () => {
    assert.deepEqual(pick(parseSse("data: a\r\rdata: b\r\r")), [
      ["message", "a", ""],
      ["message", "b", ""],
    ]);
  });

  test("mixed line endings in one stream", () => {
    assert.deepEqual(pick(parseSse("event: x\r\ndata: 1\rdata: 2\n\r\n")), [["x", "1\n2", ""]]);
  });

  test("multi-line data joins with \\n; an empty data line counts", () => {
    assert.deepEqual(pick(parseSse("data: first\ndata:\ndata:  two spaces\n\n")), [["message", "first\n\n two spaces", ""]]);
    assert.deepEqual(pick(parseSse("data\n\n")), [["message", "", ""]]);
  });

  test("only one space after the colon is dropped; no colon means an empty value", () => {
    assert.deepEqual(pick(parseSse("data:no space\n\n")), [["message", "no space", ""]]);
    assert.deepEqual(pick(parseSse("event\ndata: x\n\n")), [["message", "x", ""]]);
  });

  test("comments and pings between and inside events are not data", () => {
    const out = run([enc.encode(": ping\n\nevent: message\n: inside\ndata: x\n:\n\n: ping\n\n")]);
    assert.deepEqual(pick(out.events), [["message", "x", ""]]);
    assert.deepEqual(out.comments, ["ping", "inside", "", "ping"]);
  });

  test("an event without data is not dispatched, and its type does not leak into the next", () => {
    assert.deepEqual(pick(parseSse("event: start\n\ndata: x\n\n")), [["message", "x", ""]]);
  });

  test("an unfinished event at the end of the body is dropped", () => {
    assert.deepEqual(pick(parseSse('data: {"text":"a"}\n\ndata: {"text":"b"}\n')), [["message", '{"text":"a"}', ""]]);
  });

  test("a leading BOM is dropped (bytes and text), only one", () => {
    assert.deepEqual(pick(parseSse(Uint8Array.of(0xef, 0xbb, 0xbf, ...enc.encode("data: x\n\n")))), [["message", "x", ""]]);
    assert.deepEqual(pick(parseSse("\ufeffdata: x\n\n")), [["message", "x", ""]]);
    assert.deepEqual(pick(run([Uint8Array.of(0xef, 0xbb), Uint8Array.of(0xbf, 0x64), enc.encode("ata: y\n\n")]).events), [["message", "y", ""]]);
  });

  test("id: the last one carries over; one with NUL is ignored; retry takes digits only", () => {
    const out = run([enc.encode("id: 7\ndata: a\n\ndata: b\n\nid: 8\0x\ndata: c\n\nretry: 1500\nretry: soon\n\n")]);
    assert.deepEqual(pick(out.events), [
      ["message", "a", "7"],
      ["message", "b", "7"],
      ["message", "c", "7"],
    ]);
    assert.deepEqual(out.events.map((e) => e.hasId), [true, false, false]);
    assert.deepEqual(out.retries, [1500]);
  });

  test("unknown fields are ignored", () => {
    assert.deepEqual(pick(parseSse("foo: bar\ndata: x\n\n")), [["message", "x", ""]]);
  });

  test("a 4-byte character split across three chunks", () => {
    const bytes = enc.encode('data: {"text":"🙂"}\n\n');
    const at = bytes.indexOf(0xf0);
    const out = run([bytes.slice(0, at + 1), bytes.slice(at + 1, at + 3), bytes.slice(at + 3)]);
    assert.deepEqual(pick(out.events), [["message", '{"text":"🙂"}', ""]]);
  });

  test("many events in one large chunk stay linear (10 000 events)", () => {
    const body = Array.from({ length: 10_000 }, (_, i) => `event: message\nid: ${i + 1}\ndata: {"text":"t${i}"}\n\n`).join("");
    const started = performance.now();
    const events = parseSse(body);
    assert.equal(events.length, 10_000);
    assert.equal(events[9_999]?.id, "10000");
    assert.ok(performance.now() - started < 2000);
  });
});
