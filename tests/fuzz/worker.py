"""The child process of the engine fuzz: ``python -m tests.fuzz.worker`` (not a test module).

Why a separate process: a crash in a C extension (mmh3 segfaulted on lone surrogates) would
end the test run instead of failing one example. The parent (``EngineWorker``) sends a
ruleset and context recipes; this process evaluates every flag for every context — through
``evaluate()`` with no kind, the flag's kind and a wrong kind, and through the compiled
function the provider calls directly — and answers with counts, the slowest evaluation and
every evaluation that did not return a proper ``Resolution``. If it dies, the parent sees the
signal and the example that caused it.

Framing: 8-byte big-endian length + pickle, both directions.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, BinaryIO

_HEADER = struct.Struct(">Q")


def _send(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _recv(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))


def evaluate_request(request: dict[str, Any]) -> dict[str, Any]:
    from openfeature_provider.engine import ErrorCode, Resolution, evaluate, parse_ruleset

    ruleset = parse_ruleset(request["ruleset"])
    cases = 0
    worst = 0.0
    problems: list[str] = []
    # CPU time of this thread: on a shared CI machine wall time would also count the
    # moments the process was not scheduled at all.
    clock = time.thread_time
    for recipe in request["recipes"]:
        ctx = recipe.materialize()
        for key, flag in ruleset.flags.items():
            wrong = "string" if flag.kind != "string" else "boolean"
            compiled = flag.compiled
            assert compiled is not None
            calls: list[tuple[Any, tuple[Any, ...]]] = [
                (evaluate, (ruleset, key, ctx)),
                (evaluate, (ruleset, key, ctx, flag.kind)),
                (evaluate, (ruleset, key, ctx, wrong)),
                (compiled, (ctx,)),  # what the provider calls on its hot path
            ]
            for fn, args in calls:
                t0 = clock()
                res = fn(*args)
                elapsed = clock() - t0
                cases += 1
                worst = max(worst, elapsed)
                if not isinstance(res, Resolution):
                    problems.append(f"{key}: returned {type(res).__name__}")
                elif res.error_code == ErrorCode.GENERAL:
                    problems.append(f"{key}: GENERAL {res.error_message}")
    return {"cases": cases, "worst": worst, "problems": problems}


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            request = _recv(stdin)
        except EOFError:
            return 0
        _send(stdout, evaluate_request(request))


class WorkerDied(Exception):
    pass


class EngineWorker:
    """The parent's handle on one worker process; restarted after a death."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        # the worker's stderr, quoted when it dies; closed in close()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115

    def _start(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.fuzz.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                cwd=root,
            )
        return self.proc

    def run(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            _send(proc.stdin, request)  # type: ignore[arg-type]
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            if not ready:
                proc.kill()
                proc.wait()
                raise WorkerDied(f"no answer within {timeout:.0f} s (evaluation hung)")
            answer: dict[str, Any] = _recv(proc.stdout)  # type: ignore[arg-type]
            return answer
        except (EOFError, BrokenPipeError, pickle.UnpicklingError):
            code = proc.wait()
            name = signal.Signals(-code).name if code < 0 else f"exit {code}"
            raise WorkerDied(f"the evaluating process died: {name}\n{self._tail()}") from None

    def _tail(self) -> str:
        self.stderr.seek(0)
        text = self.stderr.read()[-3000:].decode("utf-8", "replace")
        self.stderr.seek(0)
        self.stderr.truncate()
        return text

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


if __name__ == "__main__":
    sys.exit(main())
