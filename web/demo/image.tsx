/**
 * The demo's image input (docs/protocol.md section 13): attach a file or paste an image into
 * the prompt; it goes as a `data:` URL in an `image_url` part of the user message.
 *
 * Size: over SSE (fetch) an image travels in the POST body, up to the Function URL's 6 MB
 * request payload (about 4.5 MB of image once base64-encoded); a WebSocket message is at most
 * 128 KB, so over the WebSocket only small images fit; EventSource sends a GET and cannot carry one.
 */

import { useState, type ClipboardEvent } from "react";
import type { ChatRequest } from "../src/types.js";
import type { Transport } from "../src/react.js";

export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const WEBSOCKET_MAX_BYTES = 90 * 1024; // the image's share of a 128 KB message, base64 included

export interface Attached {
  name: string;
  url: string; // data:image/...;base64,...
  bytes: number;
}

function readAsDataUrl(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export function useImage() {
  const [image, setImage] = useState<Attached | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const attach = async (file: File | undefined | null): Promise<void> => {
    if (!file) return;
    if (!IMAGE_TYPES.includes(file.type)) {
      setProblem(`${file.name || "that file"} is not a PNG, JPEG, GIF or WebP image`);
      return;
    }
    setProblem(null);
    setImage({ name: file.name || "pasted image", url: await readAsDataUrl(file), bytes: file.size });
  };
  const onPaste = (event: ClipboardEvent): void => {
    const file = Array.from(event.clipboardData.files).find((f) => IMAGE_TYPES.includes(f.type));
    if (file) {
      event.preventDefault();
      void attach(file);
    }
  };
  return { image, problem, attach, onPaste, clear: () => setImage(null) };
}

/** Why `image` cannot go over `transport` (null: it can). */
export function transportProblem(image: Attached | null, transport: Transport): string | null {
  if (image === null) return null;
  if (transport === "eventsource") return "EventSource sends a GET: choose SSE (fetch) or WebSocket to send an image";
  if (transport === "websocket" && image.url.length > WEBSOCKET_MAX_BYTES) {
    return "this image is too large for a WebSocket message (128 KB): choose SSE (fetch)";
  }
  return null;
}

/** The request's user turn: the prompt alone, or the prompt and the image as parts. */
export function userTurn(prompt: string, image: Attached | null): Partial<ChatRequest> {
  if (image === null) return { message: prompt };
  return {
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: prompt },
          { type: "image_url", image_url: { url: image.url } },
        ],
      },
    ],
  };
}

export function ImageAttach({ state }: { state: ReturnType<typeof useImage> }) {
  const { image, problem, attach, clear } = state;
  return (
    <div className="row" style={{ marginTop: 10 }}>
      <label className="secondary">
        Image
        <input
          type="file"
          accept={IMAGE_TYPES.join(",")}
          data-testid="image"
          onChange={(e) => {
            void attach(e.target.files?.[0]);
            e.target.value = "";
          }}
        />
      </label>
      {image && (
        <span className="hint" data-testid="image-attached">
          <img src={image.url} alt={image.name} style={{ maxHeight: 32, verticalAlign: "middle" }} /> {image.name},{" "}
          {image.bytes} bytes{" "}
          <button type="button" className="secondary" data-testid="image-remove" onClick={clear}>
            Remove
          </button>
        </span>
      )}
      {problem && (
        <span className="hint" data-testid="image-problem">
          {problem}
        </span>
      )}
    </div>
  );
}
