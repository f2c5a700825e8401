"""Reports produced and read back; the `pilothouse eval` command as a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from pilothouse.evals import EvalLog, run_eval
from pilothouse.evals.report import (
    compare,
    html_report,
    markdown_table,
    read_log,
    success_table,
    write_html,
    write_log,
)
from pilothouse_suites import builtin

if TYPE_CHECKING:
    from conftest import CLI

TESTS = Path(__file__).parent.parent


def _render(log: EvalLog) -> str:
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(success_table(log))
    return console.export_text()


async def _log() -> EvalLog:
    return await run_eval(
        builtin.suite, [builtin.oracle_model, builtin.null_model], epochs=2, concurrency=8
    )


async def test_json_log_round_trip(tmp_path: Path) -> None:
    log = await _log()
    path = write_log(log, tmp_path / "e.json")
    back = read_log(path)
    assert back.to_dict() == json.loads(json.dumps(log.to_dict(), default=str))
    data = json.loads(path.read_text())
    assert data["summary"]["builtin:oracle"]["total"]["rate"] == 1.0
    assert data["summary"]["builtin:null"]["total"]["pass_hat_k"]["2"] == 0.0
    sample = data["samples"][0]
    assert sample["events"][0]["type"] == "run_started"
    assert {"scenario", "model", "epoch", "ok", "failure", "latency"} <= set(sample)


async def test_terminal_and_markdown_tables() -> None:
    log = await _log()
    text = _render(log)
    lines = text.splitlines()
    header = next(line for line in lines if "scenario" in line)
    assert header.index("builtin:oracle") < header.index("builtin:null")
    for sc in log.scenarios:
        row = next(line for line in lines if line.strip("│ ").startswith(sc))
        assert re.search(r"100% \(2/2\).*0% \(0/2\)", row), row
    total = next(line for line in lines if "Total" in line)
    assert "100% (20/20)" in total and "0% (0/20)" in total
    md = markdown_table(log)
    assert md.splitlines()[0] == "| scenario | builtin:oracle | builtin:null |"
    assert "| **Total** | **100% (20/20)** | **0% (0/20)** |" in md


async def test_html_report_is_self_contained_with_failure_drilldown(tmp_path: Path) -> None:
    log = await _log()
    page = write_html(log, tmp_path / "r.html").read_text()
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") == 2
    assert "<script src" not in page and "<link" not in page
    assert not re.search(r"(src|href)=\"https?:", page)
    # Every failing sample is there, with its trace described line by line.
    assert page.count("<details>") == len(log.failures()) == 20
    assert "I don&#x27;t know." in page and "run_started" not in page.split("<details>")[0]
    assert "■ final" in page  # trace.describe's line for the final event
    assert "No failing sample" not in page
    clean = EvalLog(
        log.suite, ["builtin:oracle"], log.scenarios, 2, [s for s in log.samples if s.ok]
    )
    assert "No failing sample" in html_report(clean)


async def test_compare_finds_regressions_and_improvements() -> None:
    good = await run_eval(builtin.suite, [builtin.oracle_model], epochs=1)
    bad = await run_eval(builtin.suite, [builtin.null_model], epochs=1)
    regressed, improved, same = compare(good, bad)
    assert len(regressed) == 10 and not improved and not same
    assert regressed[0].model == "builtin:oracle → builtin:null"
    regressed, improved, same = compare(bad, good)
    assert len(improved) == 10 and not regressed
    regressed, improved, same = compare(good, good)
    assert len(same) == 10


def test_cli_eval_view_compare(cli: CLI, tmp_path: Path) -> None:
    run = cli(
        "eval",
        "builtin",
        "--model",
        "builtin:oracle",
        "--model",
        "builtin:null",
        "--epochs",
        "2",
        "--log-dir",
        "logs",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert re.search(r"Total\s*│\s*100% \(20/20\)\s*│\s*0% \(0/20\)", run.stdout), run.stdout
    (log_path,) = (tmp_path / "logs").glob("*.json")
    assert (tmp_path / "logs" / log_path.name.replace(".json", ".html")).exists()
    assert (tmp_path / "logs" / log_path.name.replace(".json", ".journal.db")).exists()
    view = cli("eval", "view", str(log_path), "--failures", cwd=tmp_path)
    assert view.returncode == 0, view.stderr
    assert "100% (20/20)" in view.stdout and "assertion" in view.stdout
    assert "I don't know." in view.stdout

    # A suite given as module:attr, with model strings it registers.
    good = cli(
        "eval",
        "eval_suite:suite",
        "-m",
        "evaltest:good",
        "--epochs",
        "3",
        "--log-dir",
        "a",
        cwd=tmp_path,
    )
    bad = cli(
        "eval",
        "eval_suite:suite",
        "-m",
        "evaltest:bad",
        "--epochs",
        "3",
        "--log-dir",
        "b",
        cwd=tmp_path,
    )
    assert good.returncode == 0 and bad.returncode == 0, good.stderr + bad.stderr
    assert re.search(r"two_plus_two\s*│\s*100% \(3/3\)", good.stdout), good.stdout
    assert re.search(r"two_plus_two\s*│\s*0% \(0/3\)", bad.stdout), bad.stdout
    (a,) = (tmp_path / "a").glob("*.json")
    (b,) = (tmp_path / "b").glob("*.json")
    cmp = cli("eval", "compare", str(a), str(b), cwd=tmp_path)
    assert cmp.returncode == 0, cmp.stderr
    assert re.search(r"regressed\s*│\s*two_plus_two", cmp.stdout), cmp.stdout
    assert "1 regressed, 0 improved, 1 unchanged" in cmp.stdout


def test_cli_eval_errors(cli: CLI, tmp_path: Path) -> None:
    r = cli("eval", "nosuch.module:suite", "--model", "builtin:null", cwd=tmp_path)
    assert r.returncode == 1 and "cannot import" in r.stderr
    r = cli("eval", "builtin", cwd=tmp_path)
    assert r.returncode == 1 and "--model" in r.stderr
    r = cli("eval", "builtin", "--model", "nosuch:x", cwd=tmp_path)
    assert r.returncode == 1 and "unknown model" in r.stderr
    r = cli("eval", "view", "missing.json", cwd=tmp_path)
    assert r.returncode == 1 and "no evaluation log" in r.stderr
    r = cli("eval", "compare", "one.json", cwd=tmp_path)
    assert r.returncode == 1 and "LOG_A LOG_B" in r.stderr


def test_readme_evaluation_example_runs(tmp_path: Path) -> None:
    readme = (TESTS.parent / "README.md").read_text()
    block = re.search(r"## Evaluation\n.*?```python\n(.*?)```", readme, re.S)
    assert block, "README lost its evaluation example"
    script = tmp_path / "example.py"
    script.write_text(block.group(1))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1.0"


def test_unknown_event_types_still_display() -> None:
    from pilothouse.evals.report import describe_event

    line = describe_event({"type": "parse_failed", "run_id": "r", "seq": 3, "text": "{oops"})
    assert line.startswith("parse_failed") and "{oops" in line
