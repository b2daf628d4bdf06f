"""Chat with TokenRelay's WebSocket API from a terminal, or from a pipe.

    scripts/ws-chat                                   # ws://127.0.0.1:$WS_PORT (8001), what scripts/dev runs
    scripts/ws-chat wss://abc.execute-api.eu-west-1.amazonaws.com/prod
    echo "Hello" | scripts/ws-chat                    # one answer, then exit
    TOKENRELAY_API_KEY=trk_... scripts/ws-chat        # AUTH_MODE=api_key (or --key)

Each line read is a message: a plain line is a chat (``{"type":"chat","message":line}``), a line
that starts with ``{`` is sent as it is (any message of docs/protocol.md section 3), and
``/cancel`` cancels what is streaming. A chat waits for the answer before it to end, so
answers never interleave. Answers print as they stream: the text inline, the
other events as one bracketed line each (``[start …]``, ``[done: stop, 12 tokens, 402 ms]``).
``--json`` prints every message as received instead, one JSON object a line.

Colours only on a terminal (never when piped, or with ``NO_COLOR``). At the end of the input it
waits for the answers under way (``--wait``, 120 s), then exits: 0, or 1 if the connection
failed or an answer ended in an error.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import threading
from typing import Any, TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

TERMINAL = ("done", "cancelled", "error")


class Printer:
    """Writes the server's messages readably; ANSI colours only on a terminal."""

    def __init__(self, out: TextIO, raw: bool, colour: bool) -> None:
        self.out, self.raw, self.colour = out, raw, colour
        self.mid_line = False  # text printed without a newline yet

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def line(self, text: str, code: str = "2") -> None:
        if self.mid_line:
            self.out.write("\n")
            self.mid_line = False
        self.out.write(self._paint(text, code) + "\n")
        self.out.flush()

    def message(self, message: dict[str, Any]) -> None:
        if self.raw:
            self.out.write(json.dumps(message, ensure_ascii=False) + "\n")
            self.out.flush()
            return
        kind = message.get("type")
        if kind == "text":
            self.out.write(str(message.get("content", "")))
            self.out.flush()
            self.mid_line = True
        elif kind == "start":
            self.line(f"[start {message.get('stream_id')} {message.get('provider')}/{message.get('model')}]")
        elif kind == "usage":
            self.line(f"[usage: {message.get('prompt_tokens')} prompt, {message.get('completion_tokens')} completion]")
        elif kind == "done":
            self.line(
                f"[done: {message.get('finish_reason')}, {message.get('completion_tokens')} tokens, "
                f"{message.get('total_time_ms')} ms]",
                "32",
            )
        elif kind == "cancelled":
            self.line(f"[cancelled: {message.get('reason')}]", "33")
        elif kind == "error":
            field = f" ({message['field']})" if "field" in message else ""
            self.line(f"[error {message.get('code')}{field}: {message.get('error')}]", "31")
        else:  # API Gateway's own {"message": ...}, or a type this script does not know
            self.line(json.dumps(message, ensure_ascii=False))


def outgoing(line: str, request_id: str) -> dict[str, Any] | None:
    """The message for one input line; None for a blank one."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    if text.strip() == "/cancel":
        return {"type": "cancel"}
    if text.lstrip().startswith("{"):
        message = json.loads(text)
        if not isinstance(message, dict):
            raise ValueError("a JSON line must be an object")
        if message.get("type") in ("chat", "resume"):
            message.setdefault("request_id", request_id)
        return message
    return {"type": "chat", "message": text, "request_id": request_id}


def read_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], interactive: bool) -> None:
    """stdin, line by line, onto ``queue`` (None at its end); a thread, since stdin blocks."""
    while True:
        if interactive:
            sys.stderr.write("> ")
            sys.stderr.flush()
        line = sys.stdin.readline()
        loop.call_soon_threadsafe(queue.put_nowait, line or None)
        if not line:
            return


async def chat(ws: ClientConnection, printer: Printer, wait_s: float, interactive: bool) -> int:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=read_lines, args=(loop, lines, interactive), daemon=True).start()
    active: set[str] = set()
    settled = asyncio.Event()
    settled.set()
    failed = False

    async def receive() -> None:
        nonlocal failed
        async for raw in ws:
            try:
                message = json.loads(raw)
            except json.JSONDecodeError:
                printer.line(f"[not JSON: {raw!r}]", "31")
                continue
            printer.message(message)
            request_id = message.get("request_id")
            if message.get("type") in TERMINAL:
                failed = failed or message.get("type") == "error"
                if isinstance(request_id, str):
                    active.discard(request_id)
                    if not active:
                        settled.set()

    receiver = asyncio.create_task(receive())
    ids = (f"r{n}" for n in itertools.count(1))
    try:
        while (line := await lines.get()) is not None:
            try:
                message = outgoing(line, next(ids))
            except ValueError as exc:  # json.JSONDecodeError is one
                printer.line(f"[not sent: {exc}]", "31")
                continue
            if message is None:
                continue
            if isinstance(message.get("request_id"), str) and message["type"] in ("chat", "resume"):
                await settled.wait()  # one answer at a time: a chat waits for the one before it to end
                active.add(message["request_id"])
                settled.clear()
            await ws.send(json.dumps(message))
        waiter = asyncio.ensure_future(settled.wait())
        try:
            done, _ = await asyncio.wait({receiver, waiter}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not done:
            printer.line(f"[gave up waiting after {wait_s:g} s: {len(active)} answer(s) still streaming]", "31")
            return 1
        if receiver.done() and active:
            printer.line("[the server closed the connection]", "31")
            return 1
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    return 1 if failed else 0


async def run(args: argparse.Namespace) -> int:
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    printer = Printer(sys.stdout, args.json, colour)
    key = args.key or os.environ.get("TOKENRELAY_API_KEY") or None
    url = args.url
    if args.client_id:
        url += ("&" if "?" in url else "?") + f"client_id={args.client_id}"
    protocols: Any = ["tokenrelay", f"bearer.{key}"] if key else None
    try:
        async with connect(url, subprotocols=protocols, open_timeout=10, max_size=2**20) as ws:
            return await chat(ws, printer, args.wait, sys.stdin.isatty())
    except InvalidStatus as exc:
        status = exc.response.status_code
        hint = " (an API key is needed: --key or TOKENRELAY_API_KEY)" if status in (401, 403) else ""
        print(f"ws-chat: {args.url} refused the connection: HTTP {status}{hint}", file=sys.stderr)
    except (OSError, TimeoutError, InvalidURI) as exc:
        print(f"ws-chat: cannot connect to {args.url}: {exc}", file=sys.stderr)
    except ConnectionClosed as exc:
        printer.line(f"[connection closed: {exc}]", "31")
    return 1


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="scripts/ws-chat", description=summary)
    default_url = f"ws://127.0.0.1:{os.environ.get('WS_PORT') or 8001}"
    parser.add_argument("url", nargs="?", default=default_url, help=f"the WebSocket API (default {default_url})")
    parser.add_argument("--key", help="API key (AUTH_MODE=api_key); better: $TOKENRELAY_API_KEY (not in ps)")
    parser.add_argument("--client-id", help="?client_id= (AUTH_MODE=off): the owner of the streams")
    parser.add_argument("--json", action="store_true", help="print each message as received, one JSON object a line")
    parser.add_argument("--wait", type=float, default=120.0, help="at the end of input, wait this long for answers")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
