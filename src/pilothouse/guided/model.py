"""`GuidedModel`: tool use built in narrow, constrained stages over any schema-capable model.

A 135M model cannot choose a tool and write its arguments in one go, but it can
answer one narrow question at a time when its reply is held to a JSON schema. So a
step with tools on offer is decoded in stages, each one generation of the inner
model on plain chat turns (`render.text_messages`) with the stage's schema as
``output_schema``; the inner model never needs native tool calling, only a way to
constrain its output (llama.cpp's grammar in `LocalModel`, ``response_format`` on an
OpenAI-compatible server):

1. pre-selection: the tools are ranked by lexical match (BM25,
   `pilothouse.tools.select`) of the latest user message; only the ``select_limit``
   best that match at all are shown (all of them when none matches);
2. ``choose``: ``{"tool": <one of those names>}`` or an answer. An answer given
   before any tool ran that holds a number no user message holds (copied from a
   worked example, or made up) is not trusted: ``choose-tool`` asks for a tool only;
3. ``arguments``: a prompt showing only the chosen tool, with the examples its schema
   declares, and the schema of that tool's arguments;
4. verification: a call identical to one already made since the user's message
   becomes an answer (``answer``: its result is already in the conversation); a short
   string argument made of words nobody said is asked again once (``narrow``),
   limited to the user's own words or to substrings matching its pattern;
5. after a tool result, answers may only use words of the question and the results
   (`checks.grounded_answer`), or, for JSON results, are one of their best-matching
   ``path: value`` lines (`checks.extracted_answer`): picked, not written.

``staged=False`` gives a single constrained generation (``reply``) of the whole
reply schema instead. Every generation is a `Stage` reported to the caller's
`StageLog` as it happens (the agent loop journals it), so the trace, `render` and
replay show what the model really received. The checks between stages are
deterministic functions of the conversation, so replaying the recorded stage replies
re-runs the same construction.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from pilothouse.exceptions import ConfigurationError, ModelOutputError
from pilothouse.guided.arguments import (
    distinct_parameters,
    free_strings,
    grounded_parameters,
    repeated_values,
    self_named,
    settle,
)
from pilothouse.guided.brevity import short, trimmed
from pilothouse.guided.checks import (
    Turn,
    extracted_answer,
    grounded_answer,
    grounding,
    invented_numbers,
    narrowed,
    ungrounded,
)
from pilothouse.guided.forms import formed_values
from pilothouse.guided.parallel import expanded
from pilothouse.guided.relevance import asked_for, echoes, relevant_tools
from pilothouse.guided.render import TOOL_PROMPT, TOOL_RESULT_PROMPT, text_messages
from pilothouse.guided.schemas import answer_schema, choice_schema, reply_schema
from pilothouse.guided.split import joined_calls, parts_of, sub_request
from pilothouse.guided.value_forms import is_request_date
from pilothouse.messages import ToolCall, Usage
from pilothouse.models.base import (
    Capabilities,
    Guidance,
    Model,
    ModelRequest,
    ModelResponse,
    Stage,
    Staged,
    StageLog,
    StreamItem,
    ToolSpec,
)
from pilothouse.prompts import Prompts
from pilothouse.tools.select import select_tools

__all__ = ["GuidedModel", "guide_for", "guided", "needs_guide"]


def needs_guide(request: ModelRequest) -> bool:
    """Whether a request uses tools (offered, or earlier calls and results to show)."""
    return bool(request.tools) or any(m.role == "tool" or m.tool_calls for m in request.messages)


class GuidedModel:
    """Guided tool use over `inner`, any model that can hold its reply to a JSON schema.

    `select_limit`, `grounded_answers`, `flatten_json`, `tool_prompt` and
    `tool_result_prompt` are described in this module's docstring; `staged=False`
    asks for the whole reply in one constrained generation. The name is the inner
    model's when that model asks for guidance itself (``local:smollm2-135m`` has always
    meant the guided embedded model), ``guided:<inner>`` otherwise.

    Requests without tools pass straight to the inner model (streaming included).
    """

    def __init__(
        self,
        inner: Model,
        *,
        staged: bool = True,
        select_limit: int = 3,
        grounded_answers: bool = True,
        flatten_json: bool = False,
        tool_prompt: str = TOOL_PROMPT,
        tool_result_prompt: str = TOOL_RESULT_PROMPT,
        name: str | None = None,
        relevance: bool = True,
        settle_arguments: bool = True,
        split_requests: bool = True,
    ) -> None:
        if select_limit < 1:
            raise ConfigurationError(f"select_limit must be at least 1, not {select_limit}")
        if not inner.capabilities.json_schema:
            raise ConfigurationError(
                f"{inner.name} cannot hold its reply to a JSON schema, which guided "
                "decoding needs (Capabilities.json_schema)"
            )
        self.inner = inner
        self.staged_mode = staged
        self.select_limit = select_limit
        self.grounded_answers = grounded_answers
        self.flatten_json = flatten_json
        self.relevance = relevance
        self.settle_arguments = settle_arguments
        self.split_requests = split_requests
        # a replaced prompt is checked against the fields the layer fills (prompts.toml)
        defaults = Prompts.default()
        self.tool_prompt = defaults["guided_tools"].with_text(tool_prompt).text
        self.tool_result_prompt = defaults["guided_tool_result"].with_text(tool_result_prompt).text
        self._name = name or (inner.name if inner.capabilities.guided else f"guided:{inner.name}")
        caps = inner.capabilities
        self.capabilities = Capabilities(
            native_tools=True, json_schema=True, grammar=False, streaming=caps.streaming
        )

    @classmethod
    def of(cls, inner: Model, guidance: Guidance | None = None) -> GuidedModel:
        """The guided model a model's own `Guidance` asks for (defaults when None)."""
        g = guidance or Guidance()
        return cls(
            inner,
            staged=g.staged,
            select_limit=g.select_limit,
            grounded_answers=g.grounded_answers,
            flatten_json=g.flatten_json,
            tool_prompt=g.tool_prompt or TOOL_PROMPT,
            tool_result_prompt=g.tool_result_prompt or TOOL_RESULT_PROMPT,
        )

    def over(self, inner: Model) -> GuidedModel:
        """The same guidance over another inner model (replay serves recorded stages)."""
        return GuidedModel(
            inner,
            staged=self.staged_mode,
            select_limit=self.select_limit,
            grounded_answers=self.grounded_answers,
            flatten_json=self.flatten_json,
            tool_prompt=self.tool_prompt,
            tool_result_prompt=self.tool_result_prompt,
            name=self._name,
            relevance=self.relevance,
            settle_arguments=self.settle_arguments,
            split_requests=self.split_requests,
        )

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"GuidedModel({self.inner!r})"

    # ------------------------------------------------------------------ the protocol

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer one request: in stages when it uses tools, else by the inner model."""
        if not needs_guide(request):
            return await self.inner.generate(request)
        return await self.staged(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """The inner model's stream without tools; with tools only the final response."""
        if not needs_guide(request):
            async for item in self.inner.stream(request):
                yield item
            return
        yield await self.staged(request)

    def render(self, request: ModelRequest) -> str:
        """What the inner model receives first for this request: the first stage's prompt."""
        if not needs_guide(request):
            return self.inner.render(request)
        stage = self.first_stage(request)
        head = f"----- guided stage: {stage.name} (tools shown: {', '.join(stage.tools)}) -----\n"
        return head + self.inner.render(stage.request)

    # ------------------------------------------------------------------ stages

    def _stage(
        self,
        name: str,
        shown: ModelRequest,
        schema: dict[str, Any] | None,
        *,
        note: str = "",
        schemas: dict[str, dict[str, Any]] | None = None,
    ) -> Stage:
        """The stage showing `shown` (its tools, choice and output schema) as text turns."""
        messages, added = text_messages(
            shown,
            tool_prompt=self.tool_prompt,
            tool_result_prompt=self.tool_result_prompt,
            flatten_json=self.flatten_json,
        )
        request = ModelRequest(messages, [], schema, "auto", shown.settings)
        tools = [t.name for t in shown.tools] if shown.tool_choice != "none" else []
        return Stage(name, request, tools, added, schemas, note)

    def first_stage(self, request: ModelRequest, *, whole: bool = True) -> Stage:
        """The first generation `staged` would ask for `request` (what `render` shows)."""
        if not self.staged_mode or not request.tools or request.tool_choice == "none":
            return self._single(request)
        parts = self._parts(request) if whole else []
        if parts:
            return self.first_stage(sub_request(request, parts[0]), whole=False)
        turn = Turn.of(request.messages)
        offered = self._relevant(request, turn)
        if not offered:
            return self._abstain_stage(request, turn)
        chosen = self._preselect(turn, offered)
        required = request.tool_choice == "required"
        plain = self._plainly_asked(request, turn, chosen)
        if (required or plain) and len(chosen) == 1:
            held, note = self._grounded(chosen[0], turn)
            note = "; ".join(n for n in (plain, note) if n)
            return self._arguments_stage(request, chosen[0], held, note, "arguments")
        text = self._answer_text(request, turn)
        schema = (
            choice_schema(chosen, None, True)
            if required or plain
            else choice_schema(chosen, request.output_schema, False, text)
        )
        return self._stage("choose", self._choosing(request, turn, chosen), schema, note=plain)

    def _choosing(self, request: ModelRequest, turn: Turn, chosen: list[ToolSpec]) -> ModelRequest:
        """The request a `choose` stage shows: the chosen tools; before any tool ran,
        with an answer asked short (`brevity`: a tool choice is far shorter)."""
        shown = replace(request, tools=chosen)
        if turn.results or request.output_schema is not None or request.tool_choice == "required":
            return shown
        return replace(shown, settings=short(request.settings))

    def _plainly_asked(self, request: ModelRequest, turn: Turn, chosen: list[ToolSpec]) -> str:
        """Why this first decision after a user message asks for a tool only ("": it
        does not): the request plainly asks for one of the tools (`relevance.asked_for`).

        Only where the relevance gate applies (an answer allowed, no tool ran yet) and
        the reply is free text: a run with an output schema may be answered directly.
        """
        if not self.relevance or request.tool_choice != "auto" or turn.calls:
            return ""
        if turn.results or request.output_schema is not None or not turn.query.strip():
            return ""
        named = [t.name for t in chosen if asked_for(turn.query, t)]
        if not named:
            return ""
        return f"the request plainly asks for {', '.join(named)}: a tool only (guided.relevance)"

    def _single(self, request: ModelRequest) -> Stage:
        schema = reply_schema(request.tools, request.output_schema, request.tool_choice)
        return self._stage("reply", request, schema)

    def _relevant(self, request: ModelRequest, turn: Turn) -> list[ToolSpec]:
        """The offered tools that fit the request (`relevance`), when the gate applies.

        It applies to the first decision after a user message, when an answer is
        allowed: after a tool ran, the next tool may share no word with the question.
        """
        offered = list(request.tools)
        if not self.relevance or request.tool_choice == "required" or turn.calls:
            return offered
        if not turn.query.strip():
            return offered
        instructions = "\n".join(m.content for m in request.messages if m.role == "system")
        return relevant_tools(turn.query, offered, instructions)

    def _abstain_stage(self, request: ModelRequest, turn: Turn) -> Stage:
        """The answer given when no offered tool fits: the request without its tools."""
        names = ", ".join(t.name for t in request.tools)
        note = (
            f"no offered tool fits the request ({names}): no word of {turn.query[:80]!r} "
            "names one (guided.relevance)"
        )
        bare = replace(request, tools=[], tool_choice="none")
        if request.output_schema is None:
            bare = replace(bare, settings=short(request.settings))
        return self._stage("answer", bare, request.output_schema, note=note)

    def _preselect(self, turn: Turn, offered: Sequence[ToolSpec]) -> list[ToolSpec]:
        chosen = select_tools(turn.query, offered, self.select_limit) if turn.query else []
        return chosen or list(offered)

    def _answer_text(self, request: ModelRequest, turn: Turn) -> dict[str, Any] | None:
        """The string schema an answer after tool results is held to (None: free)."""
        if not (self.grounded_answers and turn.results and request.output_schema is None):
            return None
        sources = [t for t in request.tools if t.name in {c.name for c in turn.calls}]
        return extracted_answer(turn.query, turn.results, sources) or grounded_answer(turn.results)

    def _grounded(self, spec: ToolSpec, turn: Turn) -> tuple[ToolSpec | None, str]:
        """`spec` held to the request's own values (`arguments.grounded_parameters`) for
        the first call after a user message, with the note saying so; (None, "") else."""
        if not self.settle_arguments or turn.calls or not turn.query.strip():
            return None, ""
        parameters = grounded_parameters(spec, turn.query)
        if parameters is None:
            return None, ""
        note = "values held to the request's own spans and numbers (guided.arguments)"
        return ToolSpec(spec.name, spec.description, parameters), note

    def _arguments_stage(
        self,
        request: ModelRequest,
        spec: ToolSpec,
        narrow: ToolSpec | None = None,
        note: str = "",
        name: str = "narrow",
    ) -> Stage:
        focused = replace(request, tools=[spec], tool_choice="required")
        if narrow is None:
            schema = reply_schema([spec], None, "required")
            return self._stage("arguments", focused, schema, note=note)
        return self._stage(
            name,
            focused,
            reply_schema([narrow], None, "required"),
            note=note,
            schemas={spec.name: narrow.parameters},
        )

    async def _ask(
        self,
        stage: Stage,
        log: StageLog | None,
        spent: list[Usage],
        tool_names: Sequence[str],
        json_answer: bool = False,
    ) -> ModelResponse:
        """One generation: reported to `log`, then read as a call or an answer.

        With no tool names the inner model's reply is the response as it is (plain
        text, or the JSON of the run's output schema).
        """
        if log is not None:
            log.requested(stage)
        began = time.perf_counter()
        try:
            raw = await self.inner.generate(stage.request)
        except ModelOutputError as exc:
            # The inner model could not finish the JSON (cut off): a tool name already
            # written is still certain.
            if exc.body is None or (json_answer and not tool_names):
                raise
            usage = getattr(exc, "usage", None)
            raw = ModelResponse(
                exc.body,
                usage=usage if isinstance(usage, Usage) else Usage(requests=1),
                model=self.inner.name,
                finish_reason="length",
            )
            reason = getattr(exc, "reason", None)
            why = reason if isinstance(reason, str) else str(exc)
            if log is not None:
                log.responded(stage, raw, time.perf_counter() - began, why)
            spent.append(raw.usage)
            call = partial_call(raw, tool_names, why) if tool_names else None
            if call is None:
                call = None if json_answer else partial_answer(raw)
            if call is None:
                raise
            return call
        if log is not None:
            log.responded(stage, raw, time.perf_counter() - began)
        spent.append(raw.usage)
        if not tool_names:
            return raw
        return read_reply(raw, tool_names, json_answer=json_answer)

    def _parts(self, request: ModelRequest) -> list[str]:
        """The sub-requests a request is split into (`guided.split`; [] when it is not)."""
        return parts_of(request) if self.split_requests and self.staged_mode else []

    async def _split(
        self, request: ModelRequest, parts: list[str], log: StageLog | None
    ) -> ModelResponse:
        """One call per sub-request: the single-call construction run on each alone
        (its stages journaled as they happen, each noting its sub-request), the calls
        joined in order. A sub-request that yields no call adds none; when none does,
        the first one's answer is the reply."""
        responses = []
        for k, part in enumerate(parts, 1):
            noted = _PartLog(log, f"sub-request {k} of {len(parts)}: {part[:80]!r} (guided.split)")
            responses.append(await self.staged(sub_request(request, part), noted, whole=False))
        calls = [c for r in responses for c in r.tool_calls if c.parse_error is None]
        if not calls:
            return _spent(responses[0], [r.usage for r in responses])
        return _spent(
            replace(
                responses[0], text="", tool_calls=joined_calls(calls), finish_reason="tool_calls"
            ),
            [r.usage for r in responses],
        )

    async def staged(
        self, request: ModelRequest, log: StageLog | None = None, *, whole: bool = True
    ) -> ModelResponse:
        """Choose a tool (or answer), then write that tool's arguments, then verify them;
        a request that asks for several calls, once per sub-request (`whole`: this
        request may be split; a sub-request is not split again)."""
        spent: list[Usage] = []
        json_out = request.output_schema is not None
        if not self.staged_mode or not request.tools or request.tool_choice == "none":
            stage = self._single(request)
            response = await self._ask(stage, log, spent, stage.tools, json_out)
            return _spent(response, spent)
        parts = self._parts(request) if whole else []
        if parts:
            return await self._split(request, parts, log)

        turn = Turn.of(request.messages)
        offered = list(request.tools)
        fitting = self._relevant(request, turn)
        if not fitting:
            stage = self._abstain_stage(request, turn)
            answer = await self._ask(stage, log, spent, [], json_out)
            if answer.finish_reason == "length" and not json_out:
                answer = replace(answer, text=trimmed(answer.text))
            return _spent(replace(answer, tool_calls=()), spent)
        chosen = self._preselect(turn, fitting)
        required = request.tool_choice == "required"
        plain = self._plainly_asked(request, turn, chosen)
        text = self._answer_text(request, turn)

        spec: ToolSpec | None = None
        if (required or plain) and len(chosen) == 1:
            spec = chosen[0]
        else:
            names = [t.name for t in chosen]
            tools_only = choice_schema(chosen, None, True)
            schema = (
                tools_only
                if required or plain
                else choice_schema(chosen, request.output_schema, False, text)
            )
            shown = self._choosing(request, turn, chosen)
            choice = await self._ask(
                self._stage("choose", shown, schema, note=plain), log, spent, names, json_out
            )
            early = (
                not choice.tool_calls
                and not required
                and not turn.results
                and request.output_schema is None
            )
            invented = early and bool(invented_numbers(choice.text, request.messages))
            echoed = early and self.relevance and echoes(choice.text, turn.query)
            if invented or echoed:
                if len(chosen) == 1:
                    spec = chosen[0]
                else:
                    why = (
                        "holds a number no user message holds"
                        if invented
                        else "only repeats the request's words"
                    )
                    note = f"the answer {choice.text[:80]!r} {why}, before any tool ran"
                    stage = self._stage("choose-tool", shown, tools_only, note=note)
                    choice = await self._ask(stage, log, spent, names, json_out)
            if spec is None:
                if not choice.tool_calls or choice.tool_calls[0].parse_error is not None:
                    return _spent(choice, spent)
                spec = next(t for t in chosen if t.name == choice.tool_calls[0].name)

        held, held_note = self._grounded(spec, turn)
        if plain and len(chosen) == 1:  # no choose stage: the arguments stage says why
            held_note = "; ".join(n for n in (plain, held_note) if n)
        stage = self._arguments_stage(request, spec, held, held_note, "arguments")
        response = await self._ask(stage, log, spent, [spec.name])
        if response.finish_reason == "length" and response.tool_calls:
            # cut off while writing the arguments (a string run on): asked again with
            # the free strings held to the request's own spans, which end
            narrow = narrowed(spec, free_strings(spec), turn.query)
            if narrow is not None:
                note = "the arguments were cut off at the token limit"
                response = await self._ask(
                    self._arguments_stage(request, spec, narrow, note), log, spent, [spec.name]
                )
        if not response.tool_calls or response.tool_calls[0].parse_error is not None:
            return _spent(response, spent)
        response = self._settled(request, spec, response)
        if self.settle_arguments and not turn.calls:
            response = await self._distinct(request, spec, turn, response, log, spent)
        call = response.tool_calls[0]

        if not required and turn.repeats(call):
            note = (
                f"{call.name}({json.dumps(call.arguments, sort_keys=True)}) was already called "
                "since the user's message: its result is in the conversation"
            )
            again = self._stage("answer", request, answer_schema(request.output_schema, text))
            again.note = note
            answer = await self._ask(again, log, spent, [t.name for t in offered], json_out)
            return _spent(answer, spent)

        said = "\n".join(m.content for m in request.messages if m.role != "assistant")
        bad = ungrounded(call.arguments, spec, grounding(request, spec), said)
        properties = (spec.parameters or {}).get("properties") or {}
        bad = [  # a value in its parameter's form ("USD" for "US dollars", "2023-06-30" for
            # "June 30th 2023") is the request's
            n
            for n in bad
            if call.arguments.get(n) not in formed_values(n, properties.get(n), turn.query)
            and not is_request_date(call.arguments.get(n), turn.query)
        ]
        if bad:
            narrow = narrowed(spec, bad, turn.query)
            if narrow is not None:
                note = f"{', '.join(bad)}: words nobody in the conversation said"
                retry = await self._ask(
                    self._arguments_stage(request, spec, narrow, note), log, spent, [spec.name]
                )
                if retry.tool_calls and retry.tool_calls[0].parse_error is None:
                    response = self._settled(request, spec, retry)
        if self.settle_arguments and not turn.calls:
            calls = expanded(response.tool_calls[0], spec, turn.query)
            if len(calls) > 1:  # one call per value the request enumerates
                response = replace(response, tool_calls=tuple(calls))
        return _spent(response, spent)

    async def _distinct(
        self,
        request: ModelRequest,
        spec: ToolSpec,
        turn: Turn,
        response: ModelResponse,
        log: StageLog | None,
        spent: list[Usage],
    ) -> ModelResponse:
        """The call with each free string that repeats another argument's value, or only
        names its own parameter, asked again among the request's other spans
        (`arguments.repeated_values`, `arguments.self_named`)."""
        arguments = response.tool_calls[0].arguments
        repeated = repeated_values(arguments, spec)
        labels = [n for n in self_named(arguments, spec) if n not in repeated]
        if not repeated and not labels:
            return response
        schema = distinct_parameters(spec, arguments, [*repeated, *labels], turn.query)
        if schema is None:
            return response
        why = [f"{', '.join(repeated)}: a value another argument holds"] if repeated else []
        why += [f"{', '.join(labels)}: only the parameter's own name"] if labels else []
        note = "; ".join(why) + " (guided.arguments)"
        held = ToolSpec(spec.name, spec.description, schema)
        stage = self._arguments_stage(request, spec, held, note, "distinct")
        retry = await self._ask(stage, log, spent, [spec.name])
        if not retry.tool_calls or retry.tool_calls[0].parse_error is not None:
            return response
        return self._settled(request, spec, retry)

    def _settled(
        self, request: ModelRequest, spec: ToolSpec, response: ModelResponse
    ) -> ModelResponse:
        """The response's call with its arguments settled against the user's words
        (`arguments.settle`: enums the request names, unsupported optionals left out)."""
        if not self.settle_arguments:
            return response
        call = response.tool_calls[0]
        said = "\n".join(m.content for m in request.messages if m.role == "user")
        arguments, changes = settle(call.arguments, spec, said)
        if not changes:
            return response
        return replace(response, tool_calls=(replace(call, arguments=arguments),))


class _PartLog:
    """The step's `StageLog`, each stage's note saying which sub-request it serves (a
    note is not part of what the model receives: replay digests are unchanged)."""

    def __init__(self, log: StageLog | None, note: str) -> None:
        self.log = log
        self.note = note

    def requested(self, stage: Stage) -> None:
        stage.note = "; ".join(n for n in (self.note, stage.note) if n)
        if self.log is not None:
            self.log.requested(stage)

    def responded(
        self, stage: Stage, response: ModelResponse, duration: float, error: str | None = None
    ) -> None:
        if self.log is not None:
            self.log.responded(stage, response, duration, error)


def partial_call(raw: ModelResponse, tool_names: Sequence[str], why: str) -> ModelResponse | None:
    """A reply cut off after its tool name: that call, carrying why its arguments are missing.

    The schema makes the tool name a complete JSON string before anything else; once
    its closing quote was written, the name is certain. None when it was not.
    """
    m = re.match(r'\s*\{\s*"tool"\s*:\s*("(?:[^"\\]|\\.)*")', raw.text)
    if not m:
        return None
    called = json.loads(m.group(1))
    if called not in tool_names:
        return None
    call = ToolCall(f"call_{uuid.uuid4().hex[:12]}", called, {}, f"{why}: {raw.text[:300]}")
    return ModelResponse(
        tool_calls=(call,), usage=raw.usage, model=raw.model, finish_reason=raw.finish_reason
    )


_ANSWER_START = re.compile(r'\s*\{\s*"answer"\s*:\s*"')


def partial_answer(raw: ModelResponse) -> ModelResponse | None:
    """A text answer cut off at the token limit: what it said, up to its last sentence.

    A small model that runs on ("2mA * 2m = 4mA * 2 = 8mA ...") reaches the limit
    inside its answer string; what it wrote before is still its answer, and a run
    must not end on a JSON error for it. The text is cut back to the last complete
    sentence (or word) and ends with an ellipsis. None when the reply is not an
    answer string.
    """
    m = _ANSWER_START.match(raw.text)
    if not m:
        return None
    body = raw.text[m.end() :]
    chars: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == '"':
            break
        if c == "\\":
            if i + 1 >= len(body):
                break
            try:
                chars.append(json.loads(f'"{body[i : i + 2]}"'))
            except ValueError:
                break
            i += 2
            continue
        chars.append(c)
        i += 1
    text = "".join(chars).rstrip()
    end = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    if end > 0:
        text = text[: end + 1]
    elif " " in text:
        text = text[: text.rfind(" ")]
    text = text.rstrip(" ,;:") + " ..."
    return ModelResponse(text=text, usage=raw.usage, model=raw.model, finish_reason="length")


def read_reply(
    raw: ModelResponse, tool_names: Sequence[str], *, json_answer: bool = False
) -> ModelResponse:
    """A stage's JSON reply as a tool call or an answer; never a guess at cut-off JSON.

    `json_answer`: the answer's value is JSON (the run has an output schema), kept as
    JSON text rather than unwrapped.
    """
    text, name = raw.text, raw.model
    try:
        value = json.loads(text, strict=False)
    except ValueError as exc:
        if raw.finish_reason == "length":
            why, fix = "the reply was cut off before its JSON was complete", "raise max_tokens"
        else:
            why, fix = f"the reply is not valid JSON ({exc})", "the model ignored the schema"
        partial = partial_call(raw, tool_names, why)
        if partial is None and raw.finish_reason == "length" and not json_answer:
            partial = partial_answer(raw)
        if partial is not None:
            return partial
        raise ModelOutputError(
            f"{name}: {why}; {fix}. Partial reply: {text[:300]!r}", body=text
        ) from None
    if isinstance(value, dict) and "tool" in value:
        call = ToolCall(
            f"call_{uuid.uuid4().hex[:12]}",
            str(value["tool"]),
            dict(value.get("arguments") or {}),
        )
        return ModelResponse(
            tool_calls=(call,), usage=raw.usage, model=name, finish_reason="tool_calls"
        )
    if isinstance(value, dict) and "answer" in value:
        answer = value["answer"]
        out = (
            answer
            if isinstance(answer, str) and not json_answer
            else json.dumps(answer, ensure_ascii=False)
        )
        return ModelResponse(text=out, usage=raw.usage, model=name, finish_reason="stop")
    raise ModelOutputError(
        f"{name} replied with JSON that is neither a tool call nor an answer: {text[:300]!r}",
        body=text,
    )


def _spent(response: ModelResponse, spent: list[Usage]) -> ModelResponse:
    """`response` carrying the usage of every stage it took."""
    total = Usage()
    for usage in spent:
        total = total + usage
    return replace(response, usage=total)


def guide_for(model: Model) -> Staged | None:
    """The guided construction a model's steps go through, or None for a plain model.

    A `Staged` model (a `GuidedModel`, a replay of one) is its own; a model whose
    capabilities ask for guidance (`LocalModel`) gets a `GuidedModel` with its own
    `Guidance` options.
    """
    if isinstance(model, Staged):
        return model
    if model.capabilities.guided:
        return GuidedModel.of(model, getattr(model, "guidance", None))
    return None


def guided(model: Model | str, **options: Any) -> GuidedModel:
    """`GuidedModel` over a model or a model string, e.g. ``guided("openai:smollm2@http://...")``."""
    from pilothouse.models.registry import resolve_model

    return GuidedModel(resolve_model(model), **options)
