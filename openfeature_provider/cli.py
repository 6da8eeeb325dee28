"""``flagapp-eval``: evaluate a ruleset file against JSON-lines contexts.

Why a CLI: a snapshot can be checked in CI or debugged on a laptop with exactly the engine
production runs, without Django or a server. Usage (see docs/cli.md)::

    flagapp-eval --ruleset snapshot.json [--flag KEY] [--explain] < contexts.jsonl

Each input line is one JSON object (an evaluation context). For each context and each flag
(or only ``--flag``) one JSON line is written:
``{"flag", "value", "variant", "reason", "errorCode"}``; ``--explain`` adds ``"rule"`` (the
id of the deciding rule, null for the fallthrough), ``"errorMessage"`` and ``"why"`` (the
path to the outcome: prerequisites, each rule's conditions and segments with the values
read, the rollout position; ``engine.explain``, also what the admin's playground shows).
``value`` is null whenever the caller's default would be served.

Exit status: 0 all lines evaluated; 1 some input lines were invalid (not UTF-8, not JSON,
nested too deeply for the JSON decoder, or not an object: reported on stderr with their line
number and skipped); 2 the ruleset could not be read or is invalid. No input line can end the
run early: whatever a context holds, evaluation answers (an unusable value is an error code).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from openfeature_provider.engine import ParseError, Resolution, evaluate, parse_ruleset, served
from openfeature_provider.engine.explain import Explainer, explain_row, to_json_line

__all__ = ["main"]

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_BAD_RULESET = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flagapp-eval",
        description="Evaluate a flagapp ruleset (format v1) for JSON-lines contexts on stdin.",
    )
    parser.add_argument("--ruleset", required=True, metavar="FILE", help="ruleset JSON file")
    parser.add_argument("--flag", metavar="KEY", help="evaluate only this flag")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="add the deciding rule id, the error message and why (the path to the outcome)",
    )
    return parser


def _row(res: Resolution) -> dict[str, Any]:
    out = served(res, None)  # the engine's one adapter; the CLI has no default: null
    return {
        "flag": res.flag_key,
        "value": out.value,
        "variant": out.variant,
        "reason": out.reason,
        "errorCode": out.error_code,
    }


def run(argv: Sequence[str] | None, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """The CLI with explicit streams (what tests and ``main`` call)."""
    args = _parser().parse_args(argv)
    # The engine logs unusable attribute types (once per condition and type): shown as
    # "flagapp-eval: warning: ..." on stderr, apart from the per-line input errors.
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("flagapp-eval: warning: %(message)s"))
    engine_logger = logging.getLogger("flagapp.engine")
    engine_logger.addHandler(handler)
    propagate, engine_logger.propagate = engine_logger.propagate, False
    try:
        return _run(args, stdin, stdout, stderr)
    finally:
        engine_logger.removeHandler(handler)
        engine_logger.propagate = propagate


def _run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    try:
        with open(args.ruleset, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        print(f"flagapp-eval: cannot read {args.ruleset}: {exc.strerror or exc}", file=stderr)
        return EXIT_BAD_RULESET
    try:
        ruleset = parse_ruleset(data)
    except ParseError as exc:
        print(f"flagapp-eval: invalid ruleset: {exc}", file=stderr)
        return EXIT_BAD_RULESET

    keys = [args.flag] if args.flag is not None else list(ruleset.flags)
    explainer = Explainer(ruleset) if args.explain else None
    status = EXIT_OK
    for lineno, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        if not line.isascii() and not _is_utf8(line):
            # main() decodes stdin with surrogateescape: undecodable bytes arrive as lone
            # surrogates, which valid UTF-8 never produces (JSON escapes like "\ud800"
            # are ASCII and go on to the engine, which treats them as unusable values).
            print(f"flagapp-eval: line {lineno}: not valid UTF-8", file=stderr)
            status = EXIT_BAD_INPUT
            continue
        try:
            context = json.loads(line)
        except ValueError as exc:
            print(f"flagapp-eval: line {lineno}: invalid JSON: {exc}", file=stderr)
            status = EXIT_BAD_INPUT
            continue
        except RecursionError:
            print(f"flagapp-eval: line {lineno}: invalid JSON: nested too deeply", file=stderr)
            status = EXIT_BAD_INPUT
            continue
        if not isinstance(context, dict):
            print(f"flagapp-eval: line {lineno}: a context must be a JSON object", file=stderr)
            status = EXIT_BAD_INPUT
            continue
        for key in keys:
            if explainer is not None:
                row = explain_row(ruleset, key, context, explainer=explainer)
            else:
                row = _row(evaluate(ruleset, key, context))
            stdout.write(to_json_line(row) + "\n")
    stdout.flush()
    return status


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point (``flagapp-eval``)."""
    stdin: TextIO = sys.stdin
    if isinstance(stdin, io.TextIOWrapper):
        # Undecodable input bytes become lone surrogates, which run() reports per line,
        # instead of a UnicodeDecodeError ending the whole run.
        stdin = io.TextIOWrapper(stdin.buffer, encoding="utf-8", errors="surrogateescape")
    return run(argv, stdin, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
