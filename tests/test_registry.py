"""Model strings resolve through one registry with clear errors."""

from __future__ import annotations

import pytest

from pilothouse import ScriptedModel
from pilothouse.exceptions import UnknownModelError
from pilothouse.models import register_model, resolve_model


def test_model_objects_pass_through() -> None:
    model = ScriptedModel([])
    assert resolve_model(model) is model


def test_openai_forms() -> None:
    m = resolve_model("openai:smollm2@http://127.0.0.1:9/v1")
    assert m.name.startswith("openai:smollm2")
    assert "127.0.0.1:9" in m.render(_request())


def test_unknown_and_incomplete_strings() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'gpt-4o'.*'openai:<model>'"):
        resolve_model("gpt-4o")
    with pytest.raises(UnknownModelError, match="needs a model name"):
        resolve_model("openai:")


def test_environment_default_and_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    register_model("fake", lambda rest: ScriptedModel([rest], name=f"fake:{rest}"))
    monkeypatch.setenv("PILOTHOUSE_MODEL", "fake:hello")
    assert resolve_model(None).name == "fake:hello"
    assert resolve_model("fake:x").name == "fake:x"


def _request():  # type: ignore[no-untyped-def]
    from pilothouse.messages import Message
    from pilothouse.models.base import ModelRequest

    return ModelRequest([Message.user("hi")])
