/**
 * Browser test page for `useStreamingChat` (driven by tests/browser/test_hook.py).
 *
 * `window.hookTest` mounts a component that uses the hook and counts its
 * commits (an effect with no dependencies runs once per commit), so a test
 * can count re-renders, watch the text grow,
 * unmount mid-stream, and check that nothing is scheduled afterwards.
 */

import { useEffect } from "react";
import { createRoot, type Root } from "react-dom/client";
import { flushSync } from "react-dom";

import type { ChatOptions } from "../src/chat.js";
import { useStreamingChat, type UseStreamingChat } from "../src/react.js";
import type { TerminalEvent } from "../src/types.js";

interface Stats {
  commits: number;
  lengths: number[];
  framesRequested: number;
  mounted: boolean;
  streamId: string | null;
  status: string;
  content: string;
}

const stats: Stats = { commits: 0, lengths: [], framesRequested: 0, mounted: false, streamId: null, status: "idle", content: "" };
let chat: UseStreamingChat | null = null;
let root: Root | null = null;

const realRequestFrame = window.requestAnimationFrame.bind(window);
window.requestAnimationFrame = (callback: FrameRequestCallback): number => {
  stats.framesRequested += 1;
  return realRequestFrame(callback);
};

function Probe({ options }: { options: ChatOptions }) {
  const state = useStreamingChat(options);
  chat = state;
  useEffect(() => {
    stats.commits += 1;
    stats.streamId = state.streamId;
    stats.status = state.status;
    stats.content = state.content;
    if (stats.lengths[stats.lengths.length - 1] !== state.content.length) stats.lengths.push(state.content.length);
  });
  return <pre data-testid="content">{state.content}</pre>;
}

function mount(options: ChatOptions): void {
  unmount();
  Object.assign(stats, { commits: 0, lengths: [], framesRequested: 0, streamId: null, status: "idle", content: "" });
  const element = document.getElementById("root");
  if (element === null) throw new Error("no #root");
  root = createRoot(element);
  flushSync(() =>
    root?.render(
      <Probe options={options} />,
    ),
  );
  stats.mounted = true;
}

function unmount(): void {
  root?.unmount();
  root = null;
  chat = null;
  stats.mounted = false;
}

/** An SSE body of `tokens` message events, delivered in `chunks` network pieces a few ms apart. */
function fakeFetch(tokens: number, chunks: number): NonNullable<ChatOptions["fetch"]> {
  return async () => {
    const encoder = new TextEncoder();
    let body = 'event: start\ndata: {"stream_id":"fake-1","provider":"fake","model":"fake-1"}\n\n';
    for (let i = 1; i <= tokens; i++) body += `event: message\nid: ${i}\ndata: {"text":"t${i} "}\n\n`;
    body += `event: done\ndata: {"status":"complete","stream_id":"fake-1","finish_reason":"stop","ttft_ms":1,"total_time_ms":2,"completion_tokens":${tokens}}\n\n`;
    const bytes = encoder.encode(body);
    const size = Math.ceil(bytes.length / chunks);
    let offset = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (offset >= bytes.length) {
          controller.close();
          return;
        }
        await new Promise((r) => setTimeout(r, 2));
        controller.enqueue(bytes.slice(offset, offset + size));
        offset += size;
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream", "x-stream-id": "fake-1" } });
  };
}

const api = {
  stats: (): Stats => ({ ...stats, lengths: [...stats.lengths] }),
  mount,
  unmount,
  /** Mount against a fake fetch, stream `tokens` tokens, resolve with the terminal event. */
  async runFake(tokens: number, chunks: number): Promise<TerminalEvent> {
    mount({ baseUrl: "http://fake.invalid", fetch: fakeFetch(tokens, chunks) });
    if (chat === null) throw new Error("not mounted");
    const result = await chat.send("go");
    await new Promise((r) => setTimeout(r, 50));
    return result;
  },
  send(prompt: string): void {
    if (chat === null) throw new Error("not mounted");
    void chat.send(prompt);
  },
};

declare global {
  interface Window {
    hookTest: typeof api;
  }
}
window.hookTest = api;
document.title = "hook test ready";
