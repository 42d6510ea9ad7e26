"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 for teacher tests:
real HTTP, canned completions, and faults injected per request.

A completion is a function of (question, seed + choice index), so a run that gets
fewer choices than it asked for and asks again with the next seed receives exactly
what a fault-free run receives.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(question: str, seed: int) -> str:
    tag = hashlib.sha256(f"{question}|{seed}".encode()).hexdigest()[:8]
    answer = 7 if seed % 3 else 8  # two answers out of three agree
    return f"<Explanation>: step {tag}, so 3 + 4 = {answer}. <Answer>: {answer}"


class FakeOpenAI:
    """Faults are consumed one per request, in order: ``"500"``, ``("429", seconds)``,
    ``("hang", seconds)``, ``"malformed"``, ``("fewer", k)``, ``"401"``, or ``None`` (serve)."""

    def __init__(self):
        self.faults: list = []
        self.requests: list[dict] = []
        self.served = 0  # requests answered with completions
        self.block_after: int | None = None  # hang every request after this many were served
        self.latency = 0.0  # seconds each reply takes, like a model generating
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                          "body": body})
                    fault = fake.faults.pop(0) if fake.faults else None
                    blocked = fake.block_after is not None and fake.served >= fake.block_after
                fake._answer(self, body, fault, blocked)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, handler, body: dict, fault, blocked: bool) -> None:
        kind, arg = (fault if isinstance(fault, tuple) else (fault, None))
        if blocked:
            time.sleep(3600)
        if kind == "500":
            return _send(handler, 500, {"error": {"message": "internal error", "type": "server_error"}})
        if kind == "401":
            return _send(handler, 401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
        if kind == "429":
            return _send(handler, 429, {"error": {"message": "slow down", "type": "rate_limit"}},
                         {"Retry-After": str(arg)})
        if kind == "hang":
            time.sleep(arg)
        if self.latency:
            time.sleep(self.latency)
        if kind == "malformed":
            return _send_raw(handler, 200, b'{"id": "x", "choices": [{"index": 0, "message": ')
        n = body.get("n", 1) if kind != "fewer" else arg
        question = body["messages"][-1]["content"]
        seed = body.get("seed", 0)
        choices = [{"index": j, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": completion(question, seed + j)}} for j in range(n)]
        with self._lock:
            self.served += 1
        _send(handler, 200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                             "model": body["model"], "choices": choices,
                             "usage": {"prompt_tokens": 10, "completion_tokens": 12 * n, "total_tokens": 10 + 12 * n}})


def _send(handler, status: int, payload: dict, headers: dict | None = None) -> None:
    _send_raw(handler, status, json.dumps(payload).encode(), headers)


def _send_raw(handler, status: int, data: bytes, headers: dict | None = None) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
        pass
