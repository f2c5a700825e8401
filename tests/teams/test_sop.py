"""SOP pipelines: routing only to subscribers, typed versioned artefacts, a bound,
deterministic order, resume, and a role producing the wrong type."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pilothouse import Agent, ScriptedModel
from pilothouse.events import ArtefactPublished, TeamEnded
from pilothouse.exceptions import ArtefactTypeError, ConfigurationError
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.teams.sop import TASK, Role, SOPPipeline


class PRD(BaseModel):
    goals: list[str]


class Design(BaseModel):
    modules: list[str]


class Code(BaseModel):
    files: dict[str, str]


class Review(BaseModel):
    approved: bool
    notes: str = ""


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "journal.db")


def role(store: SQLiteStore, name: str, replies: Any, produces: type[BaseModel], **kw: Any) -> Role:
    model = ScriptedModel(replies)
    agent = Agent(model, name=name, output_type=produces, store=store)
    return Role(agent, produces=produces, **kw)


def _models(pipeline: SOPPipeline) -> dict[str, ScriptedModel]:
    return {r.name: r.agent.model for r in pipeline.roles}


async def test_artefacts_flow_only_to_their_subscribers(store: SQLiteStore) -> None:
    pipeline = SOPPipeline(
        [
            role(store, "pm", ['{"goals": ["add", "list"]}'], PRD, watches=[TASK]),
            role(store, "architect", ['{"modules": ["cli", "store"]}'], Design, watches=[PRD]),
            role(
                store,
                "engineer",
                ['{"files": {"cli.py": "print()"}}'],
                Code,
                watches=[Design],
            ),
            # watches the code only: must never see the PRD or the design
            role(store, "qa", ['{"approved": true}'], Review, watches=[Code]),
        ],
        store=store,
    )
    result = await pipeline.run("a todo app", run_id="sop")
    assert result.reason == "idle"
    assert [(a.kind, a.version, a.producer) for a in result.pool] == [
        ("task", 1, "user"),
        ("PRD", 1, "pm"),
        ("Design", 1, "architect"),
        ("Code", 1, "engineer"),
        ("Review", 1, "qa"),
    ]
    assert result.latest(Code).content == {"files": {"cli.py": "print()"}}  # type: ignore[union-attr]
    published = [e for e in store.events("sop") if isinstance(e, ArtefactPublished)]
    assert [(e.kind, e.routed_to) for e in published] == [
        ("task", ["pm"]),
        ("PRD", ["architect"]),
        ("Design", ["engineer"]),
        ("Code", ["qa"]),
        ("Review", []),
    ]
    models = _models(pipeline)
    (qa_request,) = models["qa"].requests
    seen = " ".join(m.content for m in qa_request.messages)
    assert "[Code v1 from engineer]" in seen
    assert (
        "PRD" not in seen.replace("Produce", "") and "modules" not in seen and "goals" not in seen
    )
    (architect_request,) = models["architect"].requests
    assert architect_request.messages[1].content.startswith("[PRD v1 from pm]")
    assert json.loads(architect_request.messages[1].content.split("\n", 1)[1]) == {
        "goals": ["add", "list"]
    }
    assert [c.run_id for c in store.children("sop")] == [f"sop.{n}.0.role" for n in (1, 2, 3, 4)]
    assert store.get_run("sop").status == "final"


async def test_review_loop_versions_artefacts_and_is_bounded(store: SQLiteStore) -> None:
    def engineer(request: ModelRequest) -> str:
        version = sum("[Review v" in m.content for m in request.messages)
        return json.dumps({"files": {"main.py": f"v{version + 1}"}})

    def reviewer(request: ModelRequest) -> str:
        return '{"approved": false, "notes": "again"}'  # never satisfied

    pipeline = SOPPipeline(
        [
            role(store, "engineer", engineer, Code, watches=[TASK, Review]),
            role(store, "reviewer", reviewer, Review, watches=[Code]),
        ],
        max_activations=5,
        store=store,
    )
    result = await pipeline.run("build it", run_id="loop")
    assert result.reason == "max_activations(5)"
    assert [(a.kind, a.version) for a in result.pool[1:]] == [
        ("Code", 1),
        ("Review", 1),
        ("Code", 2),
        ("Review", 2),
        ("Code", 3),
    ]
    assert [a.content["files"]["main.py"] for a in result.versions(Code)] == ["v1", "v2", "v2"]
    ended = [e for e in store.events("loop") if isinstance(e, TeamEnded)]
    assert [e.reason for e in ended] == ["max_activations(5)"]


async def test_the_engineer_sees_the_newest_version_of_each_kind(store: SQLiteStore) -> None:
    replies = iter(['{"approved": false, "notes": "n1"}', '{"approved": true}'])
    pipeline = SOPPipeline(
        [
            role(store, "engineer", lambda r: '{"files": {}}', Code, watches=[TASK, Review]),
            role(store, "reviewer", lambda r: next(replies), Review, watches=[Code]),
        ],
        max_activations=5,
        store=store,
    )
    await pipeline.run("x", run_id="newest")
    engineer = _models(pipeline)["engineer"]
    last = [m.content for m in engineer.requests[-1].messages if m.role == "user"]
    assert last[0].startswith("[task v1 from user]")
    assert last[1].startswith("[Review v2 from reviewer]")  # not v1 as well
    assert not any(c.startswith("[Review v1") for c in last)


async def test_a_role_producing_the_wrong_type_is_refused_and_the_pool_kept(
    store: SQLiteStore,
) -> None:
    pm = role(store, "pm", ['{"goals": ["g"]}'], PRD, watches=[TASK])
    # an agent whose answer is free text, declared to produce a Design: it is not one
    liar = Agent(ScriptedModel(['{"files": {"a": "b"}}']), name="architect", store=store)
    pipeline = SOPPipeline([pm, Role(liar, watches=[PRD], produces=Design)], store=store)
    with pytest.raises(ArtefactTypeError, match="role 'architect' must produce a Design"):
        await pipeline.run("x", run_id="wrong")
    published = [e for e in store.events("wrong") if isinstance(e, ArtefactPublished)]
    assert [(e.kind, e.producer) for e in published] == [("task", "user"), ("PRD", "pm")]
    assert store.get_run("wrong").status == "error"
    assert store.events("wrong")[-1].type == "error"

    pm2 = role(store, "pm", ['{"goals": ["g"]}'], PRD, watches=[TASK])
    typed_liar = Agent(ScriptedModel(['{"files": {}}']), name="a2", output_type=Code, store=store)
    with pytest.raises(ArtefactTypeError, match="it produced a Code"):
        await SOPPipeline([pm2, Role(typed_liar, watches=[PRD], produces=Design)], store=store).run(
            "x", run_id="wrong2"
        )


class Hanging(ScriptedModel):
    """Answers from its script, except that its first call never returns (the test
    cancels the pipeline there, as a process that stops mid-call)."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(replies)
        self.entered = asyncio.Event()
        self.hung = False

    async def generate(self, request: ModelRequest) -> Any:
        if not self.hung:
            self.hung = True
            self.entered.set()
            await asyncio.Event().wait()
        return await super().generate(request)


async def test_resume_reuses_published_artefacts(store: SQLiteStore) -> None:
    pm_model = ScriptedModel(['{"goals": ["g"]}'])
    architect_model = Hanging(['{"modules": ["m"]}'])

    def build() -> SOPPipeline:
        pm = Agent(pm_model, name="pm", output_type=PRD, store=store)
        architect = Agent(architect_model, name="architect", output_type=Design, store=store)
        return SOPPipeline(
            [
                Role(pm, watches=[TASK], produces=PRD),
                Role(architect, watches=[PRD], produces=Design),
            ],
            store=store,
        )

    task = asyncio.ensure_future(build().run("x", run_id="res"))
    await architect_model.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.get_run("res").status == "running"  # not ended: resumable
    assert store.get_run("res.2.0.role").status == "interrupted"
    result = await build().resume("res")
    assert [(a.kind, a.version) for a in result.pool] == [("task", 1), ("PRD", 1), ("Design", 1)]
    assert len(pm_model.requests) == 1  # the PRD was not produced again
    assert len(architect_model.requests) == 1  # the cut-off call, made again once
    published = [e for e in store.events("res") if isinstance(e, ArtefactPublished)]
    assert [e.kind for e in published] == ["task", "PRD", "Design"]  # each once


async def test_a_role_may_pass_on_a_message(store: SQLiteStore) -> None:
    reviews = iter(['{"approved": false, "notes": "n1"}', '{"approved": true}'])
    engineer = role(
        store,
        "engineer",
        lambda r: '{"files": {}}',
        Code,
        watches=[TASK, Review],
        when=lambda m: m.kind != "Review" or not m.content["approved"],
    )
    pipeline = SOPPipeline(
        [engineer, role(store, "reviewer", lambda r: next(reviews), Review, watches=[Code])],
        store=store,
    )
    result = await pipeline.run("x", run_id="pass")
    assert result.reason == "idle"
    assert [(a.kind, a.version) for a in result.pool[1:]] == [
        ("Code", 1),
        ("Review", 1),
        ("Code", 2),
        ("Review", 2),
    ]


def test_definitions_are_checked(store: SQLiteStore) -> None:
    pm = role(store, "pm", [], PRD, watches=[TASK])
    with pytest.raises(ConfigurationError, match="no role watches 'task'"):
        SOPPipeline([role(store, "a", [], Design, watches=[PRD])])
    with pytest.raises(ConfigurationError, match="distinct"):
        SOPPipeline([pm, pm])
    with pytest.raises(ConfigurationError, match="watches no kind"):
        Role(pm.agent, watches=[], produces=PRD)
    with pytest.raises(ConfigurationError, match="pydantic model"):
        Role(pm.agent, watches=[TASK], produces=dict)  # type: ignore[arg-type]


async def test_pipeline_usage_is_the_sum_of_its_activations_to_the_token(
    store: SQLiteStore,
) -> None:
    from pilothouse.events import ChildFinished
    from pilothouse.messages import Usage

    pipeline = SOPPipeline(
        [
            role(store, "pm", ['{"goals": ["add"]}'], PRD, watches=[TASK]),
            role(store, "architect", ['{"modules": ["cli"]}'], Design, watches=[PRD]),
            # a retried reply: the invalid one counts too
            role(store, "qa", ["not json", '{"approved": true}'], Review, watches=[Design]),
        ],
        store=store,
    )
    result = await pipeline.run("todo app", run_id="sop-usage")
    total = Usage()
    for child in store.children("sop-usage"):
        for event in store.events(child.run_id):
            if event.type == "model_response":
                total = total + event.response.usage  # type: ignore[attr-defined]
    assert result.usage == total and total.requests == 4
    assert result.usage.total_tokens == total.total_tokens > 0
    final = store.events("sop-usage")[-1]
    assert final.type == "final" and final.usage == total  # type: ignore[attr-defined]
    info = store.get_run("sop-usage")
    assert (info.input_tokens, info.output_tokens) == (total.input_tokens, total.output_tokens)
    finished = [e for e in store.events("sop-usage") if isinstance(e, ChildFinished)]
    assert sum((e.usage for e in finished), Usage()) == total
