"""A plan as data: tasks, references between them, and validation as a whole.

A plan is what a planner model writes before anything runs: tasks, each one call of a
tool with arguments, some of which are *references* to earlier tasks' results
(``"$1"``, ``"$2.field"``, ``"$2.items[0]"``). Substitution is structural: a reference
is an argument's whole value and is replaced by the referenced JSON value (a number
stays a number), never spliced into text; a string that mentions ``$<n>`` inside other
text is refused, as is a reference that does not resolve (no such field, an index out
of range) or yields a value of the wrong type. Silent text substitution of placeholders
is the failure planners are known for (a literal ``"$1"`` reaching a tool).

Everything here is pure (no journal, no model): `plan_schema` and `join_schema` are
what the planner's and joiner's replies are held to, `parse_plan` reads a planner's reply,
`check_plan` validates a plan as a whole against the tools and the policy before
anything runs, `resolve` substitutes references with real values just before a task
runs. `pilothouse.flows.plan` drives them.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python

from pilothouse.exceptions import PlanError
from pilothouse.jsonschema_check import validate
from pilothouse.messages import ToolCall, ToolResult
from pilothouse.policy import Policy, RunContext
from pilothouse.tools.tool import Tool

# A reference: "$<task id>" then any number of ".field" and "[index]" steps.
REFERENCE = re.compile(
    r"\$([1-9][0-9]{0,3})((?:\.[A-Za-z_][A-Za-z0-9_]{0,63}|\[[0-9]{1,6}\]){0,16})"
)
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]")
# Limits on what a planner may write (a plan is model output: hostile until checked).
MAX_PLAN_CHARS = 64_000
MAX_DEPTH = 16  # nesting of an argument value


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference to task `task`'s result, then `path` (field names and list indexes)."""

    task: int
    path: tuple[str | int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Reference | None:
        """The reference `text` is as a whole, or None (not a reference)."""
        found = REFERENCE.fullmatch(text)
        if found is None:
            return None
        path: list[str | int] = []
        for name, index in _STEP.findall(found.group(2)):
            path.append(name if name else int(index))
        return cls(int(found.group(1)), tuple(path))

    def __str__(self) -> str:
        steps = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)
        return f"${self.task}{steps}"


@dataclass(frozen=True, slots=True)
class Task:
    """One task: a call of `tool` with `args`; `deps` are the tasks it waits for
    (those it names and those its references imply), sorted."""

    id: int
    tool: str
    args: dict[str, Any]
    deps: tuple[int, ...] = ()

    def references(self) -> list[tuple[str, Reference]]:
        """Each reference of the arguments, with where it is (``amount``, ``items[1]``)."""
        return list(_references(self.args, ""))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tool": self.tool, "args": self.args, "deps": list(self.deps)}


@dataclass(frozen=True, slots=True)
class Plan:
    """Tasks in the order the planner wrote them (task k runs as step first_step + k)."""

    tasks: tuple[Task, ...]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self.tasks]

    @classmethod
    def from_dicts(cls, tasks: Iterable[Mapping[str, Any]]) -> Plan:
        """The plan a `plan_accepted` event recorded."""
        return cls(
            tuple(
                Task(int(t["id"]), str(t["tool"]), dict(t["args"]), tuple(t.get("deps", ())))
                for t in tasks
            )
        )


def _references(value: Any, where: str, depth: int = 0) -> Iterable[tuple[str, Reference]]:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        ref = Reference.parse(value)
        if ref is not None:
            yield where, ref
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _references(v, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _references(v, f"{where}[{i}]", depth + 1)


def _embedded(value: Any, where: str, depth: int = 0) -> Iterable[str]:
    """Strings that mention a reference inside other text (refused: not a template)."""
    if depth > MAX_DEPTH:
        yield f"{where or 'arguments'}: nested deeper than {MAX_DEPTH} levels"
        return
    if isinstance(value, str):
        if Reference.parse(value) is None and REFERENCE.search(value):
            yield (
                f"{where}: {value[:60]!r} mentions a reference inside text; a reference "
                'must be the whole value (write "$1", not "the value $1")'
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _embedded(v, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _embedded(v, f"{where}[{i}]", depth + 1)


def parse_plan(text: str, *, max_tasks: int) -> Plan:
    """Read a planner's reply as a plan, or raise `PlanError` saying what is wrong.

    The form is ``{"tasks": [{"id": 1, "tool": "name", "args": {...}, "deps": [..]}]}``
    (`deps` optional: references imply their own).
    """
    if len(text) > MAX_PLAN_CHARS:
        raise PlanError([f"the plan is {len(text)} characters; at most {MAX_PLAN_CHARS}"])
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PlanError([f"the reply is not JSON ({exc})"]) from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise PlanError(['the reply is not a plan: expected {"tasks": [...]}'])
    raw = data["tasks"]
    if not raw:
        raise PlanError(["the plan has no tasks"])
    if len(raw) > max_tasks:
        raise PlanError([f"the plan has {len(raw)} tasks; at most {max_tasks}"])
    reasons: list[str] = []
    tasks: list[Task] = []
    for n, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            reasons.append(f"task #{n} is not an object")
            continue
        tid, tool, args = item.get("id", n), item.get("tool"), item.get("args", {})
        deps = item.get("deps", [])
        if not isinstance(tid, int) or isinstance(tid, bool) or not 1 <= tid <= 9999:
            reasons.append(f"task #{n}: id {tid!r} is not a whole number from 1 to 9999")
            continue
        if not isinstance(tool, str) or not tool:
            reasons.append(f"task {tid}: no tool named")
            continue
        if not isinstance(args, dict):
            reasons.append(f"task {tid}: args must be an object")
            continue
        if not isinstance(deps, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in deps
        ):
            reasons.append(f"task {tid}: deps must be a list of task ids")
            continue
        reasons.extend(f"task {tid}: {problem}" for problem in _embedded(args, ""))
        implied = {ref.task for _, ref in _references(args, "")}
        tasks.append(Task(tid, tool, args, tuple(sorted(set(deps) | implied))))
    if reasons:
        raise PlanError(reasons)
    return Plan(tuple(tasks))


def order(plan: Plan) -> list[int] | None:
    """The task ids in an order where each follows its dependencies; None for a cycle."""
    deps = {t.id: set(t.deps) for t in plan.tasks}
    done: list[int] = []
    ready = [t.id for t in plan.tasks if not deps[t.id]]
    placed = set(ready)
    while ready:
        tid = ready.pop(0)
        done.append(tid)
        for t in plan.tasks:
            if t.id not in placed and deps[t.id] <= set(done):
                placed.add(t.id)
                ready.append(t.id)
    return done if len(done) == len(plan.tasks) else None


def result_schema(tool: Tool) -> dict[str, Any] | None:
    """The JSON schema of what `tool` returns, from its return annotation (None: unknown)."""
    try:
        hints = typing.get_type_hints(tool.function)
    except Exception:  # an annotation that cannot be resolved: the type is unknown
        return None
    returned = hints.get("return")
    if returned is None or returned is Any:
        return None
    try:
        from pydantic import TypeAdapter

        schema: dict[str, Any] = TypeAdapter(returned).json_schema()
    except Exception:
        return None
    return schema


def _schema_at(schema: dict[str, Any] | None, path: Sequence[str | int]) -> dict[str, Any] | None:
    """The schema of the value at `path` inside a value of `schema` (None: unknown)."""
    for step in path:
        if schema is None:
            return None
        if "$ref" in schema or "anyOf" in schema or "oneOf" in schema:
            return None  # not followed: checked with the real value before the task runs
        if isinstance(step, int):
            items = schema.get("items")
            schema = items if isinstance(items, dict) else None
        else:
            props = schema.get("properties")
            schema = props.get(step) if isinstance(props, dict) else None
    return schema


def _types(schema: Mapping[str, Any] | None) -> set[str] | None:
    kind = None if schema is None else schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list) and all(isinstance(k, str) for k in kind):
        return set(kind)
    return None


def _fits(given: set[str], wanted: set[str]) -> bool:
    """Some type of the value can be a type the parameter takes (an integer is a number)."""
    widened = given | ({"number"} if "integer" in given else set())
    return bool(widened & wanted)


def check_plan(
    plan: Plan,
    tools: Mapping[str, Tool],
    policy: Policy | None,
    context: RunContext,
    *,
    approver: bool = False,
) -> list[str]:
    """Every reason the plan cannot run as a whole (empty: it may run).

    Checked before anything runs: unique ids, tools that exist, dependencies and
    references to tasks of the plan (earlier or later, never itself), no cycle,
    arguments that fit the tool's parameter schema (a reference by its result's known
    type where the tool declares one; its real value is checked again before the task
    runs), and every call through `Policy.check`: a call the policy denies, or one
    that would wait for a person (no in-process `approver`), rejects the whole plan.
    The policy sees a reference as its text: a rule that reads that argument cannot
    hold on it, so the engine (fail-closed) denies, and the call is checked again with
    the real value when it runs.
    """
    reasons: list[str] = []
    ids = [t.id for t in plan.tasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        reasons.append(f"task ids repeat: {dupes}")
    known = set(ids)
    by_id = {t.id: t for t in plan.tasks}
    for task in plan.tasks:
        if task.id in task.deps:
            reasons.append(f"task {task.id} depends on itself")
        for d in task.deps:
            if d not in known:
                reasons.append(f"task {task.id} needs task {d}, which the plan does not have")
        tool = tools.get(task.tool)
        if tool is None:
            reasons.append(
                f"task {task.id}: unknown tool {task.tool!r} (tools: {', '.join(tools)})"
            )
            continue
        reasons.extend(_argument_problems(task, tool, tools, by_id))
        reasons.extend(_policy_problems(task, tool, policy, context, approver))
    if not dupes and order(plan) is None:
        reasons.append("the tasks' dependencies form a cycle")
    return reasons


def _argument_problems(
    task: Task, tool: Tool, tools: Mapping[str, Tool], by_id: Mapping[int, Task]
) -> list[str]:
    params = tool.parameters
    props = params.get("properties", {}) if isinstance(params, dict) else {}
    refs = {where: ref for where, ref in task.references()}
    literal = {k: v for k, v in task.args.items() if k not in refs}
    problems: list[str] = []
    for name in params.get("required", []):
        if name not in task.args:
            problems.append(f"task {task.id}: {task.tool} needs argument {name!r}")
    for name, value in literal.items():
        if name not in props:
            if params.get("additionalProperties") is False:
                problems.append(f"task {task.id}: {task.tool} has no argument {name!r}")
            continue
        problem = validate(value, props[name])
        if problem is not None:
            problems.append(f"task {task.id}: argument {name!r}: {problem}")
    for where, ref in refs.items():
        name = where.split(".", 1)[0].split("[", 1)[0]
        if name not in props and params.get("additionalProperties") is False:
            problems.append(f"task {task.id}: {task.tool} has no argument {name!r}")
            continue
        source = by_id.get(ref.task)
        if source is None or source.tool not in tools or where != name:
            continue  # reported elsewhere, or nested: checked with the real value
        given = _types(_schema_at(result_schema(tools[source.tool]), ref.path))
        wanted = _types(props.get(name))
        if given is not None and wanted is not None and not _fits(given, wanted):
            problems.append(
                f"task {task.id}: argument {name!r} takes {'/'.join(sorted(wanted))}, but "
                f"{ref} is {'/'.join(sorted(given))} ({source.tool}'s result)"
            )
    return problems


def _policy_problems(
    task: Task, tool: Tool, policy: Policy | None, context: RunContext, approver: bool
) -> list[str]:
    if tool.interrupt is not None:
        return [
            f"task {task.id}: {task.tool} waits for a person ({tool.interrupt}); a planned "
            "run does not pause for people: call it from an agent instead"
        ]
    if policy is None:
        return []
    call = ToolCall(f"task_{task.id}", task.tool, dict(task.args))
    if not task.references():
        prepared = tool.prepare(call)
        if isinstance(prepared, dict):
            call = ToolCall(call.id, call.name, to_jsonable_python(prepared))
    decision = policy.check(call, context, effect=tool.effect)
    if decision.effect == "deny":
        return [f"task {task.id}: the policy refuses {task.tool}: {decision.reason}"]
    if decision.effect == "ask" and not approver:
        return [
            f"task {task.id}: the policy asks a person before {task.tool} ({decision.reason}); "
            "a planned run does not pause for people"
        ]
    return []


def resolve(value: Any, results: Mapping[int, Any], depth: int = 0) -> Any:
    """`value` with every reference replaced by the referenced result (structurally).

    Raises `PlanError` for a reference to a task without a result, a field that is not
    there, an index out of range, or a step into something that is not an object or
    a list.
    """
    if depth > MAX_DEPTH:
        raise PlanError([f"an argument is nested deeper than {MAX_DEPTH} levels"])
    if isinstance(value, str):
        ref = Reference.parse(value)
        return value if ref is None else follow(ref, results)
    if isinstance(value, dict):
        return {k: resolve(v, results, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, results, depth + 1) for v in value]
    return value


def follow(ref: Reference, results: Mapping[int, Any]) -> Any:
    """The value `ref` names among `results` (task id -> JSON value)."""
    if ref.task not in results:
        raise PlanError([f"{ref}: task {ref.task} has no result"])
    value = results[ref.task]
    at = f"${ref.task}"
    for step in ref.path:
        if isinstance(step, int):
            if not isinstance(value, list):
                raise PlanError([f"{ref}: {at} is {_kind(value)}, not a list"])
            if step >= len(value):
                raise PlanError([f"{ref}: {at} has {len(value)} items, no [{step}]"])
            value = value[step]
            at += f"[{step}]"
        else:
            if not isinstance(value, dict):
                raise PlanError([f"{ref}: {at} is {_kind(value)}, not an object"])
            if step not in value:
                raise PlanError([f"{ref}: {at} has no field {step!r} ({', '.join(value)})"])
            value = value[step]
            at += f".{step}"
    return value


def _kind(value: Any) -> str:
    name = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return name.get(type(value), type(value).__name__)


def value_of(result: ToolResult) -> Any:
    """A task's result as a JSON value: its content parsed as JSON, else the text."""
    try:
        return json.loads(result.content)
    except ValueError:
        return result.content


def check_resolved(task: Task, tool: Tool, args: Mapping[str, Any]) -> list[str]:
    """Arguments filled from references, checked against the tool's parameter schemas
    before it runs: a value of the wrong type is an error, never coerced silently."""
    props = tool.parameters.get("properties", {})
    problems: list[str] = []
    for where, ref in task.references():
        name = where.split(".", 1)[0].split("[", 1)[0]
        schema = props.get(name)
        if schema is None:
            continue
        problem = validate(args.get(name), schema)
        if problem is not None:
            problems.append(f"task {task.id}: argument {name!r} from {ref}: {problem}")
    return problems


# ------------------------------------------------ the schemas the planner and joiner are held to

_REF_PATTERN = r"^[$][1-9][0-9]{0,3}(([.][A-Za-z_][A-Za-z0-9_]*)|(\[[0-9]+\]))*$"


def plan_schema(tools: Sequence[Tool], max_tasks: int) -> dict[str, Any]:
    """The JSON schema a plan is held to: one task form per tool, each argument its
    parameter's schema or a reference (``"$1"``, ``"$2.field"``)."""
    ref = {"type": "string", "pattern": _REF_PATTERN}
    variants = []
    for tool in tools:
        params = tool.parameters
        props = {
            name: {"anyOf": [schema, ref]} for name, schema in params.get("properties", {}).items()
        }
        args = {
            "type": "object",
            "properties": props,
            "required": list(params.get("required", [])),
            "additionalProperties": False,
        }
        variants.append(
            {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "tool": {"const": tool.name},
                    "args": args,
                },
                "required": ["id", "tool", "args"],
                "additionalProperties": False,
            }
        )
    return {
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_tasks,
                "items": {"anyOf": variants},
            }
        },
        "required": ["tasks"],
        "additionalProperties": False,
    }


def join_schema(
    task_ids: Sequence[int], output: dict[str, Any] | None, *, grounded: bool = False
) -> dict[str, Any]:
    """The JSON schema of the joiner's reply: an answer (a text, the output type's
    value, or a reference to a task's result) or a request for a new plan.

    `grounded`: the answer can only be a reference (a task's result as it is), the
    joiner's counterpart of the guided layer's grounded answers for small models,
    which otherwise write a sentence around no number at all."""
    given: dict[str, Any] = output if output is not None else {"type": "string", "maxLength": 400}
    refs = [f"${i}" for i in task_ids]
    if grounded and refs:
        answer: dict[str, Any] = {"enum": refs}
    else:
        answer = {"anyOf": [{"enum": refs}, given]} if refs else given
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {"answer": answer},
                "required": ["answer"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"replan": {"type": "string", "maxLength": 400}},
                "required": ["replan"],
                "additionalProperties": False,
            },
        ]
    }


def describe_tools(tools: Sequence[Tool]) -> str:
    """One line per tool for the planner: name(parameter: type, ...) and its description."""
    lines = []
    for tool in tools:
        props = tool.parameters.get("properties", {})
        params = ", ".join(f"{n}: {s.get('type', 'any')}" for n, s in props.items())
        desc = f": {tool.description}" if tool.description else ""
        lines.append(f"- {tool.name}({params}){desc}")
    return "\n".join(lines)
