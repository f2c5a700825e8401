"""A graph's typed state: one reducer per key, and how updates are applied.

Nodes never write the state; they return updates (``{key: value}``), and the key's
reducer folds each update into the current value. Every key must declare its reducer,
either in its annotation (``notes: Annotated[list[str], append]``) or in the graph's
``reducers=`` mapping; a key with none is a `FlowDefinitionError` when the graph is
built. Why required rather than "last write wins" by default: two parallel branches
writing one key is exactly where writes get lost silently (ADK #5244), so the author
says once, per key, what two writes mean.

Updates are validated against the key's type when a node returns them, journaled as
JSON (`StateSchema.dump`) and validated again when a resumed flow reads them back
(`StateSchema.load`), so a recorded update is the same typed value as a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from pilothouse.exceptions import FlowDefinitionError

__all__ = ["Reducer", "StateSchema", "add", "append", "merge", "reducer", "replace"]


@dataclass(frozen=True, slots=True)
class Reducer:
    """How an update to one state key combines with the current value:
    ``fn(current, update) -> new``. It must not change `current` in place (a node's
    view of the state is shared with its siblings)."""

    name: str
    fn: Callable[[Any, Any], Any]

    def __call__(self, current: Any, update: Any) -> Any:
        return self.fn(current, update)


def reducer(fn: Callable[[Any, Any], Any]) -> Reducer:
    """Make a reducer of a function ``(current, update) -> new`` (for ``Annotated``)."""
    return Reducer(getattr(fn, "__name__", "reducer"), fn)


replace = Reducer("replace", lambda current, update: update)
"""The update replaces the value (of two parallel writes, the later in key order wins)."""
append = Reducer("append", lambda current, update: [*current, *update])
"""The update is a list appended to the value (parallel writes all kept, in key order)."""
add = Reducer("add", lambda current, update: current + update)
"""The update is added to the value (counters, totals)."""
merge = Reducer("merge", lambda current, update: {**current, **update})
"""The update is a dict merged into the value (its keys win)."""


class StateSchema:
    """The state model's keys: each one's reducer and validator (see the module)."""

    __slots__ = ("adapters", "keys", "model", "reducers")

    def __init__(self, model: type[BaseModel], reducers: Mapping[str, Reducer] | None = None):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise FlowDefinitionError(
                f"a graph's state must be a pydantic BaseModel class, not {model!r}"
            )
        given = dict(reducers or {})
        unknown = sorted(set(given) - set(model.model_fields))
        if unknown:
            raise FlowDefinitionError(
                f"reducers= names {', '.join(unknown)}, which {model.__name__} does not have"
            )
        self.model = model
        self.reducers: dict[str, Reducer] = {}
        self.adapters: dict[str, TypeAdapter[Any]] = {}
        missing = []
        for name, info in model.model_fields.items():
            found = [m for m in info.metadata if isinstance(m, Reducer)]
            if name in given:
                if not isinstance(given[name], Reducer):
                    raise FlowDefinitionError(
                        f"reducers[{name!r}] must be a Reducer (append, replace, add, merge "
                        f"or reducer(fn)), not {type(given[name]).__name__}"
                    )
                found = [given[name]]
            if not found:
                missing.append(name)
                continue
            if len(found) > 1:
                raise FlowDefinitionError(
                    f"state key {name!r} of {model.__name__} declares {len(found)} reducers"
                )
            self.reducers[name] = found[0]
            self.adapters[name] = TypeAdapter(_plain(info.annotation))
            if info.is_required():
                raise FlowDefinitionError(
                    f"state key {name!r} of {model.__name__} needs a default: a flow starts "
                    "from the state's defaults and the input it is given"
                )
        if missing:
            raise FlowDefinitionError(
                f"state keys without a reducer in {model.__name__}: {', '.join(missing)}. "
                "Declare one per key, e.g. notes: Annotated[list[str], append] or "
                "Graph(..., reducers={'notes': append}) (append, replace, add, merge, "
                "reducer(fn))"
            )
        self.keys = tuple(model.model_fields)

    def initial(self, given: BaseModel | Mapping[str, Any] | None) -> dict[str, Any]:
        """The starting state: the model's defaults, then what the caller gave."""
        if isinstance(given, BaseModel):
            given = dict(given)
        try:
            model = self.model.model_validate(dict(given or {}))
        except ValidationError as exc:
            raise FlowDefinitionError(
                f"the flow's input does not fit {self.model.__name__}: {_short(exc)}"
            ) from None
        return dict(model)

    def check(self, update: Any, where: str) -> dict[str, Any]:
        """A node's update, validated key by key; a `ValueError` naming `where` else."""
        if update is None:
            return {}
        if isinstance(update, BaseModel):
            update = {k: getattr(update, k) for k in update.model_fields_set}
        if not isinstance(update, Mapping):
            raise ValueError(
                f"{where} returned {type(update).__name__}: a node returns a dict of state "
                f"updates ({', '.join(self.keys)}) or None"
            )
        out: dict[str, Any] = {}
        for key, value in update.items():
            adapter = self.adapters.get(key) if isinstance(key, str) else None
            if adapter is None:
                raise ValueError(
                    f"{where} updated {key!r}, which is not a key of {self.model.__name__} "
                    f"({', '.join(self.keys)})"
                )
            try:
                out[key] = adapter.validate_python(value)
            except ValidationError as exc:
                raise ValueError(
                    f"{where} updated {key!r} with a value that does not fit its type: "
                    f"{_short(exc)}"
                ) from None
        return out

    def apply(self, state: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
        """A new state with `update` folded in by each key's reducer (`state` is kept)."""
        if not update:
            return state
        new = dict(state)
        for key, value in update.items():
            new[key] = self.reducers[key](new[key], value)
        return new

    def dump(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """An update as JSON-able values (what the journal keeps)."""
        return {k: self.adapters[k].dump_python(v, mode="json") for k, v in update.items()}

    def load(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A journaled update, typed again."""
        return {k: self.adapters[k].validate_python(v) for k, v in data.items()}

    def dump_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        return self.dump(state)

    def view(self, state: Mapping[str, Any]) -> BaseModel:
        """The state as the model instance a node reads (values already validated)."""
        return self.model.model_construct(**state)


def _plain(annotation: Any) -> Any:
    """The annotation without its `Annotated` reducer (pydantic strips metadata it
    does not know; this keeps validators and constraints)."""
    if get_origin(annotation) is not None and hasattr(annotation, "__metadata__"):
        kept = [m for m in annotation.__metadata__ if not isinstance(m, Reducer)]
        base = get_args(annotation)[0]
        if kept:
            from typing import Annotated

            return Annotated[(base, *kept)]
        return base
    return annotation


def _short(exc: ValidationError) -> str:
    errors = exc.errors()[:3]
    parts = [f"{'.'.join(str(x) for x in e['loc']) or 'value'}: {e['msg']}" for e in errors]
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(parts) + more
