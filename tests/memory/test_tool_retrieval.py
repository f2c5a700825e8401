"""Tool retrieval: top-k per step, an offer that never shrinks, `find_tools`, no sockets."""

from __future__ import annotations

import itertools
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from pilothouse import Agent, ScriptedModel, call
from pilothouse.events import ModelRequested, ToolReturned
from pilothouse.memory import Compaction, ToolRetrieval, chain_hooks
from pilothouse.models.base import ToolSpec
from pilothouse.runtime.journal import MemoryStore
from pilothouse.testing import replay
from pilothouse.tools.select import ToolIndex, rank_tools
from pilothouse.tools.tool import Tool

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "tools"


def generated_specs() -> list[ToolSpec]:
    entries = json.loads((DATA / "sdk_tools.json").read_text(encoding="utf-8"))
    return [ToolSpec(e["name"], e["description"], e["parameters"]) for e in entries]


def make_tool(spec: ToolSpec) -> Tool:
    """A tool with the generated name and description; it answers without arguments."""
    return Tool(lambda: f"{spec.name} done", name=spec.name, description=spec.description)


def api_tools(n: int = 300) -> list[Tool]:
    return [make_tool(s) for s in generated_specs()[:n]]


def test_the_index_ranks_as_rank_tools_does() -> None:
    specs = generated_specs()[:200]
    index = ToolIndex(specs)
    for query in ["list the files", "take a screenshot of the page", "cancel a batch", "zzz"]:
        expected = [(s.name, round(x, 9)) for s, x in rank_tools(query, specs) if x > 0][:5]
        got = [(s.name, round(x, 9)) for s, x in index.search(query, 5)]
        assert got == expected


def test_retrieval_opens_no_network_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[Any, ...]] = []

    class NoSocket(socket.socket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            opened.append(args)
            raise AssertionError("tool retrieval opened a socket")

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection", NoSocket)
    retrieval = ToolRetrieval(api_tools(1_000))
    for query in ["take a screenshot", "delete a vector store", "transcribe audio"]:
        assert retrieval.search(query)
    assert opened == []


def test_each_step_offers_the_top_k_and_the_offer_never_shrinks() -> None:
    tools = api_tools()
    retrieval = ToolRetrieval(tools, k=3)
    first = retrieval.search("create a vector store for my documents", 3)
    model = ScriptedModel(
        [
            [call(first[0])],
            [call("find_tools", query="list the batches")],
            [call("openai_batches_list")],
            "done",
        ]
    )
    store = MemoryStore()
    agent = Agent(model, tools=retrieval.tools, store=store, prepare_step=retrieval)
    result = agent.run_sync("create a vector store for my documents")
    assert result.output == "done"
    offers = [e.tools for e in store.events(result.run_id) if isinstance(e, ModelRequested)]
    assert offers[0] == [*first, "find_tools"]
    for before, after in itertools.pairwise(offers):
        assert set(before) <= set(after)  # never shrinks
    assert "openai_batches_list" in offers[2]  # found by find_tools, then offered
    assert all(len(o) <= 3 + 5 + 1 for o in offers)  # not all 300
    results = [e.result for e in store.events(result.run_id) if isinstance(e, ToolReturned)]
    assert not any(r.is_error for r in results)
    # the model was sent only the offered tools
    assert [t.name for t in model.requests[0].tools] == offers[0]
    # a fresh hook (empty caches) offers the same tools on replay: derived from the journal
    fresh = ToolRetrieval(tools, k=3)
    again = Agent(ScriptedModel([]), tools=fresh.tools, prepare_step=fresh)
    report = replay(again, store.events(result.run_id))
    assert report.ok, report.divergence


def test_a_tool_not_offered_is_not_run() -> None:
    tools = api_tools()
    retrieval = ToolRetrieval(tools, k=2)
    offered = retrieval.search("delete a file", 2)
    hidden = next(t.name for t in tools if t.name not in offered)
    model = ScriptedModel([[call(hidden)], "ok"])
    store = MemoryStore()
    agent = Agent(model, tools=retrieval.tools, store=store, prepare_step=retrieval)
    result = agent.run_sync("delete a file")
    (res,) = [e.result for e in store.events(result.run_id) if isinstance(e, ToolReturned)]
    assert res.is_error and f"{hidden} done" not in res.content


def test_find_tools_is_bounded_and_reads_its_query_as_words() -> None:
    retrieval = ToolRetrieval(api_tools(), find_limit=4)
    find = retrieval.tools[-1]
    assert find.name == "find_tools"
    out = json.loads(find.function(query="list " * 100_000))
    assert len(out) <= 4
    assert json.loads(find.function(query="")) == []


def test_retrieval_and_compaction_chain_and_conflicts_are_refused() -> None:
    tools = api_tools()
    retrieval = ToolRetrieval(tools, k=2)
    hook = chain_hooks(retrieval, Compaction(10_000))
    model = ScriptedModel(["fine"])
    store = MemoryStore()
    Agent(model, tools=retrieval.tools, store=store, prepare_step=hook).run_sync("list models")
    assert len(model.requests[0].tools) <= 3
    clash = chain_hooks(retrieval, retrieval)
    agent = Agent(ScriptedModel(["x"]), tools=retrieval.tools, prepare_step=clash)
    with pytest.raises(Exception, match="both set 'tools'"):
        agent.run_sync("list models")


def test_bad_configuration_is_refused() -> None:
    tools = api_tools(10)
    with pytest.raises(ValueError):
        ToolRetrieval(tools, k=0)
    with pytest.raises(ValueError, match="unknown"):
        ToolRetrieval(tools, always=["nope"])


# -- embeddings (the `embeddings` extra: the model shipped in the wordllama wheel) ---------

# Tune queries of benchmarks/tool_retrieval.py whose tool BM25 leaves out of its top 5
# among all 987 tools and the hybrid ranking finds.
PARAPHRASED = [
    ("make a code sandbox container", "openai_containers_create"),
    ("delete an uploaded file", "openai_files_delete"),
    ("double click with the mouse at a position", "browser_mouse_dblclick"),
]


@pytest.fixture(scope="module")
def embedder() -> Any:
    pytest.importorskip("safetensors", reason="the embeddings extra")
    from pilothouse.knowledge import WordLlama

    return WordLlama()


def test_hybrid_ranking_finds_tools_bm25_misses(embedder: Any) -> None:
    specs = generated_specs()
    lexical = ToolIndex(specs)
    hybrid = ToolIndex(specs, embedder=embedder)
    assert hybrid.ranking == "hybrid" and lexical.ranking == "bm25"
    for query, target in PARAPHRASED:
        assert target not in [s.name for s, _ in lexical.search(query, 5)]
        assert target in [s.name for s, _ in hybrid.search(query, 5)]
    # the BM25 ranking of an index with an embedder is the plain index's, score for score
    for query in ["list the files", "take a screenshot of the page", "zzz"]:
        assert hybrid.search(query, 5, ranking="bm25") == lexical.search(query, 5)
    assert hybrid.search("", 5) == [] and hybrid.search("   ", 5, ranking="vector") == []
    with pytest.raises(ValueError, match="embedder"):
        lexical.search("files", 5, ranking="hybrid")
    with pytest.raises(ValueError, match="embedder"):
        ToolIndex(specs[:3], ranking="vector")


def test_retrieval_with_embeddings_opens_no_network_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model is loaded (its cache cleared first) and queried with sockets refused."""
    pytest.importorskip("safetensors", reason="the embeddings extra")
    from pilothouse.knowledge import WordLlama
    from pilothouse.knowledge.embed import _table

    class NoSocket(socket.socket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("tool retrieval opened a socket")

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection", NoSocket)
    _table.cache_clear()
    retrieval = ToolRetrieval(api_tools(1_000), embedder=WordLlama())
    for query, target in PARAPHRASED:
        assert target in retrieval.search(query)
    find = retrieval.tools[-1]
    assert json.loads(find.function(query="")) == []


def test_an_embedded_offer_replays_the_same(embedder: Any) -> None:
    tools = api_tools(987)
    retrieval = ToolRetrieval(tools, k=3, embedder=embedder)
    query, target = PARAPHRASED[0]
    model = ScriptedModel([[call(target)], "done"])
    store = MemoryStore()
    agent = Agent(model, tools=retrieval.tools, store=store, prepare_step=retrieval)
    result = agent.run_sync(query)
    assert result.output == "done"
    offers = [e.tools for e in store.events(result.run_id) if isinstance(e, ModelRequested)]
    assert target in offers[0]
    fresh = ToolRetrieval(tools, k=3, embedder=embedder)
    again = Agent(ScriptedModel([]), tools=fresh.tools, prepare_step=fresh)
    report = replay(again, store.events(result.run_id))
    assert report.ok, report.divergence


def test_hybrid_is_weighted_fusion_then_a_name_re_rank(embedder: Any) -> None:
    """The hybrid ranking, rebuilt from the BM25 and vector rankings by the documented
    rule: weighted reciprocal rank fusion, then the top `RERANK_DEPTH` rescored by
    position plus the share of the query's words the tool's name holds."""
    from pilothouse.tools import select

    specs = generated_specs()
    index = ToolIndex(specs, embedder=embedder)
    depth, k = select.FUSION_DEPTH, select.FUSION_K
    for query in ["delete a stored chat completion", "store a credential in a vault", "zzz"]:
        lexical = [s.name for s, _ in index.search(query, depth, ranking="bm25")]
        vector = [s.name for s, _ in index.search(query, depth, ranking="vector")]
        fused: dict[str, float] = {}
        for weight, ranked in ((select.LEXICAL_WEIGHT, lexical), (1.0, vector)):
            for rank, name in enumerate(ranked, 1):
                fused[name] = fused.get(name, 0.0) + weight / (k + rank)
        position = {s.name: i for i, s in enumerate(specs)}
        order = sorted(fused, key=lambda n: (-fused[n], position[n]))
        asked = set(select.words(query))
        rescored = []
        for rank, name in enumerate(order, 1):
            score = 1.0 / (k + rank)
            if rank <= select.RERANK_DEPTH and asked:
                share = len(asked & set(select.words(name.replace("_", " ")))) / len(asked)
                score += select.NAME_BONUS * share / k
            rescored.append((name, score))
        rescored.sort(key=lambda pair: -pair[1])
        got = [(s.name, round(x, 12)) for s, x in index.search(query, 10)]
        assert got == [(n, round(x, 12)) for n, x in rescored[:10]], query
