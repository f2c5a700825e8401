"""Typed dependencies, step hooks and output validators (core v2).

Deps reach tools, hooks, validators and policy predicates and are never journaled;
a step hook's choices are on the step's `model_request`, so the journal shows the
request the model received; an output validator's refusal is a journaled failed
validation that uses up an output retry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.events import ModelRequested, OutputValidated, RunStarted
from pilothouse.exceptions import ConfigurationError, ModelRetry, OutputValidationError
from pilothouse.messages import Message, ToolCall
from pilothouse.models.base import ModelRequest, ModelSettings
from pilothouse.policy import Policy, Rule, RunContext
from pilothouse.runtime.journal import MemoryStore
from pilothouse.runtime.step import StepContext, StepOptions
from pilothouse.testing import assert_replays, record_cassette
from pilothouse.tools import ToolContext


@dataclass
class Shop:
    """An application's live state: what tools used to reach through closures."""

    stock: dict[str, int]
    verified: str | None = None
    log: list[str] = field(default_factory=list)


@tool
def stock_of(ctx: ToolContext[Shop], item: str) -> int:
    """How many of an item are in stock."""
    ctx.deps.log.append(f"stock_of {item}")
    return ctx.deps.stock.get(item, 0)


@tool(effect="side_effect", on_doubt="retry")
def verify(ctx: ToolContext[Shop], customer: str) -> str:
    """Verify a customer (typed state on the deps, not text to parse back)."""
    ctx.deps.verified = customer
    return f"verified {customer}"


def shop_agent(replies: list[Any], **kwargs: Any) -> Agent[Shop, str]:
    kwargs.setdefault("store", ":memory:")
    kwargs.setdefault("policy", Policy.allow_all())
    return Agent(
        ScriptedModel(replies),
        "You run a shop.",
        [stock_of, verify],
        deps_type=Shop,
        **kwargs,
    )


def test_deps_reach_tools_and_are_not_journaled() -> None:
    shop = Shop({"apple": 3})
    agent = shop_agent([call("stock_of", item="apple"), "3 apples"])
    result = agent.run_sync("how many apples?", deps=shop)
    assert result.output == "3 apples"
    assert shop.log == ["stock_of apple"]
    stored = json.dumps([e.to_dict() for e in agent.store.events(result.run_id)])
    assert "stock" in stored and "Shop(" not in stored and "'apple': 3" not in stored


def test_deps_of_the_wrong_type_or_missing_are_clear_errors_before_anything_runs() -> None:
    agent = shop_agent(["never"])
    with pytest.raises(ConfigurationError, match="takes deps of type Shop, not dict"):
        agent.run_sync("hi", deps={"stock": {}})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="pass deps="):
        agent.run_sync("hi")
    assert agent.store.list_runs() == []  # nothing was started


def test_deps_are_given_again_on_resume() -> None:
    @tool(requires_approval=True, effect="side_effect", on_doubt="retry")
    def restock(ctx: ToolContext[Shop], item: str) -> str:
        """Order more of an item."""
        ctx.deps.stock[item] = ctx.deps.stock.get(item, 0) + 10
        return "ordered"

    agent = Agent(
        ScriptedModel([call("restock", item="pear"), "done"]),
        tools=[restock],
        deps_type=Shop,
        store=":memory:",
        policy=Policy.allow_all(),
    )
    paused = agent.run_sync("restock pears", deps=Shop({}))
    assert paused.outcome == "paused"
    later = Shop({"pear": 1})  # a new process: the live objects are made again
    done = agent.resume_sync(paused.run_id, approvals={paused.pending[0].key: True}, deps=later)
    assert done.output == "done" and later.stock["pear"] == 11


def test_policy_predicates_read_the_deps() -> None:
    def verified(call: ToolCall, ctx: RunContext) -> bool:
        return ctx.deps is not None and ctx.deps.verified == call.arguments["customer"]

    policy = Policy(
        [Rule("stock_of", "allow"), Rule("verify", "allow", when={"predicates": [verified]})]
    )
    agent = shop_agent([call("verify", customer="C1"), "ok"], policy=policy)
    shop = Shop({}, verified="C1")
    assert agent.run_sync("verify me", deps=shop).output == "ok"
    events = agent.store.events(agent.store.list_runs()[0].run_id)
    decision = next(e for e in events if e.type == "tool_call").decision  # type: ignore[attr-defined]
    assert decision is not None and decision.allowed
    stranger = shop_agent([call("verify", customer="C1"), "no"], policy=policy)
    stranger.run_sync("verify me", deps=Shop({}, verified="C2"))
    run = stranger.store.list_runs()[0].run_id
    refused = next(e for e in stranger.store.events(run) if e.type == "tool_call")
    assert not refused.decision.allowed  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- step hooks


def router(ctx: StepContext[Shop]) -> StepOptions:
    """Offer one tool per step, chosen from typed state, with its own instructions."""
    if ctx.deps.verified is None:
        return StepOptions(
            tools=["verify"], instructions="Verify the customer first.", tool_choice="required"
        )
    return StepOptions(tools=["stock_of"], settings=ModelSettings(temperature=0.0))


def test_a_step_hook_shapes_the_request_and_the_journal_records_it() -> None:
    replies = [call("verify", customer="C1"), call("stock_of", item="fig"), "none"]
    agent = shop_agent(replies, prepare_step=router)
    result = agent.run_sync("figs?", deps=Shop({"fig": 0}))
    assert result.output == "none"
    model = agent.model
    assert isinstance(model, ScriptedModel)
    first, second = model.requests[0], model.requests[1]
    assert [t.name for t in first.tools] == ["verify"] and first.tool_choice == "required"
    assert first.messages[0].content == "Verify the customer first."
    assert [t.name for t in second.tools] == ["stock_of"]
    assert second.messages[0].content == "You run a shop."
    assert second.settings.temperature == 0.0
    asked = [e for e in agent.store.events(result.run_id) if isinstance(e, ModelRequested)]
    assert (asked[0].tools, asked[0].tool_choice) == (["verify"], "required")
    assert asked[0].instructions == "Verify the customer first."
    assert asked[1].tools == ["stock_of"] and asked[1].instructions is None
    assert asked[1].settings == {"temperature": 0.0}


def test_a_call_to_a_tool_the_step_did_not_offer_is_not_run() -> None:
    shop = Shop({"fig": 5})
    agent = shop_agent([call("stock_of", item="fig"), "sorry"], prepare_step=router)
    result = agent.run_sync("figs?", deps=shop)
    assert shop.log == []  # not run: the step offered only verify
    tool_msg = next(m for m in result.messages if m.role == "tool")
    assert "not available at this step" in tool_msg.content and "verify" in tool_msg.content


def test_render_prompt_shows_the_hooked_first_step() -> None:
    seen: list[ModelRequest] = []

    class Recorder(ScriptedModel):
        def render(self, request: ModelRequest) -> str:
            seen.append(request)
            return super().render(request)

    agent = Agent(
        Recorder([]), "You run a shop.", [stock_of, verify], deps_type=Shop, prepare_step=router
    )
    agent.render_prompt("figs?", deps=Shop({}))
    assert seen[0].messages[0].content == "Verify the customer first."
    assert [t.name for t in seen[0].tools] == ["verify"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("tools", "return StepOptions"),
        (StepOptions(tools=["nope"]), "unknown tools"),
        (StepOptions(tools=[], tool_choice="required"), "no tools offered"),
    ],
)
def test_a_hook_mistake_is_a_clear_error_in_the_journal(options: Any, message: str) -> None:
    agent = shop_agent(["never"], prepare_step=lambda ctx: options)
    with pytest.raises(ConfigurationError, match=message):
        agent.run_sync("hi", deps=Shop({}))
    run = agent.store.list_runs()[0]
    assert run.status == "error"


def test_an_async_hook_and_a_resumed_step_keep_the_offer_it_recorded() -> None:
    @tool(requires_approval=True, effect="side_effect", on_doubt="retry")
    def restock(ctx: ToolContext[Shop], item: str) -> str:
        """Order more of an item."""
        ctx.deps.log.append(f"restock {item}")
        return "ordered"

    async def offer_restock(ctx: StepContext[Shop]) -> StepOptions:
        return StepOptions(tools=["restock"])

    agent = Agent(
        ScriptedModel([[call("restock", item="fig"), call("verify", customer="C1")], "done"]),
        tools=[restock, verify],
        deps_type=Shop,
        prepare_step=offer_restock,
        store=":memory:",
        policy=Policy.allow_all(),
    )
    paused = agent.run_sync("restock figs and verify me", deps=Shop({}))
    assert paused.outcome == "paused" and [p.tool for p in paused.pending] == ["restock"]
    shop = Shop({})  # resumed later, as from a new process: the offer comes from the journal
    done = agent.resume_sync(paused.run_id, approvals={paused.pending[0].key: True}, deps=shop)
    assert done.output == "done"
    assert shop.log == ["restock fig"] and shop.verified is None  # verify was never offered
    refused = [m for m in done.messages if m.role == "tool" and m.name == "verify"]
    assert "not available at this step" in refused[0].content


# --------------------------------------------------------------------------- validators


def test_an_output_validator_refuses_with_model_retry_and_uses_an_output_retry() -> None:
    agent = shop_agent(["We have 99 figs.", "We have 0 figs."], output_retries=1)

    @agent.output_validator
    def no_invented_numbers(ctx: StepContext[Shop], output: str) -> str:
        counts = {str(n) for n in ctx.deps.stock.values()}
        if not any(n in output for n in counts):
            raise ModelRetry("Give only the stock count the tools returned.")
        return output.strip()

    result = agent.run_sync("figs?", deps=Shop({"fig": 0}))
    assert result.output == "We have 0 figs."
    checks = [e for e in agent.store.events(result.run_id) if isinstance(e, OutputValidated)]
    assert [(c.ok, c.error) for c in checks] == [
        (False, "Give only the stock count the tools returned."),
        (True, None),
    ]


def test_validators_run_in_order_may_correct_and_a_last_refusal_stops_the_run() -> None:
    agent = shop_agent([" fine ", "bad", "bad"], output_retries=1)
    agent.output_validator(lambda output: output.strip())

    @agent.output_validator
    async def must_be_fine(output: str) -> str:
        if output != "fine":
            raise ModelRetry("say fine")
        return output.upper()

    assert agent.run_sync("?", deps=Shop({})).output == "FINE"
    again = shop_agent(["bad", "bad"], output_retries=1)
    again.output_validator(must_be_fine)
    stopped = again.run_sync("?", deps=Shop({}))
    assert stopped.outcome == "output_invalid"
    with pytest.raises(OutputValidationError):
        _ = stopped.output


def test_model_retry_from_a_tool_is_a_message_for_the_model() -> None:
    @tool
    def lookup(key: str) -> str:
        """Look up a key."""
        raise ModelRetry(f"no key {key!r}; keys look like K-123")

    agent = Agent(
        ScriptedModel([call("lookup", key="x"), "gave up"]), tools=[lookup], store=":memory:"
    )
    result = agent.run_sync("?")
    tool_msg = next(m for m in result.messages if m.role == "tool")
    assert tool_msg.is_error and tool_msg.content == "no key 'x'; keys look like K-123"


def test_a_validator_with_the_wrong_shape_is_refused_at_registration() -> None:
    agent = shop_agent([])
    with pytest.raises(ConfigurationError, match="f\\(output\\) or f\\(ctx, output\\)"):
        agent.output_validator(lambda a, b, c: a)


def test_run_started_records_no_deps_and_journal_version_2() -> None:
    agent = shop_agent(["ok"])
    result = agent.run_sync("hi", deps=Shop({"secret-sku": 1}))
    started = agent.store.events(result.run_id)[0]
    assert isinstance(started, RunStarted) and started.version == 2
    assert "secret-sku" not in json.dumps(started.to_dict())


# ------------------------------------------------------- views, narrowed schemas, answers


def windowed(ctx: StepContext[Shop]) -> StepOptions:
    """Send the last turn only, narrow `item` to what the user wrote, and answer a
    step after a tool result from that result itself (no model call)."""
    convo = [m for m in ctx.messages if m.role != "system"]
    last_user = max(i for i, m in enumerate(convo) if m.role == "user")
    results = [m for m in convo[last_user:] if m.role == "tool"]
    if results:
        return StepOptions(answer=f"In stock: {results[-1].content}.")
    said = convo[last_user].content
    items = [w for w in said.replace("?", "").split() if w in ("fig", "apple", "pear")]
    return StepOptions(
        tools=["stock_of"],
        tool_choice="required",
        messages=[Message.system("Earlier turns were about fruit."), *convo[last_user:]],
        schemas={
            "stock_of": {
                "type": "object",
                "properties": {"item": {"enum": items}},
                "required": ["item"],
            }
        },
    )


def hooked_agent(replies: list[Any]) -> Agent[Shop, str]:
    return shop_agent(replies, prepare_step=windowed, store=MemoryStore())


HISTORY = [Message.user("Do you sell pears?"), Message.assistant("Yes, we do.")]


def test_a_view_a_narrowed_schema_and_an_answer_are_on_the_record() -> None:
    agent = hooked_agent([call("stock_of", item="fig")])
    result = agent.run_sync("any fig left?", history=HISTORY, deps=Shop({"fig": 4}))
    assert result.output == "In stock: 4."
    model = agent.model
    assert isinstance(model, ScriptedModel) and len(model.requests) == 1  # step 2: no call
    sent = model.requests[0]
    assert [m.content for m in sent.messages] == [
        "You run a shop.",
        "Earlier turns were about fruit.",
        "any fig left?",
    ]
    assert sent.tools[0].parameters["properties"]["item"] == {"enum": ["fig"]}
    events = agent.store.events(result.run_id)
    asked = [e for e in events if isinstance(e, ModelRequested)]
    assert asked[0].view is not None and asked[0].view[0] == {
        "role": "system",
        "content": "Earlier turns were about fruit.",
    }
    assert asked[0].view[1] == 3  # the new input, by its place in the conversation
    assert asked[0].schemas == {
        "stock_of": {
            "type": "object",
            "properties": {"item": {"enum": ["fig"]}},
            "required": ["item"],
        }
    }
    # What the journal says was sent is exactly what the model received.
    started = events[0]
    assert isinstance(started, RunStarted)
    full = started.context() + asked[0].new_messages
    assert asked[0].sent(full) == sent.messages
    answered = [e for e in events if e.type == "model_response"][-1]
    assert asked[1].answered and answered.response.model == "prepare_step"  # type: ignore[attr-defined]


def test_a_hooked_run_replays_from_its_cassette(tmp_path: Path) -> None:
    path = tmp_path / "hooked.jsonl"
    record_cassette(
        hooked_agent([call("stock_of", item="fig")]),
        "any fig left?",
        path,
        history=HISTORY,
        deps=Shop({"fig": 4}),
    )
    report = assert_replays(hooked_agent([]), path, deps=Shop({"fig": 4}))
    assert report.steps == 1 and report.outcome == "final"  # one model call; one hook answer


def test_a_changed_hook_view_is_a_replay_divergence(tmp_path: Path) -> None:
    path = tmp_path / "hooked.jsonl"
    record_cassette(
        hooked_agent([call("stock_of", item="fig")]), "any fig left?", path, deps=Shop({"fig": 4})
    )

    def other_view(ctx: StepContext[Shop]) -> StepOptions:
        options = windowed(ctx)
        if options.messages is None:
            return options
        return StepOptions(
            tools=options.tools,
            tool_choice=options.tool_choice,
            messages=[Message.system("A different summary."), *options.messages[1:]],
            schemas=options.schemas,
        )

    changed = shop_agent([], prepare_step=other_view, store=MemoryStore())
    with pytest.raises(AssertionError, match="differs"):
        assert_replays(changed, path, deps=Shop({"fig": 4}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (StepOptions(tools=["verify"], schemas={"stock_of": {"type": "object"}}), "not offered"),
        (StepOptions(schemas={"stock_of": {"type": "array"}}), "schema of an object"),
        (StepOptions(messages=["hi"]), "Message objects"),  # type: ignore[list-item]
        (StepOptions(answer=42), "answer must be text"),  # type: ignore[arg-type]
    ],
)
def test_bad_views_schemas_and_answers_are_clear_errors(options: StepOptions, message: str) -> None:
    agent = shop_agent(["never"], prepare_step=lambda ctx: options)
    with pytest.raises(ConfigurationError, match=message):
        agent.run_sync("hi", deps=Shop({}))
