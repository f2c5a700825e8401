"""Guided decoding: tool use built in narrow, constrained, journaled stages.

`GuidedModel(inner)` (or `guided(model)`) wraps any model that can hold its reply
to a JSON schema; the embedded `LocalModel` asks for it by default, so
``Agent(model="local", tools=...)`` is guided. Modules, one job each:

- `render`: the conversation as plain chat turns (tools and reply forms in the
  system prompt, calls as JSON, results as user turns);
- `schemas`: the JSON schema of each stage's reply;
- `checks`: the deterministic checks between stages (repeats, invented numbers,
  ungrounded arguments, grounded and extracted answers);
- `relevance`: whether any offered tool fits the request (a lexical gate: when none
  does, the step is an answer);
- `arguments`: arguments in the user's own words (request spans, enum members the
  request names, unsupported optional arguments left out, one value per argument);
- `brevity`: an answer before any tool ran is asked for in a few tokens;
- `parallel`: one call per value the request enumerates ("10, 20 and 30 years");
- `model`: the stages themselves (`GuidedModel`), each reported as it happens to a
  `StageLog` (the agent loop journals them as ``stage_request``/``stage_response``).
"""

from __future__ import annotations

from pilothouse.guided.model import GuidedModel, guide_for, guided, needs_guide

__all__ = ["GuidedModel", "guide_for", "guided", "needs_guide"]
