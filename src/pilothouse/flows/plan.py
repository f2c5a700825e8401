"""Planner-made task graphs (LLMCompiler-style): plan as a whole, run in parallel, join.

`PlannedAgent(agent)` answers an input in four journaled parts instead of a loop of
single tool calls:

1. **Plan.** A planner model (the agent's, or `planner=`) writes the whole plan as
   JSON under a JSON schema (`plan_schema`: on the embedded model a grammar holds it).
   The request and reply are an ordinary `model_request`/`model_response`.
2. **Validate as a whole, before anything runs** (`plan_data.check_plan`): ids, tools
   that exist, references that resolve, no cycle, arguments that fit their schemas,
   and every call through `Policy.check`. A plan fixed before any tool result is read
   cannot be rewritten by what a tool returns, so data from tools (an injected
   instruction in a web page or an email) can only flow into the arguments the plan
   wired it to, never choose a new call: a defence against prompt injection. A plan
   that fails is journaled `plan_rejected` with its reasons and the planner is asked
   again with them, at most `max_replans` times (then the run stops, reason
   ``replans``). An accepted plan is journaled `plan_accepted`.
3. **Run.** Each task is one tool call of its own step (`first_step + k`), run
   through the runtime's own tool step (`runtime.loop.run_tool_step`: argument
   validation, `Policy.check` again with the real values, `tool_call` with the
   decision, commit points around side effects, `tool_result`), as soon as the tasks
   it depends on have finished: independent tasks run concurrently, with no barrier.
   References are substituted structurally just before a task runs and the values
   checked against the tool's schema; a task whose reference does not resolve, or
   whose input task failed, does not run.
4. **Join.** A joiner model (`joiner=`, default the planner) reads the results and
   answers (its answer may be a reference, ``"$2"``, to give a result as it is) or
   asks for a new plan (bounded by the same `max_replans`).

Durable: the driver is a pure function of the journal and the live calls it still has
to make. `resume` walks the same path over the recorded events: recorded model replies
are reused, recorded task results are reused (0 completed tasks run again), a task
with a `tool_call` and no result is in doubt and follows its tool's `on_doubt`
(through the runtime's own rule). `replay_plan` runs a recording again with its model
replies and tool results served from the journal and compares what happened
(`pilothouse.flows.plan_replay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

from pydantic_core import to_json

from pilothouse.events import (
    ChildFinished,
    ErrorOccurred,
    Event,
    FinalOutput,
    ModelRequested,
    ModelResponded,
    OutputValidated,
    PlanAccepted,
    PlanRejected,
    RunStarted,
    RunStatus,
    Stopped,
    ToolCalled,
    ToolReturned,
)
from pilothouse.exceptions import (
    ConfigurationError,
    LeaseLostError,
    PlanError,
    RunFinishedError,
    RunInterrupted,
    SessionBusyError,
    StoreError,
    ToolCallInDoubtError,
    WriteConflictError,
)
from pilothouse.flows.plan_data import (
    Plan,
    Reference,
    Task,
    check_plan,
    check_resolved,
    describe_tools,
    join_schema,
    parse_plan,
    plan_schema,
    resolve,
    value_of,
)
from pilothouse.messages import Message, ToolCall, ToolResult, Usage
from pilothouse.models.base import Model, ModelRequest, ModelResponse
from pilothouse.policy import Principal, RunContext
from pilothouse.runtime.budget import LoopDetector
from pilothouse.runtime.drive import ChildRuns, check_deps
from pilothouse.runtime.journal import Journal, Store, Subscriber
from pilothouse.runtime.lease import RunLease
from pilothouse.runtime.loop import (
    RunResult,
    RunSpec,
    ToolReplay,
    commit_journal,
    run_tool_step,
)
from pilothouse.runtime.output import OutputT
from pilothouse.runtime.resume import settlement_events
from pilothouse.runtime.rows import RunInfo
from pilothouse.tools.tool import Tool, ToolContext

if TYPE_CHECKING:
    from pilothouse.agent import Agent

__all__ = [
    "Plan",
    "PlannedAgent",
    "Reference",
    "Task",
    "agent_tool",
    "join_schema",
    "plan_schema",
]


@dataclass(slots=True)
class _Recorded:
    """What the journal of a planned run already holds, by step (empty for a new run)."""

    responses: dict[int, ModelResponse] = field(default_factory=dict)
    requested: set[int] = field(default_factory=set)
    accepted: dict[int, PlanAccepted] = field(default_factory=dict)
    rejected: dict[int, PlanRejected] = field(default_factory=dict)
    validated: dict[int, int] = field(default_factory=dict)  # step -> output_validated count
    calls: dict[int, ToolCalled] = field(default_factory=dict)
    results: dict[int, ToolResult] = field(default_factory=dict)
    # what the recorded children of each task step used (usage, steps): a resumed run
    # adds it when the step's plan runs again (its results are served from here, its
    # finished children re-attached, and neither rolls their usage up a second time)
    children: dict[int, tuple[Usage, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, events: Sequence[Event]) -> _Recorded:
        rec = cls()
        for e in events:
            if isinstance(e, ModelRequested):
                rec.requested.add(e.step)
            elif isinstance(e, ModelResponded):
                rec.responses[e.step] = e.response
            elif isinstance(e, PlanAccepted):
                rec.accepted[e.step] = e
            elif isinstance(e, PlanRejected):
                rec.rejected[e.step] = e
            elif isinstance(e, OutputValidated):
                rec.validated[e.step] = rec.validated.get(e.step, 0) + 1
            elif isinstance(e, ToolCalled):
                rec.calls[e.step] = e
            elif isinstance(e, ToolReturned):
                rec.results[e.step] = e.result
            elif isinstance(e, ChildFinished):
                usage, steps = rec.children.get(e.step, (Usage(), 0))
                rec.children[e.step] = (usage + e.usage, steps + e.steps)
        return rec

    def in_doubt(self) -> dict[str, ToolCalled]:
        """The tasks' side-effecting calls that were allowed and have no result (a task
        is one step, one call): what a person may settle, by key."""
        return {
            called.idempotency_key: called
            for step, called in self.calls.items()
            if step not in self.results
            and called.effect != "read_only"
            and called.decision is not None
            and called.decision.allowed
        }


class _Stop(Exception):
    """Internal: the run stops (its `run_stopped` event)."""

    def __init__(self, event: Stopped) -> None:
        super().__init__(event.message)
        self.event = event


@dataclass(slots=True)
class _Drive:
    """One drive of a planned run (new or resumed) over its journal."""

    planned: PlannedAgent[Any]
    spec: RunSpec[Any]
    journal: Journal
    user_input: str
    rec: _Recorded
    policy_context: RunContext
    deps: Any = None
    tree: ChildRuns | None = None  # the run tree, when a task may start a child run
    loops: LoopDetector = field(default_factory=lambda: LoopDetector(3))  # over all plans
    created: float = field(default_factory=time.time)
    messages: list[Message] = field(default_factory=list)
    reported: int = 0
    usage: Usage = field(default_factory=Usage)
    step: int = 0
    model_calls: int = 0
    # the steps of the tasks' finished child runs (theirs included): with the model
    # calls, what the run's `max_steps` counts, so delegating cannot multiply it
    child_steps: int = 0
    started: float = field(default_factory=time.monotonic)
    # task id -> result value, of the plan that ran last (what the joiner's "$n" names)
    _values: dict[int, Any] = field(default_factory=dict)
    # what the run had used when the running plan's tasks began, and each agent task's
    # (place, how many) by step: the plan's agent tasks split what was left
    _before_tasks: Usage = field(default_factory=Usage)
    _steps_before_tasks: int = 0
    _shares: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.journal.run_id

    def emit(self, event: Event) -> None:
        self.journal.emit(event)

    def index_row(self, status: RunStatus, output: Any = None) -> None:
        self.journal.set_info(
            RunInfo(
                self.run_id,
                self.spec.agent_name,
                self.planned.planner_model.name,
                self.user_input,
                status,
                self.created,
                time.time(),
                self.step,
                self.usage.input_tokens,
                self.usage.output_tokens,
                self.usage.cost,
                output,
            )
        )

    async def ask(
        self, model: Model, schema: dict[str, Any], instructions: str | None
    ) -> ModelResponse:
        """One model call of this step: the recorded reply on resume, else asked (and
        journaled: request before, reply after)."""
        self.step += 1
        step = self.step
        budget = self.spec.budget
        if step not in self.rec.responses:
            used = self.model_calls + self.child_steps
            limit = budget.exceeded(used, self.usage, time.monotonic() - self.started)
            if limit is not None:
                name, value, maximum = limit
                raise _Stop(
                    Stopped(
                        run_id=self.run_id,
                        step=step,
                        reason=name,
                        value=value,
                        maximum=maximum,
                        message=f"{name} budget exhausted ({value} of {maximum}); raise the "
                        f"limit in Budget(max_{name}=...) if the plan needs more",
                    )
                )
        self.model_calls += 1
        event = ModelRequested(
            run_id=self.run_id,
            step=step,
            new_messages=self.messages[self.reported :],
            tools=[],
            instructions=instructions,
        )
        self.reported = len(self.messages)
        recorded = self.rec.responses.get(step)
        if recorded is not None:
            self.usage += recorded.usage
            return recorded
        if step in self.rec.requested:  # asked before the stop, never answered: ask again
            event.new_messages = []
        self.emit(event)
        sent = event.sent(self.messages)
        request = ModelRequest(sent, [], schema, "auto", self.spec.settings)
        began = time.perf_counter()
        response = await self._within(model.generate(request), step)
        self.usage += response.usage
        self.emit(
            ModelResponded(
                run_id=self.run_id,
                step=step,
                response=response,
                duration=time.perf_counter() - began,
            )
        )
        await commit_journal(self.journal)
        return response

    async def _within(self, asking: Any, step: int) -> ModelResponse:
        """A model call under the run's wall-clock budget (running out is a stop)."""
        limit = self.spec.budget.max_seconds
        if limit is None:
            response: ModelResponse = await asking
            return response
        try:
            async with asyncio.timeout(max(0.0, self.started + limit - time.monotonic())):
                response = await asking
                return response
        except TimeoutError:
            raise _Stop(
                Stopped(
                    run_id=self.run_id,
                    step=step,
                    reason="seconds",
                    value=round(time.monotonic() - self.started, 3),
                    maximum=limit,
                    message=f"seconds budget exhausted ({limit} s) while waiting on the "
                    "model; raise Budget(max_seconds=...) if the plan needs more",
                )
            ) from None

    async def drive(self) -> RunResult[Any]:
        planned, spec = self.planned, self.spec
        tools = list(spec.tools.values())
        schema = plan_schema(tools, planned.max_tasks)
        replans_left = planned.max_replans
        retries_left = spec.output_retries
        attempt = 0
        while True:
            attempt += 1
            response = await self.ask(planned.planner_model, schema, None)
            plan_step = self.step
            self.messages.append(Message.assistant(response.text))
            decided = self.rec.rejected.get(plan_step)
            try:
                plan = parse_plan(response.text, max_tasks=planned.max_tasks)
                if decided is not None:  # resumed: the decision made then, not re-made
                    reasons = decided.reasons  # against a policy context that has moved on
                elif plan_step in self.rec.accepted:
                    reasons = []
                else:
                    reasons = check_plan(
                        plan,
                        spec.tools,
                        spec.policy,
                        self.policy_context,
                        approver=spec.approver is not None,
                    )
            except PlanError as exc:
                reasons = exc.reasons
            if reasons:
                if plan_step not in self.rec.rejected:
                    self.emit(
                        PlanRejected(
                            run_id=self.run_id, step=plan_step, attempt=attempt, reasons=reasons
                        )
                    )
                if replans_left <= 0:
                    raise _Stop(self._out_of_replans(plan_step, "; ".join(reasons)))
                replans_left -= 1
                text = spec.prompts.render("plan_rejected", reasons="; ".join(reasons))
                self.messages.append(Message.user(text))
                continue
            if plan_step not in self.rec.accepted:
                self.emit(
                    PlanAccepted(
                        run_id=self.run_id,
                        step=plan_step,
                        attempt=attempt,
                        tasks=plan.to_dicts(),
                        first_step=plan_step + 1,
                    )
                )
                await commit_journal(self.journal)
            lines = await self.execute(plan, plan_step + 1)
            self.step += len(plan.tasks)
            self.messages.append(
                Message.user(spec.prompts.render("join_results", results="\n".join(lines)))
            )
            ids = [t.id for t in plan.tasks]
            while True:  # the joiner: an answer (validated), or a request for a new plan
                join = await self.ask(
                    planned.joiner_model,
                    join_schema(ids, spec.output.schema, grounded=planned.grounded),
                    self.join_system,
                )
                join_step = self.step
                self.messages.append(Message.assistant(join.text))
                try:
                    kind, value = _read_join(join.text, self._values)
                    if kind == "replan":
                        break
                    output = spec.output.validate(_answer_text(value), spec.prompts)
                except (ValueError, PlanError) as exc:
                    error = str(exc)
                    if self.rec.validated.get(join_step, 0) == 0:
                        self.emit(
                            OutputValidated(
                                run_id=self.run_id, step=join_step, ok=False, error=error
                            )
                        )
                    if retries_left <= 0:
                        raise _Stop(
                            Stopped(
                                run_id=self.run_id,
                                step=join_step,
                                reason="output_retries",
                                value=spec.output_retries,
                                maximum=spec.output_retries,
                                message=f"the joiner's answer still invalid after "
                                f"{spec.output_retries} retries: {error}",
                            )
                        ) from None
                    retries_left -= 1
                    self.messages.append(Message.user(error))
                    continue
                self.emit(OutputValidated(run_id=self.run_id, step=join_step, ok=True))
                output_json = spec.output.to_json(output)
                self.emit(
                    FinalOutput(
                        run_id=self.run_id, step=join_step, output=output_json, usage=self.usage
                    )
                )
                self.index_row("final", output_json)
                await commit_journal(self.journal, last=True)
                return RunResult(
                    self.run_id,
                    "final",
                    self.usage,
                    self.step,
                    self.messages,
                    output,
                    child_steps=self.child_steps,
                )
            reason = str(value)
            if replans_left <= 0:
                raise _Stop(self._out_of_replans(self.step, f"the joiner asked: {reason}"))
            replans_left -= 1
            self.messages.append(Message.user(spec.prompts.render("plan_replan", reason=reason)))

    @property
    def join_system(self) -> str:
        return self.spec.prompts.render(
            "join_instructions", instructions=self.spec.instructions
        ).strip()

    def _out_of_replans(self, step: int, last: str) -> Stopped:
        n = self.planned.max_replans
        return Stopped(
            run_id=self.run_id,
            step=step,
            reason="replans",
            value=n,
            maximum=n,
            message=f"no plan could run after {n} re-plans (max_replans={n}); last: {last}",
        )

    async def execute(self, plan: Plan, first_step: int) -> list[str]:
        """Run the plan's tasks, each as soon as its dependencies are done; the joiner's
        lines, in plan order."""
        finished = {t.id: asyncio.Event() for t in plan.tasks}
        values: dict[int, Any] = {}
        failed: dict[int, str] = {}
        lines: dict[int, str] = {}
        stops: list[Stopped] = []
        loops = self.loops
        self._values = values
        self._before_tasks = self.usage
        self._steps_before_tasks = self.model_calls + self.child_steps
        for k in range(len(plan.tasks)):  # resumed: what the tasks' recorded children used
            spent = self.rec.children.pop(first_step + k, None)
            if spent is not None:
                self.usage += spent[0]
                self.child_steps += spent[1]
        agents = [
            first_step + k
            for k, t in enumerate(plan.tasks)
            if (tool := self.spec.tools.get(t.tool)) is not None and tool.takes_context
        ]
        self._shares = {step: (at, len(agents)) for at, step in enumerate(agents)}

        def new_context(step: int, index: int) -> ToolContext[Any]:
            return ToolContext(self.run_id, step, index, self.deps, self.tree)

        async def one(k: int, task: Task) -> None:
            step = first_step + k
            try:
                for d in task.deps:
                    await finished[d].wait()
                blocked = [d for d in task.deps if d in failed]
                if stops or blocked:
                    failed[task.id] = "not run"
                    lines[task.id] = (
                        f"task {task.id} {task.tool}: not run, it needs task "
                        f"{', '.join(map(str, blocked))}, which failed"
                        if blocked
                        else f"task {task.id} {task.tool}: not run, the run stopped"
                    )
                    return
                result = self.rec.results.get(step)
                if result is None:
                    result = await self.run_task(task, step, values, loops, new_context, stops)
                if result is None:
                    failed[task.id] = "stopped"
                    lines[task.id] = f"task {task.id} {task.tool}: not run, the run stopped"
                elif result.is_error:
                    failed[task.id] = result.content
                    lines[task.id] = f"task {task.id} {task.tool} failed: {result.content}"
                else:
                    values[task.id] = value_of(result)
                    lines[task.id] = f"task {task.id} {task.tool}: ${task.id} = {result.content}"
            finally:
                finished[task.id].set()

        try:
            async with asyncio.TaskGroup() as group:
                for k, task in enumerate(plan.tasks):
                    group.create_task(one(k, task))
        except BaseExceptionGroup as failed_group:  # a task raised: the siblings were
            raise failed_group.exceptions[0] from None  # cancelled; the run ends with it
        if stops:
            raise _Stop(min(stops, key=lambda s: s.step))
        return [lines[t.id] for t in plan.tasks]

    async def run_task(
        self,
        task: Task,
        step: int,
        values: dict[int, Any],
        loops: LoopDetector,
        new_context: Callable[[int, int], ToolContext[Any]],
        stops: list[Stopped],
    ) -> ToolResult | None:
        """One task: its references resolved and checked, then the runtime's tool step."""
        tool = self.spec.tools[task.tool]
        call_id = f"task_{task.id}"
        try:
            args = resolve(task.args, values)
            problems = check_resolved(task, tool, args)
            if problems:
                raise PlanError(problems)
        except PlanError as exc:  # never reaches the tool: journaled like an invalid call
            result = ToolResult(call_id, task.tool, f"not run: {exc}", True)
            if step not in self.rec.calls:
                self.emit(
                    ToolCalled(
                        run_id=self.run_id,
                        step=step,
                        index=0,
                        call=ToolCall(call_id, task.tool, task.args),
                        idempotency_key=f"{self.run_id}:{step}:0",
                        effect=tool.effect,
                    )
                )
            self.emit(ToolReturned(run_id=self.run_id, step=step, index=0, result=result))
            return result
        call = ToolCall(call_id, task.tool, args)
        tree = self.tree
        if tree is not None:  # children share what was left when the tasks began
            shares = {0: self._shares[step]} if step in self._shares else None
            # (the tree counts a run's steps as its step number and its children's; a
            # plan's step numbers count its tasks too, so the steps it had used before
            # its tasks, model calls and children's, are given less the task's number)
            used = self._steps_before_tasks - step
            tree.observe(step, self._before_tasks, used, self.started, shares, alongside=True)
        recorded = self.rec.calls.get(step)
        replay = ToolReplay(called={0: recorded}) if recorded is not None else None
        done = await run_tool_step(
            self.spec,
            self.journal,
            step,
            [call],
            loops=loops,
            started=self.started,
            policy_context=self.policy_context,
            new_context=new_context,
            replay=replay,
        )
        if tree is not None and (rolled := tree.take()) is not None:
            self.usage += rolled[0]  # a child's usage and steps roll up into the run's
            self.child_steps += rolled[1]
        if done.stop is not None:
            stops.append(done.stop)
            return None
        if done.pending:
            raise ConfigurationError(
                f"task {task.id} ({task.tool}) waits for a person; a planned run does not "
                "pause for people"
            )
        return done.results[0]


def _read_join(text: str, values: dict[int, Any]) -> tuple[str, Any]:
    """("answer", value) or ("replan", reason) from the joiner's reply; a reference
    answer is replaced by the task's result (`PlanError` if it has none)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f'the reply is not JSON ({exc}); reply {{"answer": ...}}') from None
    if isinstance(data, dict) and "replan" in data:
        return "replan", str(data["replan"])
    if not isinstance(data, dict) or "answer" not in data:
        raise ValueError('reply {"answer": ...} or {"replan": "..."}')
    answer = data["answer"]
    return "answer", resolve(answer, values)


def _answer_text(value: Any) -> str:
    return value if isinstance(value, str) else to_json(value).decode()


def _delegates(spec: RunSpec[Any]) -> bool:
    """Whether a task may start a child run (only a tool given a `ToolContext` can)."""
    return any(t.takes_context for t in spec.tools.values())


def agent_tool(name: str, agent: Agent[Any, Any]) -> Tool:
    """A task that asks another agent: a child run of the planned run (exactly once: a
    resumed plan re-attaches to the child it started, so the call is safe to retry).
    Side-effecting, since the agent may be: the policy must allow it by name."""

    async def ask_agent(input: str, ctx: ToolContext[Any]) -> Any:
        result = await ctx.run_child(agent, input, key="task")
        return result.output

    description = f"Ask the agent {agent.name!r}: {agent.instructions}".strip()
    return Tool(
        ask_agent, name=name, description=description, effect="side_effect", on_doubt="retry"
    )


class PlannedAgent(Generic[OutputT]):
    """An agent answered by plan-and-execute instead of its loop (see the module).

    The agent gives the tools, instructions, output type, policy, budget, store and
    prompts; `planner` and `joiner` (default: the agent's model) write the plan and
    the answer. `max_replans` bounds re-plans (after a rejected plan or a joiner's
    request); `max_tasks` the size of one plan. `agents` adds a task per agent (a child
    run); `grounded` holds the joiner's answer to a task's result (default: when the
    joiner decodes under a grammar).
    """

    def __init__(
        self,
        agent: Agent[Any, OutputT],
        *,
        planner: Model | str | None = None,
        joiner: Model | str | None = None,
        max_replans: int = 2,
        max_tasks: int = 8,
        agents: Mapping[str, Agent[Any, Any]] | None = None,
        grounded: bool | None = None,
    ) -> None:
        if max_replans < 0 or not 1 <= max_tasks <= 64:
            raise ConfigurationError("max_replans must be >= 0 and max_tasks from 1 to 64")
        self.agent = agent
        self.agents = dict(agents or {})
        self._grounded = grounded
        clash = sorted(set(self.agents) & set(agent.tools))
        if clash:
            raise ConfigurationError(f"agents and tools share the names {clash}")
        self._planner = planner
        self._joiner = joiner
        self.max_replans = max_replans
        self.max_tasks = max_tasks
        self._models: dict[str, Model] = {}
        self._spec: RunSpec[OutputT] | None = None  # replay's: the agent's around served tools

    def run_spec(self) -> RunSpec[OutputT]:
        """The agent's definition the planned run uses (tools, policy, output, budget),
        with a task tool for each of `agents`."""
        if self._spec is None:
            self._spec = self.spec_around(self.agent.run_spec())
        return self._spec

    def spec_around(self, spec: RunSpec[OutputT]) -> RunSpec[OutputT]:
        """`spec` with the agent tasks added as tools (a copy; `spec` when none)."""
        if not self.agents:
            return spec
        tools = dict(spec.tools)
        tools.update((name, agent_tool(name, a)) for name, a in self.agents.items())
        return dataclasses.replace(spec, tools=tools)

    def _resolve(self, which: str, given: Model | str | None) -> Model:
        if which not in self._models:
            if given is None:
                self._models[which] = self.agent.model
            elif isinstance(given, str):
                from pilothouse.models.registry import resolve_model

                self._models[which] = resolve_model(given)
            else:
                self._models[which] = given
        return self._models[which]

    @property
    def planner_model(self) -> Model:
        return self._resolve("planner", self._planner)

    @property
    def grounded(self) -> bool:
        """Whether the joiner's answer must be a task's result (a reference): by default
        when the joiner decodes under a grammar (the embedded model)."""
        if self._grounded is not None:
            return self._grounded
        return self.joiner_model.capabilities.grammar

    @property
    def joiner_model(self) -> Model:
        if self._joiner is None:
            return self.planner_model
        return self._resolve("joiner", self._joiner)

    def system_prompt(self, spec: RunSpec[Any]) -> str:
        """The planner's system prompt (the agent's instructions, tools, the plan form)."""
        return spec.prompts.render(
            "plan_instructions",
            instructions=spec.instructions,
            tools=describe_tools(list(spec.tools.values())),
            max_tasks=self.max_tasks,
        ).strip()

    async def run(
        self,
        input: str,
        *,
        run_id: str | None = None,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
        store: Store | None = None,
    ) -> RunResult[OutputT]:
        """Plan, validate, run and join one input; stops are outcomes, errors raise."""
        from pilothouse.agent import new_run_id

        spec = self.run_spec()
        check_deps(spec, deps)
        store = store or self.agent.store
        run_id = run_id or new_run_id()
        lease = RunLease(store, run_id)
        journal = Journal(run_id, store, subscribers, lease=lease)
        system = self.system_prompt(spec)
        drive = _Drive(
            self, spec, journal, input, _Recorded(), RunContext(principal or Principal(), [input])
        )
        drive.deps = deps
        drive.loops = LoopDetector(spec.budget.max_repeats)
        if _delegates(spec):
            drive.tree = ChildRuns(journal, store, run_id, principal, deps, spec.budget)
        drive.messages = [Message.system(system), Message.user(input)]
        drive.reported = 2
        journal.emit(
            RunStarted(
                run_id=run_id,
                agent=spec.agent_name,
                model=self.planner_model.name,
                input=input,
                instructions=system,
                tools=list(spec.tools),
                output_schema=spec.output.schema,
                definition_hash=spec.definition_hash,
                principal=principal.to_dict() if principal is not None else None,
                version=2,
            )
        )
        return await lease.hold(self._guarded(drive, first=True))

    async def resume(
        self,
        run_id: str,
        *,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
        store: Store | None = None,
        settle: Mapping[str, bool | str] | None = None,
        approved_by: str = "",
    ) -> RunResult[OutputT]:
        """Continue a planned run from its journal: recorded replies and task results
        are reused (no completed task runs again); an in-doubt task follows its tool's
        `on_doubt`. A run stopped in doubt (`ToolCallInDoubtError`) continues with
        `settle`, a person's word on its calls by key, as `Agent.resume` takes it: the
        task's result is what they found, and the task is never run again."""
        spec = self.run_spec()
        check_deps(spec, deps)
        store = store or self.agent.store
        info = store.get_run(run_id)
        lease = RunLease(store, run_id)
        lease.acquire()
        try:
            events = store.events(run_id)
            started = events[0] if events else None
            if not isinstance(started, RunStarted):
                raise StoreError(f"run {run_id} has no run_started event: nothing to resume")
            if started.instructions != self.system_prompt(spec) or started.tools != list(
                spec.tools
            ):
                raise ConfigurationError(
                    f"run {run_id} is not a planned run of this agent (its planner prompt or "
                    "tools differ): resume it with the agent or PlannedAgent that started it"
                )
            if events[-1].type in ("final", Stopped.type, "error"):
                raise RunFinishedError(
                    f"run {run_id} already ended ({events[-1].type}); read its journal",
                    run_id=run_id,
                    outcome=info.status,
                )
            acting = Principal.from_dict(started.principal) if started.principal else principal
            recorded = _Recorded.of(events)
            policy_context = RunContext.from_events(events, acting)
            settled = (
                settlement_events(
                    spec,
                    recorded.in_doubt(),
                    run_id,
                    max(recorded.calls, default=0),
                    settle,
                    approved_by,
                    policy_context,
                )
                if settle
                else []
            )
        except BaseException:
            lease.stop()
            raise
        journal = Journal(run_id, store, subscribers, seq=len(events), lease=lease)
        for event in settled:
            journal.emit(event)
            if isinstance(event, ToolReturned):
                recorded.results[event.step] = event.result
        drive = _Drive(
            self,
            spec,
            journal,
            started.input,
            recorded,
            policy_context,
            created=info.created,
        )
        drive.deps = deps
        drive.loops = LoopDetector(spec.budget.max_repeats)
        if _delegates(spec):
            drive.tree = ChildRuns(journal, store, run_id, acting, deps, spec.budget, events)
        drive.messages = started.context()
        drive.reported = len(drive.messages)
        return await lease.hold(self._guarded(drive, first=False))

    async def _guarded(self, drive: _Drive, *, first: bool) -> RunResult[OutputT]:
        """The drive, with the run's end journaled whatever it is."""
        journal = drive.journal
        try:
            drive.index_row("running")
            await commit_journal(journal)  # the run exists on disk before anything runs
            return await drive.drive()
        except _Stop as stop:
            journal.emit(stop.event)
            drive.index_row(stop.event.outcome)
            await commit_journal(journal, last=True)
            return RunResult(
                drive.run_id,
                stop.event.outcome,
                drive.usage,
                drive.step,
                drive.messages,
                None,
                stop.event,
                child_steps=drive.child_steps,
            )
        except ToolCallInDoubtError:
            drive.index_row("in_doubt")  # not an error: resumable once the doubt is settled
            await commit_journal(journal, last=True)
            raise
        except (WriteConflictError, LeaseLostError, SessionBusyError, RunInterrupted):
            raise  # another process drives the run, or the journal cannot be written
        except Exception as exc:
            if isinstance(exc, StoreError) and not isinstance(exc, RunFinishedError):
                raise
            journal.emit(
                ErrorOccurred(
                    run_id=drive.run_id, step=drive.step, kind=type(exc).__name__, message=str(exc)
                )
            )
            drive.index_row("error")
            with contextlib.suppress(StoreError):
                await commit_journal(journal, last=True)
            if not hasattr(exc, "run_id"):
                exc.run_id = drive.run_id  # type: ignore[attr-defined]
            raise
        except BaseException:
            drive.index_row("interrupted")
            with contextlib.suppress(StoreError):
                journal.commit(last=True)
            raise

    def run_sync(self, input: str, **kwargs: Any) -> RunResult[OutputT]:
        """`run` from synchronous code (not from inside a running event loop)."""
        return asyncio.run(self.run(input, **kwargs))
