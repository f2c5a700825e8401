"""One place that turns a model string into a `Model`.

Forms:

- ``local`` — the embedded SmolLM2-135M-Instruct through llama.cpp (the default);
  ``local:/path/to/model.gguf`` loads another GGUF file.
- ``openai:<model>`` — an OpenAI-compatible chat-completions endpoint; the base URL
  comes from ``OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``) and the key
  from ``OPENAI_API_KEY``.
- ``openai:<model>@<base_url>`` — any OpenAI-compatible server, e.g.
  ``openai:smollm2@http://127.0.0.1:8080/v1`` (a key is optional for such servers).

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


def _openai(rest: str) -> Model:
    from pilothouse.models.openai import OpenAIModel

    model, sep, base_url = rest.partition("@")
    if not model:
        raise UnknownModelError(
            "model string 'openai:' needs a model name, e.g. 'openai:gpt-4o-mini' or "
            "'openai:smollm2@http://127.0.0.1:8080/v1'"
        )
    return OpenAIModel(model, base_url=base_url if sep else None)


_FACTORIES: dict[str, ModelFactory] = {"local": _local, "openai": _openai}


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
