"""Scenarios, scorers, the runner's classification and concurrency (the built-in suite's
own tests are in tests/suites)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pilothouse import Budget, ScriptedModel, SQLiteStore, call, tool
from pilothouse.evals import (
    Answer,
    EvalContext,
    Sample,
    Score,
    Steps,
    Suite,
    classify,
    contains,
    custom,
    dataset_scenarios,
    exact,
    expect_called,
    expect_contains,
    expect_equals,
    expect_not_called,
    expect_number,
    expect_order,
    expect_regex,
    json_schema,
    llm_judge,
    load_dataset,
    numbers_in,
    numeric,
    regex,
    run_eval,
    scenario,
    trajectory,
)
from pilothouse.exceptions import ModelError, ModelOutputError
from pilothouse.messages import ToolCall, Usage
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.loop import RunResult


@tool
def lookup(key: str) -> str:
    """Look up a key."""
    return f"value of {key}"


@tool
def other(x: int) -> str:
    """Another tool."""
    return str(x * 2)


# --------------------------------------------------------------------------- helpers


def _result(output: Any) -> RunResult[Any]:
    return RunResult("r", "final", Usage(), 1, [], output)


def test_numbers_in_reads_separators_decimals_and_percent() -> None:
    assert numbers_in("1,234.5 and -3 and 5.47% and 1e3") == [1234.5, -3.0, 0.0547, 1000.0]
    assert numbers_in("no digits here.") == []


def test_output_helpers_pass_and_fail() -> None:
    r = _result("The answer is 1,901, Canberra.")
    assert expect_number(r, 1901)
    expect_contains(r, "canberra", "1901")
    expect_regex(r, r"\bcanberra\b")
    expect_equals(_result("Canberra."), "canberra")
    with pytest.raises(AssertionError, match="1902"):
        expect_number(r, 1902)
    # The last number is the answer: listing the target among others does not pass.
    listed = _result("The sequence is 2, 4, 6, ..., 60, 62, 64.")
    with pytest.raises(AssertionError, match="62 as the last number"):
        expect_number(listed, 62)
    assert expect_number(listed, 62, which="any")
    assert expect_number(_result("37 * 48 + 125 = 1901"), 1901)
    with pytest.raises(AssertionError, match="Sydney"):
        expect_contains(r, "Sydney")
    with pytest.raises(AssertionError):
        expect_regex(r, "^Canberra")
    with pytest.raises(AssertionError):
        expect_equals(r, "Canberra")


async def test_steps_come_from_the_journal() -> None:
    @scenario(tools=[lookup, other])
    async def uses_tools(ctx: EvalContext) -> None:
        await ctx.run("go")
        steps = ctx.steps()
        expect_called(steps, "lookup", key="a")
        expect_order(steps, ["lookup", "other"])
        expect_not_called(steps, "missing")
        assert steps.results[1].content == "6"
        assert steps.output == "done"
        with pytest.raises(AssertionError, match="lookup"):
            expect_called(steps, "lookup", key="b")
        with pytest.raises(AssertionError):
            expect_order(steps, ["other", "lookup"])
        with pytest.raises(AssertionError):
            expect_not_called(steps, "other")

    model = ScriptedModel([call("lookup", key="a"), call("other", x=3), "done"])
    log = await run_eval(Suite("s", [uses_tools]), [model], epochs=1)
    assert log.samples[0].ok, log.samples[0].message
    types = [e["type"] for e in log.samples[0].events]
    assert types[0] == "run_started" and types[-1] == "final"
    assert types.count("tool_call") == 2


# --------------------------------------------------------------------------- scorers


def _answer(text: str, target: Any = None, calls: list[ToolCall] | None = None) -> Answer:
    from pilothouse.events import ToolCalled

    events = [
        ToolCalled(run_id="r", index=i, call=c, idempotency_key=f"r:1:{i}")
        for i, c in enumerate(calls or [])
    ]
    return Answer(Sample("q?", target), text, _result(text), Steps("r", list(events)))


def _ok(scorer: Any, answer: Answer) -> bool:
    score = scorer(answer)
    if asyncio.iscoroutine(score):
        score = asyncio.run(score)
    assert isinstance(score, Score)
    return score.ok


def test_scorers() -> None:
    assert _ok(exact(), _answer("Canberra.", "canberra"))
    assert not _ok(exact(), _answer("It is Canberra", "Canberra"))
    assert _ok(exact(["a", "b"]), _answer("B", None))
    assert _ok(contains(), _answer("It is Canberra", "Canberra"))
    assert not _ok(contains(["Canberra", "Sydney"]), _answer("It is Canberra"))
    assert _ok(contains(["Canberra", "Sydney"], all_of=False), _answer("It is Canberra"))
    assert _ok(numeric(), _answer("about 5.47%", 0.0546875)) is False  # default tolerance
    assert _ok(numeric(rel_tol=1e-3), _answer("about 5.47%", 0.0546875))
    assert _ok(numeric(), _answer("60 km/h", 60))
    assert not _ok(numeric(), _answer("60 or 375 km/h", 60))
    assert _ok(numeric(which="any"), _answer("60 or 375 km/h", 60))
    assert _ok(regex(r"\bW\b", flags=0), _answer("symbol W"))
    assert not _ok(regex(r"\bW\b", flags=0), _answer("symbol w is wrong"))
    schema = {
        "type": "object",
        "required": ["city"],
        "properties": {"city": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
        "additionalProperties": False,
    }
    assert _ok(json_schema(schema), _answer('{"city": "Oslo", "n": 2}'))
    assert not _ok(json_schema(schema), _answer('{"city": "Oslo", "n": -1}'))
    assert not _ok(json_schema(schema), _answer('{"n": 1}'))
    assert not _ok(json_schema(schema), _answer('{"city": "Oslo", "x": 1}'))
    assert not _ok(json_schema(schema), _answer("Oslo"))
    calls = [ToolCall("1", "a", {"k": 1}), ToolCall("2", "b", {}), ToolCall("3", "c", {})]
    assert _ok(trajectory(["a", "c"]), _answer("", calls=calls))
    assert not _ok(trajectory(["c", "a"]), _answer("", calls=calls))
    assert _ok(trajectory(["c", "a"], mode="any_order"), _answer("", calls=calls))
    assert not _ok(trajectory(["a", "c"], mode="exact"), _answer("", calls=calls))
    assert _ok(trajectory([("a", {"k": 1}), "b", "c"], mode="exact"), _answer("", calls=calls))
    assert not _ok(trajectory([("a", {"k": 2})]), _answer("", calls=calls))
    assert _ok(custom(lambda a: a.text.startswith("x")), _answer("xyz"))
    assert not _ok(custom(lambda a: a.text.startswith("x")), _answer("abc"))


def test_llm_judge_is_a_model() -> None:
    seen: list[ModelRequest] = []

    def judge_reply(verdict: str) -> ScriptedModel:
        def reply(request: ModelRequest) -> str:
            seen.append(request)
            return verdict

        return ScriptedModel(reply)

    answer = _answer("Paris", "Paris")
    assert _ok(llm_judge(judge_reply("PASS: it matches")), answer)
    prompt = next(m.content for m in seen[-1].messages if m.role == "user")
    assert "Reference answer: Paris" in prompt and "Assistant's answer: Paris" in prompt
    assert not _ok(llm_judge(judge_reply("FAIL: wrong city")), answer)
    assert not _ok(llm_judge(judge_reply("maybe?")), answer)
    # the judge's prompts are data: an override reaches the judge model
    from pilothouse.prompts import Prompts

    prompts = Prompts.of(
        {
            "judge_rubric": "Grade strictly.",
            "judge_question": "Q=$question R=$reference A=$answer",
        }
    )
    assert _ok(llm_judge(judge_reply("PASS"), prompts=prompts), answer)
    assert seen[-1].messages[0].content == "Grade strictly."
    asked = [m.content for m in seen[-1].messages if m.role == "user"]
    assert asked[0].startswith("Q=") and "R=Paris A=Paris" in asked[0], asked


def test_load_dataset_jsonl_and_yaml(tmp_path: Path) -> None:
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"input": "a?", "target": 1}\n\n{"input": "b?", "id": "bee"}\n')
    samples = load_dataset(jsonl)
    assert [(s.id, s.input, s.target) for s in samples] == [("1", "a?", 1), ("bee", "b?", None)]
    yml = tmp_path / "d.yaml"
    yml.write_text("- input: c?\n  target: [x, y]\n  metadata: {level: 2}\n")
    (s,) = load_dataset(yml)
    assert s.target == ["x", "y"] and s.metadata == {"level": 2}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"target": 1}\n')
    with pytest.raises(Exception, match="input"):
        load_dataset(bad)


async def test_dataset_scenarios_score_each_sample() -> None:
    samples = [
        Sample("capital of France?", "Paris", "fr"),
        Sample("capital of Peru?", "Lima", "pe"),
    ]
    scenarios = dataset_scenarios(
        "caps", samples, [contains(), trajectory(["lookup"])], tools=[lookup]
    )
    assert [s.name for s in scenarios] == ["caps/fr", "caps/pe"]

    def reply(request: ModelRequest) -> Any:
        if not any(m.role == "tool" for m in request.messages):
            return call("lookup", key="capital")
        return "Paris"  # right for France, wrong for Peru

    log = await run_eval(Suite("caps", scenarios), [ScriptedModel(reply)], epochs=2)
    assert log.cell("caps/fr", "scripted").rate == 1.0
    pe = log.cell("caps/pe", "scripted")
    assert pe.rate == 0.0 and pe.failures == {"assertion": 2}
    assert "Lima" in log.failures()[0].message


# --------------------------------------------------------------------------- classification


@scenario(tools=[lookup])
async def ask(ctx: EvalContext) -> None:
    expect_contains(await ctx.run("question"), "right")


async def _one(model: Any, budget: Budget | None = None) -> Any:
    log = await run_eval(Suite("one", [ask]), [model], epochs=1, budget=budget)
    return log.samples[0]


async def test_failure_kinds_from_real_runs() -> None:
    assert (await _one(ScriptedModel(["right"]))).ok
    assert (await _one(ScriptedModel(["wrong"]))).failure == "assertion"

    # Calls a tool forever with new arguments: the step budget stops it.
    counter = iter(range(1000))
    looping = ScriptedModel(lambda r: call("lookup", key=str(next(counter))))
    sample = await _one(looping, Budget(max_steps=3))
    assert sample.failure == "budget_stop" and "steps" in sample.message

    # The same call again and again: the loop detector.
    sample = await _one(ScriptedModel(lambda r: call("lookup", key="same")))
    assert sample.failure == "budget_stop" and "loop" in sample.message

    def broken(request: ModelRequest) -> Any:
        raise ModelError("the server is down")

    sample = await _one(ScriptedModel(broken))
    assert sample.failure == "model_error" and "server is down" in sample.message
    assert [e["type"] for e in sample.events][-1] == "error"

    # An unparsable tool call, then a wrong answer: the root cause is the parse failure.
    unparsed = ToolCall("c1", "lookup", {}, parse_error="Expecting value: line 1")
    sample = await _one(ScriptedModel([[unparsed], "wrong"]))
    assert sample.failure == "parse_failure"


def test_classify_reads_events_defensively() -> None:
    err = AssertionError("wrong")
    assert classify(None, ["final"], []) is None
    assert classify(err, ["final"], []) == "assertion"
    assert classify(err, ["final"], [{"type": "parse_failed", "text": "{oops"}]) == "parse_failure"
    assert (
        classify(err, ["final"], [{"type": "policy_decision", "effect": "deny"}]) == "policy_block"
    )
    denied = {"type": "tool_call", "call": {}, "decision": {"effect": "deny", "reason": "no"}}
    assert classify(err, ["final"], [denied]) == "policy_block"
    assert classify(None, ["policy_stop"], []) == "policy_block"
    assert classify(None, ["paused"], []) == "policy_block"  # nobody approves during an eval
    assert classify(None, ["output_invalid"], []) == "parse_failure"
    assert classify(ModelError("x"), [], []) == "model_error"
    assert classify(ModelOutputError("cut off"), [], []) == "parse_failure"
    assert classify(ValueError("bug"), ["final"], []) == "error"


async def test_concurrency_is_limited_and_all_samples_run() -> None:
    running = 0
    peak = 0
    full = asyncio.Event()

    @scenario()
    async def slow(ctx: EvalContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            full.set()
        # The first samples wait until three run at once (the 30 s guard fails a runner
        # that never runs three); later ones find the event set.
        await asyncio.wait_for(full.wait(), 30)
        running -= 1
        await ctx.run("x")

    seen: list[str] = []
    log = await run_eval(
        Suite("c", [slow]),
        [ScriptedModel(lambda r: "ok", name="a"), ScriptedModel(lambda r: "ok", name="b")],
        epochs=5,
        concurrency=3,
        on_sample=lambda s: seen.append(s.model),
    )
    assert peak == 3
    assert len(log.samples) == len(seen) == 10
    assert sorted((s.model, s.epoch) for s in log.samples) == sorted(
        (m, e) for m in "ab" for e in range(5)
    )


async def test_journals_go_to_the_evaluation_store(tmp_path: Path) -> None:
    path = tmp_path / "eval.journal.db"
    log = await run_eval(
        Suite("one", [ask]), [ScriptedModel(lambda r: "right")], epochs=2, store=str(path)
    )
    store = SQLiteStore(path)
    for sample in log.samples:
        (run_id,) = sample.run_ids
        assert [e.to_dict() for e in store.events(run_id)] == sample.events


async def test_a_factory_with_its_own_store_is_still_read() -> None:
    from pilothouse import Agent

    def factory(sc: Any, model: Any, budget: Budget, store: Any) -> Agent[Any, Any]:
        return Agent(model, sc.instructions, sc.tools, budget=budget, store=":memory:")

    suite = Suite("own", [ask], agent_factory=factory)
    log = await run_eval(suite, [ScriptedModel(lambda r: "right")], epochs=1)
    assert log.samples[0].ok
    assert [e["type"] for e in log.samples[0].events][-1] == "final"
