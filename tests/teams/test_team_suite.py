"""The team evaluation suite (`pilothouse_suites.teams`): its oracle passes every
scenario, its null model none, and a sample's usage is its whole team's."""

from __future__ import annotations

from pilothouse.evals.runner import run_eval
from pilothouse.runtime.journal import MemoryStore
from pilothouse_suites import teams


async def test_oracle_passes_every_scenario_and_null_none() -> None:
    store = MemoryStore()
    log = await run_eval(
        teams.suite, [teams.oracle_model(), teams.null_model()], epochs=2, store=store
    )
    oracle, null = log.total("teams:oracle"), log.total("teams:null")
    assert oracle.rate == 1.0 and oracle.pass_hat[2] == 1.0, log.failures()
    assert null.rate == 0.0
    assert {s.failure for s in log.samples if s.model == "teams:null"} == {"assertion"}
    for sample in log.samples:
        root = store.get_run(sample.run_ids[0])
        # the sample's tokens (every model call of the tree) are the team's, to the token
        assert (sample.input_tokens, sample.output_tokens) == (
            root.input_tokens,
            root.output_tokens,
        )
    agents = {
        s.scenario: sorted({store.get_run(r).agent for r in s.run_ids})
        for s in log.samples
        if s.model == "teams:oracle"
    }
    assert agents == {
        "research_write_review": ["editor", "researcher", "reviewer", "writer"],
        "support_order_status": ["orders", "triage"],
        "support_damaged_refund": ["orders", "refunds", "triage"],
    }


async def test_a_member_without_the_tool_cannot_pass() -> None:
    """Specialisation matters: an editor answering alone, without its members, fails."""
    from pilothouse import ScriptedModel

    def alone(request: object) -> str:
        return "The Kestrel 3 flies for a long time and is light."

    log = await run_eval(
        teams.suite, [ScriptedModel(alone, name="alone")], epochs=1, scenarios=["research"]
    )
    (sample,) = log.samples
    assert not sample.ok and "figures" in sample.message
