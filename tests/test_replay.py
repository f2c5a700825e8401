"""Replay: a recorded journal re-run with model and tool results served from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cli_tools import get_order_status
from pilothouse import Agent, MemoryStore, Policy, ScriptedModel, SQLiteStore, call, tool
from pilothouse.exceptions import ModelError, ReplayDivergence, StoreError
from pilothouse.messages import Message
from pilothouse.models.base import ModelRequest
from pilothouse.models.replay import ReplayModel
from pilothouse.runtime.replay import export_journal, load_journal
from pilothouse.testing import assert_replays, assert_replays_async, record_cassette, replay
from pilothouse.tools import ask_human

if TYPE_CHECKING:
    from conftest import CLI

CASSETTES = Path(__file__).resolve().parent / "cassettes"
# Recorded once from `pilothouse run` with the embedded SmolLM2-135M model:
#   pilothouse run "Where is my order A1234?" -i "<ORDER_INSTRUCTIONS>" \
#       --tools cli_tools:tools --max-steps 4
#   pilothouse trace export RUN_ID -o tests/cassettes/order_status_local.jsonl
LOCAL_CASSETTE = CASSETTES / "order_status_local.jsonl"
ORDER_INSTRUCTIONS = (
    "You are a support agent. Call get_order_status once, then answer the customer in one sentence."
)

STOCK = {"apple": 3, "pear": 0}


@tool
def lookup(item: str) -> str:
    """How many of an item are in stock."""
    return f"{STOCK.get(item, 0)} {item}(s) in stock"


shipped: list[str] = []


@tool(effect="side_effect")
def ship(item: str) -> str:
    """Ship one item to the customer."""
    shipped.append(item)
    return f"shipped one {item}"


def scripted_agent(instructions: str = "Answer briefly.", **kwargs: Any) -> Agent[None, str]:
    """The agent under test; the model is only used to record, never during replay."""
    model = ScriptedModel(
        [
            [call("lookup", item="apple"), call("lookup", item="pear")],  # parallel calls
            call("ship", item="apple"),
            "One apple is on its way.",
        ]
    )
    kwargs.setdefault("tools", [lookup, ship])
    kwargs.setdefault("policy", Policy.allow_all())
    kwargs.setdefault("store", MemoryStore())
    return Agent(model, instructions, name="shop", **kwargs)


@pytest.fixture
def cassette(tmp_path: Path) -> Path:
    path = tmp_path / "shop.jsonl"
    result = record_cassette(scripted_agent(), "Send me an apple", path)
    assert result.output == "One apple is on its way."
    shipped.clear()
    return path


# ----------------------------------------------------------------- a real model's recording


def test_committed_cassette_of_the_embedded_model_replays_offline() -> None:
    # The agent names the local model; replay never loads nor calls it.
    agent = Agent("local", ORDER_INSTRUCTIONS, [get_order_status], max_steps=4, name="cli")
    report = assert_replays(agent, LOCAL_CASSETTE)
    assert report.ok and report.steps == 2 and report.recorded_steps == 2
    assert report.outcome == "final" and not report.definition_changed
    final = report.events[-1]
    assert final.type == "final"
    assert final.to_dict()["output"] == "A1234 was shipped on Monday and arrives Thursday"
    # The real (read-only) tool still answers as recorded.
    assert assert_replays(agent, LOCAL_CASSETTE, live_tools=True).ok


def test_committed_cassette_detects_a_changed_tool_result() -> None:
    @tool
    def get_order_status(order_id: str) -> str:
        """Get the shipping status of an order by its id."""
        return f"Order {order_id} is lost."

    agent = Agent("local", ORDER_INSTRUCTIONS, [get_order_status], max_steps=4, name="cli")
    assert replay(agent, LOCAL_CASSETTE).ok  # served from the journal: not run
    report = replay(agent, LOCAL_CASSETTE, live_tools=True)
    d = report.divergence
    assert d is not None and d.kind == "tool_result" and d.step == 1
    assert "get_order_status" in d.detail and "is lost" in d.got and "shipped" in d.expected
    assert report.steps == 1  # stopped at the next model call


# ------------------------------------------------------------------------ identical replay


def test_identical_replay_runs_nothing_and_leaves_the_agent_store_alone(
    cassette: Path, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "agent.db")
    report = assert_replays(scripted_agent(store=store), cassette)
    assert report.steps == 3 and report.outcome == "final"
    assert shipped == []  # the side-effecting tool was served, not run
    assert store.list_runs() == []
    assert [e.type for e in report.events] == [e.type for e in load_journal(cassette)]
    assert str(report) == "replayed 3 steps: identical"


async def test_replay_inside_an_event_loop(cassette: Path) -> None:
    report = await assert_replays_async(scripted_agent(), cassette)
    assert report.ok
    with pytest.raises(Exception, match="replay_async"):
        replay(scripted_agent(), cassette)


def test_replay_from_events_of_a_store() -> None:
    agent = scripted_agent()
    run_id = agent.run_sync("Send me an apple").run_id
    events = agent.store.events(run_id)
    shipped.clear()
    assert replay(scripted_agent(), events).ok
    assert shipped == []


# ---------------------------------------------------------------------------- divergences


def test_changed_instructions_diverge_at_step_one(cassette: Path) -> None:
    report = replay(scripted_agent("Answer at length."), cassette)
    d = report.divergence
    assert d is not None and not report.ok
    assert (d.step, d.kind) == (1, "messages")
    assert "message 0 (system) content differs" in d.detail
    assert d.expected == "Answer briefly." and d.got == "Answer at length."
    assert report.steps == 0 and shipped == []
    with pytest.raises(AssertionError, match=r"shop.jsonl: run .* diverged at step 1 \(messages\)"):
        assert_replays(scripted_agent("Answer at length."), cassette)


def test_a_removed_tool_diverges_at_the_tools_offered(cassette: Path) -> None:
    d = replay(scripted_agent(tools=[lookup]), cassette).divergence
    assert d is not None and (d.step, d.kind) == (1, "tools")
    assert d.expected == "lookup, ship" and d.got == "lookup"


def test_live_tool_with_a_new_result_diverges_at_its_step(cassette: Path) -> None:
    STOCK["apple"] = 5
    try:
        report = replay(scripted_agent(), cassette, live_tools=True)
    finally:
        STOCK["apple"] = 3
    d = report.divergence
    assert d is not None and (d.step, d.kind) == (1, "tool_result")
    assert "call #0 (lookup) returned something else" in d.detail
    assert d.expected.startswith("3 apple") and d.got.startswith("5 apple")
    assert shipped == []  # nothing after the divergence ran, and ship is never live
    assert replay(scripted_agent(), cassette, live_tools=True).ok


def test_policy_that_now_denies_a_recorded_call_diverges(cassette: Path) -> None:
    report = replay(scripted_agent(policy=Policy()), cassette)  # default: deny side effects
    d = report.divergence
    assert d is not None and (d.step, d.kind) == (2, "decision")
    assert "ship" in d.detail and (d.expected, d.got) == ("allow", "deny")
    assert shipped == []


def test_changed_tool_effect_and_schema_diverge(cassette: Path) -> None:
    @tool(effect="side_effect")
    def lookup(item: str) -> str:
        """How many of an item are in stock."""
        return "?"

    d = replay(scripted_agent(tools=[lookup, ship]), cassette).divergence
    assert d is not None and (d.step, d.kind) == (1, "tool_call")
    assert (d.expected, d.got) == ("read_only", "side_effect")

    @tool(name="lookup")
    def strict_lookup(item: int) -> str:
        """How many of an item are in stock."""
        return "?"

    d = replay(scripted_agent(tools=[strict_lookup, ship]), cassette).divergence
    assert d is not None and (d.step, d.kind) == (1, "decision")  # never reached the policy


def test_fewer_steps_allowed_is_a_different_outcome(cassette: Path) -> None:
    d = replay(scripted_agent(max_steps=2), cassette).divergence
    assert d is not None and d.kind == "outcome" and d.step == 2
    assert d.expected == "final output at step 3" and "steps stop" in d.got


def test_changed_output_type_diverges_at_validation(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    agent = Agent(ScriptedModel(["42"]), store=MemoryStore(), output_type=int)
    record_cassette(agent, "a number?", path)
    assert replay(Agent(store=MemoryStore(), output_type=int), path).ok
    # The output type's schema is part of the system prompt.
    d = replay(Agent(store=MemoryStore(), output_type=list[int]), path).divergence
    assert d is not None and (d.step, d.kind) == (1, "messages")


def test_replay_model_alone_checks_each_request(cassette: Path) -> None:
    events = load_journal(cassette)
    model = ReplayModel(events)
    assert model.name == "scripted" and len(model.exchanges) == 3
    first = model.exchanges[0]
    import asyncio

    answer = asyncio.run(model.generate(ModelRequest(list(first.messages))))
    assert answer.tool_calls[0].name == "lookup"
    wrong = [Message.system("Answer briefly."), Message.user("Send me a pear")]
    with pytest.raises(ReplayDivergence) as info:
        asyncio.run(model.generate(ModelRequest(wrong)))
    exc = info.value
    assert (exc.step, exc.kind) == (2, "messages")
    assert exc.run_id == events[0].run_id and "step 2" in str(exc)


class Crash(BaseException):
    """Kills a run the way a killed process would (not an error the loop journals)."""


def test_a_resumed_recording_replays(tmp_path: Path) -> None:
    replies = [call("lookup", item="apple"), "Three apples."]

    def crash_at_step_two(request: ModelRequest) -> Any:
        if any(m.role == "tool" for m in request.messages):
            raise Crash
        return replies[0]

    store = MemoryStore()
    first = Agent(ScriptedModel(crash_at_step_two), tools=[lookup], store=store)
    with pytest.raises(Crash):
        first.run_sync("apples?", run_id="r1")
    again = Agent(ScriptedModel(replies[1:]), tools=[lookup], store=store)
    assert again.resume_sync("r1").output == "Three apples."
    steps = [e.step for e in store.events("r1") if e.type == "model_request"]
    assert steps == [1, 2, 2]  # the unanswered request was asked again
    report = replay(Agent(tools=[lookup], store=MemoryStore()), store.events("r1"))
    assert report.ok and report.steps == 2


def test_text_action_format_replays(tmp_path: Path) -> None:
    replies = [
        '```json\n{"action": "lookup", "action_input": {"item": "pear"}}\n```',
        '```json\n{"action": "Final Answer", "action_input": "No pears."}\n```',
    ]

    def make(tools: list[Any]) -> Agent[None, str]:
        return Agent(ScriptedModel(replies), "", tools, store=MemoryStore(), action_format="json")

    path = tmp_path / "json.jsonl"
    assert record_cassette(make([lookup]), "pears?", path).output == "No pears."
    report = assert_replays(make([lookup]), path)
    assert report.steps == 2
    # The tools are described in the system prompt, not offered natively.
    d = replay(make([lookup, ship]), path).divergence
    assert d is not None and (d.step, d.kind) == (1, "messages")


def test_history_is_replayed(tmp_path: Path) -> None:
    history = [Message.user("I am Ann."), Message.assistant("Hello Ann.")]
    path = tmp_path / "h.jsonl"
    record_cassette(scripted_agent(), "Send me an apple", path, history=history)
    shipped.clear()
    report = assert_replays(scripted_agent(), path)
    assert report.steps == 3
    # The history is recorded once, on run_started, and sent before the new input.
    started = report.events[0].to_dict()
    assert [m["content"] for m in started["history"]] == ["I am Ann.", "Hello Ann."]
    assert started["input"] == "Send me an apple"
    sent = next(e for e in report.events if e.type == "model_request").to_dict()
    assert sent["new_messages"] == []  # the first request adds nothing to the context


def test_a_recorded_model_failure_is_reproduced(tmp_path: Path) -> None:
    def fail_at_step_two(request: ModelRequest) -> Any:
        if any(m.role == "tool" for m in request.messages):
            raise ModelError("the endpoint went away")
        return call("lookup", item="pear")

    agent = Agent(ScriptedModel(fail_at_step_two), tools=[lookup], store=MemoryStore())
    with pytest.raises(ModelError) as info:
        agent.run_sync("pears?")
    run_id = info.value.run_id  # type: ignore[attr-defined]
    report = replay(Agent(tools=[lookup], store=MemoryStore()), agent.store.events(run_id))
    assert report.ok and report.outcome == "error" and report.steps == 1
    assert report.events[-1].to_dict()["message"].endswith("ModelError: the endpoint went away")


# ---------------------------------------------------------------------------- approvals


def test_recorded_approvals_are_given_again(tmp_path: Path) -> None:
    @tool(effect="side_effect", requires_approval=True)
    def refund(order: str) -> str:
        """Refund an order."""
        shipped.append(f"refund {order}")
        return f"refunded {order}"

    def make(**kwargs: Any) -> Agent[None, str]:
        model = ScriptedModel([call("refund", order="A1"), "Refunded."])
        kwargs.setdefault("tools", [refund])
        return Agent(model, "Help.", store=MemoryStore(), policy=Policy.allow_all(), **kwargs)

    agent = make()
    paused = agent.run_sync("refund A1")
    assert paused.outcome == "paused"
    done = agent.resume_sync(paused.run_id, approvals={paused.pending[0].key: True})
    assert done.output == "Refunded."
    path = tmp_path / "refund.jsonl"
    export_journal(agent.store, done.run_id, path)
    shipped.clear()

    report = assert_replays(make(), path)
    assert report.steps == 2 and shipped == []
    assert "approval_given" in [e.type for e in report.events]

    @tool(name="refund", effect="side_effect")
    def refund_unguarded(order: str) -> str:
        """Refund an order."""
        return f"refunded {order}"

    d = replay(make(tools=[refund_unguarded]), path).divergence
    assert d is not None and (d.step, d.kind) == (1, "decision")
    assert (d.expected, d.got) == ("ask", "allow")


def test_a_recorded_question_is_answered_again(tmp_path: Path) -> None:
    def make() -> Agent[None, str]:
        model = ScriptedModel([call("ask_human", question="Which colour?"), "Blue it is."])
        return Agent(model, "", [ask_human], store=MemoryStore())

    agent = make()
    paused = agent.run_sync("paint it")
    key = paused.pending[0].key
    agent.resume_sync(paused.run_id, approvals={key: "blue"})
    path = tmp_path / "q.jsonl"
    export_journal(agent.store, paused.run_id, path)
    assert assert_replays(make(), path).outcome == "final"

    # A recording that ends paused replays to the same pause.
    waiting = make()
    run_id = waiting.run_sync("paint it").run_id
    export_journal(waiting.store, run_id, path)
    report = assert_replays(make(), path)
    assert report.outcome == "paused"


def test_in_process_approver_is_answered_from_the_recording(tmp_path: Path) -> None:
    asked: list[str] = []

    def approver(c: Any, decision: Any, ctx: Any) -> bool:
        asked.append(c.name)
        return True

    policy = Policy.from_dict({"defaults": {"side_effect": "ask"}})
    agent = scripted_agent(policy=policy, approver=approver)
    result = record_cassette(agent, "Send me an apple", tmp_path / "a.jsonl")
    assert result.ok and asked == ["ship"]
    shipped.clear()
    assert assert_replays(scripted_agent(policy=policy, approver=approver), tmp_path / "a.jsonl")
    assert asked == ["ship"] and shipped == []  # the approver was not asked again


# ------------------------------------------------------------------------- broken cassettes


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_truncated_cassette_names_the_file_and_line(cassette: Path) -> None:
    lines = _lines(cassette)
    cut = "".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2]
    cassette.write_text(cut, encoding="utf-8")
    with pytest.raises(StoreError, match=rf"shop.jsonl:{len(lines)}: not valid JSON"):
        load_journal(cassette)
    with pytest.raises(StoreError, match="truncated or corrupted"):
        replay(scripted_agent(), cassette)


def test_cassette_cut_at_a_line_boundary_diverges_where_it_ends(cassette: Path) -> None:
    lines = _lines(cassette)
    cassette.write_text("".join(lines[:-4]), encoding="utf-8")  # drops step 3's events
    d = replay(scripted_agent(), cassette).divergence
    assert d is not None and d.kind == "recording" and d.step == 3
    assert "has only 2 answered model call(s)" in d.detail


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: ls[:3] + ls[4:], r":4: event seq 4 where 3 was expected"),
        (lambda ls: [*ls[:2], '{"type": "nonsense", "run_id": "x"}\n', *ls[3:]], r":3: not a"),
        (lambda ls: ls[1:], r":1: the first event is 'model_request'"),
        (lambda ls: [*ls[:2], "[1, 2]\n", *ls[3:]], r":3: expected a JSON object"),
        (lambda ls: [*ls[:2], '{"type": "final"}\n', *ls[3:]], r":3: not a journal event"),
        (lambda ls: [], r"no events"),
    ],
)
def test_corrupted_cassettes_are_clear_errors(cassette: Path, edit: Any, message: str) -> None:
    cassette.write_text("".join(edit(_lines(cassette))), encoding="utf-8")
    with pytest.raises(StoreError, match=message):
        load_journal(cassette)


def test_missing_cassette_and_mixed_runs(tmp_path: Path, cassette: Path) -> None:
    with pytest.raises(StoreError, match="cannot read journal file"):
        load_journal(tmp_path / "absent.jsonl")
    lines = _lines(cassette)
    other = json.loads(lines[1])
    other["run_id"] = "someone-else"
    cassette.write_text(lines[0] + json.dumps(other) + "\n", encoding="utf-8")
    with pytest.raises(StoreError, match=r":2: event of run 'someone-else'"):
        load_journal(cassette)


# --------------------------------------------------------------------------------- CLI


def test_cli_export_and_replay(cli: CLI, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    agent = Agent(
        ScriptedModel([call("get_order_status", order_id="A7"), "It ships Thursday."]),
        tools=[get_order_status],
        store=SQLiteStore(db),
        name="cli",
    )
    run_id = agent.run_sync("Where is A7?").run_id
    path = tmp_path / "out" / "a7.jsonl"

    exported = cli("trace", "export", run_id, "-o", str(path), "--store", str(db))
    assert exported.returncode == 0, exported.stderr
    assert f"wrote 9 events of run {run_id}" in exported.stdout
    assert len(load_journal(path)) == 9

    for source in (run_id, str(path)):
        same = cli("replay", source, "--store", str(db))
        assert same.returncode == 0, same.stderr
        assert same.stdout.strip() == "replayed 2 steps: identical"

    real = cli("replay", str(path), "--tools", "cli_tools:tools", "--live-tools")
    assert real.returncode == 0 and "identical" in real.stdout, real.stderr

    changed = cli("replay", str(path), "--instructions", "Be terse.")
    assert changed.returncode == 1
    assert f"run {run_id} diverged at step 1 (messages)" in changed.stdout
    assert "Be terse." in changed.stdout

    fewer = cli("replay", str(path), "--max-steps", "1")
    assert fewer.returncode == 1 and "(outcome)" in fewer.stdout


def test_cli_replay_of_the_committed_cassette(cli: CLI) -> None:
    result = cli("replay", str(LOCAL_CASSETTE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "replayed 2 steps: identical"


def test_cli_replay_errors(cli: CLI, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text(LOCAL_CASSETTE.read_text(encoding="utf-8")[:700], encoding="utf-8")
    result = cli("replay", str(broken))
    assert result.returncode == 1
    assert f"{broken}:2: not valid JSON" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    missing = cli("replay", "no-such-run", "--store", str(tmp_path / "j.db"))
    assert missing.returncode == 1 and "no run 'no-such-run'" in missing.stderr

    live = cli("replay", str(LOCAL_CASSETTE), "--live-tools")
    assert live.returncode == 1 and "--live-tools" in live.stderr

    export = cli(
        "trace",
        "export",
        "nope",
        "-o",
        str(tmp_path / "x.jsonl"),
        "--store",
        str(tmp_path / "j.db"),
    )
    assert export.returncode == 1 and "no run 'nope'" in export.stderr
    assert not (tmp_path / "x.jsonl").exists()
