"""One place that turns a model string into a `Model`.

Forms:

- ``local`` — the embedded SmolLM2-135M-Instruct through llama.cpp (the default);
  ``local:/path/to/model.gguf`` loads another GGUF file.
- ``openai:<model>`` — an OpenAI-compatible chat-completions endpoint; the base URL
  comes from ``OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``) and the key
  from ``OPENAI_API_KEY``.
- ``openai:<model>@<base_url>`` — any OpenAI-compatible server, e.g.
  ``openai:smollm2@http://127.0.0.1:8080/v1`` (a key is optional for such servers).
- ``anthropic:<model>`` — Anthropic's Messages API (key from ``ANTHROPIC_API_KEY``,
  base URL from ``ANTHROPIC_BASE_URL``, default ``https://api.anthropic.com``);
  ``anthropic:<model>@<base_url>`` for another server speaking that API.

With no model given, ``$PILOTHOUSE_MODEL`` is used, else ``local``. Other prefixes
can be added with `register_model`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pilothouse.exceptions import UnknownModelError
from pilothouse.models.base import Model

ModelFactory = Callable[[str], Model]


def _local(rest: str) -> Model:
    from pilothouse.models.local import LocalModel

    return LocalModel(rest or None)


def _model_at(rest: str, prefix: str, examples: str) -> tuple[str, str | None]:
    """Split ``<model>[@<base_url>]``; a missing model name is an error naming `examples`."""
    model, sep, base_url = rest.partition("@")
    if not model:
        raise UnknownModelError(f"model string '{prefix}:' needs a model name, e.g. {examples}")
    return model, base_url if sep else None


def _openai(rest: str) -> Model:
    from pilothouse.models.openai import OpenAIModel

    model, base_url = _model_at(
        rest, "openai", "'openai:gpt-4o-mini' or 'openai:smollm2@http://127.0.0.1:8080/v1'"
    )
    return OpenAIModel(model, base_url=base_url)


def _anthropic(rest: str) -> Model:
    from pilothouse.models.anthropic import AnthropicModel

    model, base_url = _model_at(rest, "anthropic", "'anthropic:claude-sonnet-4-5'")
    return AnthropicModel(model, base_url=base_url)


_FACTORIES: dict[str, ModelFactory] = {
    "local": _local,
    "openai": _openai,
    "anthropic": _anthropic,
}


def register_model(prefix: str, factory: ModelFactory) -> None:
    """Make ``prefix:rest`` model strings resolve through `factory(rest)`."""
    _FACTORIES[prefix] = factory


def resolve_model(model: Model | str | None = None) -> Model:
    """Return a `Model` for an object, a model string, or the configured default."""
    if model is not None and not isinstance(model, str):
        return model
    text = model or os.environ.get("PILOTHOUSE_MODEL") or "local"
    prefix, _, rest = text.partition(":")
    factory = _FACTORIES.get(prefix)
    if factory is None:
        forms = ", ".join(f"'{p}'" if p == "local" else f"'{p}:<model>'" for p in _FACTORIES)
        raise UnknownModelError(
            f"unknown model {text!r}: use one of {forms} "
            "(or 'openai:<model>@<base_url>' for any OpenAI-compatible server)"
        )
    return factory(rest)
