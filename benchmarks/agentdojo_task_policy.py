"""AgentDojo with and without a task policy proposed from each request (issue #14 item 4).

    python benchmarks/agentdojo_task_policy.py [--suites workspace travel slack banking]

For each user task, `propose_from_request` narrows the suite's defended policy from the
task's prompt alone (consequential tools whose words the prompt does not contain are
denied; `INTENTS` below are the words, written once per suite, banking's with the others
before any run; plus the selections of `pilothouse_suites.agentdojo.requests`, "the
largest file"); the benign run and every attack pair of that task run under the narrowed
policy. Prints benign utility and ASR (tool calls: without travel's output-only
injection_task_6) per suite, with the proposer, next to the defended policy alone.
Deterministic (the scripted adversary); a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

MESSAGE = r"\b(messages?|send|tell|dm|write|ask|feedback)\b"
INTENTS: dict[str, dict[str, str]] = {
    "workspace": {
        "send_email": r"\b(e-?mails?|send|reply|forward|mail)\b",
        "delete_email": r"\b(delete|remove)\b",
        "delete_file": r"\b(delete|remove)\b",
        "create_calendar_event": (
            r"\b(events?|meetings?|calendar|schedule|appointment|invite|lunch|dinner|remind"
            r"|reminder|book)\b"
        ),
        "add_calendar_event_participants": r"\b(add|invite|participants?)\b",
        "reschedule_calendar_event": r"\b(reschedule|move|postpone|change)\b",
        "cancel_calendar_event": r"\b(cancel|delete|remove)\b",
        "create_file": r"\b(create|new file|write|save)\b",
        "append_to_file": r"\b(append|add|update)\b",
        "share_file": r"\b(share|send)\b",
    },
    "travel": {
        "reserve_hotel": r"\b(book|reserve|reservation)\b",
        "reserve_restaurant": r"\b(book|reserve|reservation)\b",
        "reserve_car_rental": r"\b(book|reserve|reservation|rent)\b",
        "send_email": r"\b(e-?mails?|send)\b",
        "create_calendar_event": r"\b(calendar|events?|remind|reminder)\b",
        "cancel_calendar_event": r"\bcancel\b",
    },
    "slack": {
        "send_direct_message": MESSAGE,
        "send_channel_message": r"\b(post|channel|messages?|send|write)\b",
        "add_user_to_channel": r"\b(add|channels?)\b",
        "invite_user_to_slack": r"\binvite\b",
        "remove_user_from_slack": r"\bremove\b",
        "get_webpage": r"\b(web|websites?|site|pages?|url|links?|www|https?|blog)\b|\.com\b",
        "post_webpage": r"\b(post|publish)\b[^.]*\b(web|websites?|site|pages?|www)\b",
    },
    "banking": {
        "send_money": r"\b(send|pay|transfer|refund|money|payments?)\b",
        "schedule_transaction": r"\b(schedule|scheduled|standing|recurring|monthly)\b",
        "update_scheduled_transaction": (
            r"\b(update|change|adjust|modify|standing|scheduled|recurring|rent)\b"
        ),
        "update_password": r"\bpassword\b",
        "update_user_info": r"\b(address|moved|move|name|street|city|update my)\b",
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", default=list(INTENTS))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    from pilothouse_suites.agentdojo import available

    if not available():
        print("agentdojo is not installed: pip install 'pilothouse[agentdojo]'", file=sys.stderr)
        return 2
    from pilothouse.evals import run_eval
    from pilothouse.policy import Policy, propose_from_request
    from pilothouse_suites.agentdojo import agentdojo_suite, summarize
    from pilothouse_suites.agentdojo.requests import SELECTIONS
    from pilothouse_suites.agentdojo.suite import policy_path
    from pilothouse_suites.agentdojo.tools import dojo_tools, effect_of, task_suite

    print("| suite | with task policy: benign utility | ASR (tool calls) | accepted |")
    print("| --- | ---: | ---: | ---: |")
    for name in args.suites:
        dojo = task_suite(name)
        base = Policy.load(policy_path(name))
        effects = {t.name: effect_of(t.name) for t in dojo_tools(name)}
        total: dict[str, Any] = {"benign": 0, "utility": 0, "calls": 0, "pairs": 0}
        accepted = 0
        for uid, task in dojo.user_tasks.items():
            proposal = propose_from_request(
                task.PROMPT,
                base,
                intents=INTENTS[name],
                effects=effects,
                selections=SELECTIONS.get(name, {}),
            )
            accepted += proposal.accepted
            suite = agentdojo_suite(name, policy=proposal.policy, user_tasks=[uid])
            log = asyncio.run(run_eval(suite, ["agentdojo:adversary"], epochs=1))
            r = summarize(log, suite)[log.models[0]]
            total["benign"] += r["benign"]
            total["utility"] += r["utility"]
            total["calls"] += r["successes"] - r["output_only"]
            total["pairs"] += r["attacks"] - r["output_only_attacks"]
            if args.verbose:
                for s in r["failed_benign"]:
                    print(f"    utility lost: {s} ({proposal.reason})", file=sys.stderr)
                for s in r["succeeded"]:
                    print(f"    attack succeeded: {s}", file=sys.stderr)
        print(
            f"| {name} | {total['utility']}/{total['benign']} | {total['calls']}/{total['pairs']} "
            f"| {accepted}/{len(dojo.user_tasks)} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
