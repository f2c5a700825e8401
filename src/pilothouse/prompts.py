"""Every prompt the framework writes, as data: `prompts.toml`, overridable per agent.

A prompt Pilothouse writes (the loop's re-ask after an unreadable reply, a structured
answer's instructions and retry, what the model reads when a call is refused, the text
action formats, the guided layer's stages, the judge) changes what a model does as much
as the user's own instructions do, so none of them hides in a module constant: they
are read from one file, each with the fields it must use, and an agent can replace any
of them (`Agent(prompts={"parse_retry": "..."})`). An override is checked when it is
made, not when the model first reads it: one that drops a required field (the model
would never see why its reply failed) or names a field nobody fills (it would reach
the model as a literal ``$name``) is a `ConfigurationError` saying which.

Templates are `string.Template`: ``$field`` fills a field, ``$$`` is a literal ``$``;
prompts are full of JSON braces, which ``str.format`` would make unreadable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from typing import Any, cast

from pilothouse.exceptions import ConfigurationError

__all__ = ["PromptTemplate", "Prompts"]


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """One prompt: its text, the fields it must use and those it may use."""

    name: str
    text: str
    fields: frozenset[str]
    optional: frozenset[str] = frozenset()
    doc: str = ""

    def render(self, **values: Any) -> str:
        """The text with its fields filled (every field it uses must be given)."""
        try:
            return Template(self.text).substitute(values)
        except KeyError as exc:
            raise ConfigurationError(
                f"prompt {self.name!r} uses the field {exc.args[0]!r}, which was not given"
            ) from None

    def with_text(self, text: str) -> PromptTemplate:
        """This prompt with another text, checked against its fields."""
        if not isinstance(text, str):
            raise ConfigurationError(
                f"the override of prompt {self.name!r} must be a string, not {type(text).__name__}"
            )
        used = _fields_of(self.name, text)
        missing = sorted(self.fields - used)
        unknown = sorted(used - self.fields - self.optional)
        if missing or unknown:
            problems = []
            if missing:
                problems.append(f"it leaves out {', '.join('$' + f for f in missing)}")
            if unknown:
                known = sorted(self.fields | self.optional)
                problems.append(
                    f"it uses {', '.join('$' + f for f in unknown)}, which this prompt does "
                    f"not fill (it fills: {', '.join('$' + f for f in known) or 'nothing'})"
                )
            raise ConfigurationError(
                f"override of prompt {self.name!r} refused: {'; '.join(problems)} "
                "(write $$ for a literal $)"
            )
        return PromptTemplate(self.name, text, self.fields, self.optional, self.doc)


def _fields_of(name: str, text: str) -> set[str]:
    template = Template(text)
    if not template.is_valid():
        raise ConfigurationError(
            f"prompt {name!r} has a '$' that starts no field name (write $$ for a literal $)"
        )
    return set(template.get_identifiers())


class Prompts(Mapping[str, PromptTemplate]):
    """The prompts one agent uses: the defaults of `prompts.toml`, with its overrides.

    Immutable; `with_overrides` returns a new set. `overrides` names what differs
    from the defaults (part of an agent's definition hash: another prompt is another
    agent).
    """

    __slots__ = ("_templates", "overrides")

    def __init__(
        self, templates: Mapping[str, PromptTemplate], overrides: Mapping[str, str] | None = None
    ) -> None:
        self._templates = dict(templates)
        self.overrides: dict[str, str] = dict(overrides or {})

    @classmethod
    def default(cls) -> Prompts:
        """The framework's own prompts (read once per process)."""
        return _defaults()

    @classmethod
    def of(cls, value: Prompts | Mapping[str, str] | None) -> Prompts:
        """What an agent's ``prompts=`` argument means: a set, overrides, or the defaults."""
        if value is None:
            return cls.default()
        if isinstance(value, Prompts):
            return value
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                "prompts must be a Prompts or a mapping of prompt name to text, "
                f"not {type(value).__name__}"
            )
        return cls.default().with_overrides(cast("Mapping[str, str]", value))

    @classmethod
    def load(cls, path: str | Path) -> Prompts:
        """The defaults overridden by a TOML file: ``name = "text"`` or ``[name] text = ...``."""
        import tomllib

        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read prompts from {path}: {exc}") from None
        texts: dict[str, str] = {}
        for name, value in data.items():
            text = value.get("text") if isinstance(value, dict) else value
            if not isinstance(text, str):
                raise ConfigurationError(
                    f'{path}: prompt {name!r} needs a text (name = "..." or [{name}] text = ...)'
                )
            texts[name] = text
        return cls.default().with_overrides(texts)

    def with_overrides(self, texts: Mapping[str, str]) -> Prompts:
        """These prompts with some texts replaced, each checked against its fields."""
        templates = dict(self._templates)
        for name, text in texts.items():
            current = templates.get(name)
            if current is None:
                known = ", ".join(sorted(templates))
                raise ConfigurationError(
                    f"there is no prompt named {name!r}; known prompts: {known}"
                )
            templates[name] = current.with_text(text)
        defaults = _defaults()._templates
        overrides = {
            n: t.text for n, t in templates.items() if n not in defaults or t != defaults[n]
        }
        return Prompts(templates, overrides)

    def render(self, name: str, **values: Any) -> str:
        """Prompt `name` with its fields filled."""
        return self[name].render(**values)

    def text(self, name: str) -> str:
        """Prompt `name`'s template text, unfilled."""
        return self[name].text

    def __getitem__(self, name: str) -> PromptTemplate:
        try:
            return self._templates[name]
        except KeyError:
            raise KeyError(f"no prompt named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._templates)

    def __len__(self) -> int:
        return len(self._templates)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prompts) and self._templates == other._templates

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.overrides.items())))

    def __repr__(self) -> str:
        changed = f", overriding {sorted(self.overrides)}" if self.overrides else ""
        return f"Prompts({len(self)} prompts{changed})"


@cache
def _defaults() -> Prompts:
    import tomllib
    from importlib.resources import files

    raw = tomllib.loads(files("pilothouse").joinpath("prompts.toml").read_text(encoding="utf-8"))
    templates: dict[str, PromptTemplate] = {}
    for name, entry in raw.items():
        fields = frozenset(entry.get("fields", ()))
        optional = frozenset(entry.get("optional", ()))
        template = PromptTemplate(name, "", fields, optional, entry.get("doc", ""))
        templates[name] = template.with_text(entry["text"])  # the defaults obey their own rule
    return Prompts(templates)
