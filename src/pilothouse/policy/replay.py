"""Replay a recorded trace through a policy: a decision for every tool call.

Two trace forms are read, one JSON object per line:
- a journal export (`pilothouse trace show RUN --json`): the run's input is the
  user's message, every `tool_call` is checked, a `tool_result` is recorded as
  that call's output (only if the replayed decision allowed it);
- a plain script: ``{"user": "text"}`` adds a user message, ``{"principal":
  {"user": ..., "role": ...}}`` sets the principal, and ``{"tool": NAME,
  "arguments": {...}, "output": "...", "is_error": false, "effect": "..."}``
  is a call (``name``/``kwargs`` are accepted too, as in tau-bench actions).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pilothouse.decision import Decision
from pilothouse.exceptions import PolicyError
from pilothouse.messages import ToolCall
from pilothouse.policy.context import CallRecord, Principal, RunContext
from pilothouse.policy.engine import Policy


@dataclass(frozen=True, slots=True)
class Replayed:
    """One checked call of a replayed trace."""

    line: int
    call: ToolCall
    effect: str
    decision: Decision
    recorded: Decision | None = None  # the decision in the journal, if any


def read_trace(lines: Iterable[str]) -> list[tuple[int, dict[str, Any]]]:
    """Parse JSON lines (blank lines skipped); a bad line raises `PolicyError` naming it."""
    items: list[tuple[int, dict[str, Any]]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"trace line {n}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise PolicyError(f"trace line {n}: expected a JSON object")
        items.append((n, obj))
    return items


def replay(
    policy: Policy,
    items: list[tuple[int, dict[str, Any]]],
    *,
    principal: Principal | None = None,
    env: Any = None,
) -> Iterator[Replayed]:
    """Check every call of a trace in order, building the run context as the loop would."""
    from pilothouse.events import event_from_dict

    ctx = RunContext(principal or Principal(), env=env)
    allowed: dict[tuple[int, int], CallRecord] = {}
    for n, obj in items:
        if "type" in obj:  # a journal event
            try:
                event = event_from_dict(obj)
            except (KeyError, TypeError, ValueError) as exc:
                raise PolicyError(f"trace line {n}: not a journal event ({exc})") from None
            kind = event.type
            if kind == "run_started":
                ctx.add_user_message(obj["input"])
            elif kind == "tool_call":
                ctx.clock = _at(obj.get("ts"))
                call = ToolCall.from_dict(obj["call"])
                effect = obj.get("effect", "unknown")
                rec = obj.get("decision")
                # an aggregate's answer is the recorded one: the store that gave it is not here
                ctx.replayed = RunContext.recorded_answers([event]) or None
                d = policy.check(call, ctx, effect=effect)
                yield Replayed(n, call, effect, d, Decision.from_dict(rec) if rec else None)
                if d.allowed:  # provisionally, as the loop does: the step's later calls see it
                    allowed[(event.step, obj["index"])] = ctx.record(
                        call.name, call.arguments, ok=False, effect=effect, ts=obj.get("ts")
                    )
                elif effect != "read_only":
                    ctx.record_denied(call.name, call.arguments, effect)
            elif kind == "tool_result":
                got = allowed.pop((event.step, obj["index"]), None)
                if got is not None:
                    result = obj["result"]
                    got.result = result.get("content")
                    got.ok = not result.get("is_error", False)
            continue
        if "user" in obj:
            ctx.add_user_message(str(obj["user"]))
        elif "principal" in obj:
            p = obj["principal"] or {}
            extra = {k: v for k, v in p.items() if k not in ("user", "role")}
            ctx.principal = Principal(p.get("user"), p.get("role"), extra)
        elif "tool" in obj or "name" in obj:
            name = obj.get("tool", obj.get("name"))
            args = obj.get("arguments", obj.get("kwargs")) or {}
            if not isinstance(name, str) or not isinstance(args, dict):
                raise PolicyError(
                    f"trace line {n}: a call needs a tool name and an arguments object"
                )
            info = policy.tools.get(name)
            effect = str(obj.get("effect") or (info.effect if info else "unknown"))
            call = ToolCall(str(obj.get("id", f"line{n}")), name, args)
            if "ts" in obj:
                ctx.clock = _at(obj["ts"])
            if info is not None and info.args is not None:
                unknown = sorted(set(args) - set(info.args))
                missing = sorted(set(info.required) - set(args))
                if unknown or missing:
                    why = f"unknown argument(s) {unknown}" if unknown else ""
                    why += ("; " if why else "") + (f"missing {missing}" if missing else "")
                    d = Decision.deny(
                        f"arguments rejected before the policy: {why}", "schema", source="schema"
                    )
                    yield Replayed(n, call, effect, d)
                    continue
            d = policy.check(call, ctx, effect=effect)
            yield Replayed(n, call, effect, d)
            if not d.allowed and effect != "read_only":
                ctx.record_denied(name, args, effect)
            if d.allowed:
                output = obj.get("output")
                ctx.record(
                    name,
                    args,
                    output if isinstance(output, str) or output is None else json.dumps(output),
                    ok=not obj.get("is_error", False),
                    effect=effect,
                )
        else:
            raise PolicyError(
                f"trace line {n}: expected a journal event, {{'user': ...}}, "
                "{'principal': ...} or {'tool': ..., 'arguments': ...}"
            )


def _at(ts: Any) -> Any:
    """A clock stopped at a recorded time (rate limits replay against the trace's times)."""
    value = float(ts) if isinstance(ts, int | float) else 0.0
    return lambda: value
