"""Run a scenario: build the stack, wait for health, inject, diagnose until right, clean up.

ddx is run as a whole process (``python -m ddx diagnose --json``), as an
on-call engineer would run it, against the live host. In the clean variant it
gets the stack's ``ddx.toml`` and is run again and again from the moment of
injection until its top cause is the expected one or the time budget is spent;
the time to a correct top-1 is measured from the start of the injection to the
end of the first run that got it right. In the wild variant (``ddx.drill.wild``)
it gets no configuration and runs once, minutes after the fault, on a stack
with ordinary noise around it: what a person running it would see. Each run's
CPU time and peak RSS come from ``wait4`` on that process alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ddx.drill.sandbox import Sandbox, SandboxError, signals_as_exceptions
from ddx.drill.scenarios import Scenario
from ddx.drill.stack import Stack, StackOptions
from ddx.drill.wild import WildOptions, ddx_argv, make_noise
from ddx.drill.wild import prepare as wild_prepare

__all__ = ["DiagnoseRun", "DrillResult", "diagnose_once", "run_scenario"]

HEALTHY_RUNS = 3  # the control is diagnosed this many times; none may rank a cause above 50%


@dataclass
class DiagnoseRun:
    at_s: float  # end of the run, seconds after injection began
    wall_s: float
    cpu_s: float
    rss_mib: float
    status: str
    top: list[tuple[str, float]]
    next_check: dict[str, Any] | None
    error: str = ""
    probs: dict[str, float] = field(default_factory=dict)  # every cause's probability (calibration)
    unlisted: float = 0.0  # "a cause not in the knowledge base"
    present: dict[str, float] = field(default_factory=dict)  # the findings present, with their strengths
    onset: str = ""  # what ddx took for the onset (a weak result is explained by these two)


@dataclass
class DrillResult:
    scenario: str
    expected: str
    seed: int
    wild: bool = False
    top3: list[tuple[str, float]] = field(default_factory=list)
    top1_ok: bool = False
    top3_ok: bool = False
    probability: float = 0.0  # of the expected cause (healthy control: of the top cause)
    time_to_correct_s: float | None = None
    next_check: dict[str, Any] | None = None
    runs: list[DiagnoseRun] = field(default_factory=list)
    inject_s: float = 0.0
    setup_s: float = 0.0
    error: str = ""
    cleanup_problems: list[str] = field(default_factory=list)
    sandbox: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the alert comparison of bench/accuracy

    @property
    def passed(self) -> bool:
        return not self.error and self.top1_ok

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        d["top3"] = [{"id": i, "probability": p} for i, p in self.top3]
        for r in d["runs"]:
            r["top"] = [{"id": i, "probability": p} for i, p in r["top"]]
        return d


def diagnose_once(config: Path | None, started: float, timeout: float = 90.0, *, argv: list[str] | None = None,
                  cwd: Path | None = None) -> DiagnoseRun:
    """One whole `ddx diagnose --json` process (``argv`` when given: the wild variant's,
    with no configuration); its own CPU time and peak RSS (wait4)."""
    if argv is None:
        argv = [sys.executable, "-m", "ddx", "diagnose", "--json"] + (["--config", str(config)] if config else [])
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _pid, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    cpu, rss = ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0
    at = time.monotonic() - started
    if p.returncode != 0:
        return DiagnoseRun(at, wall, cpu, rss, "error", [], None,
                           error=f"ddx diagnose exited {p.returncode}: {stderr.decode(errors='replace').strip()[-400:]}")
    data = json.loads(stdout)
    top = [(h["id"], h["probability"]) for h in data["hypotheses"][:3]]
    nxt = data["next_checks"][0] if data.get("next_checks") else None
    check = {"id": nxt["id"], "title": nxt["title"], "command": nxt["command"], "purpose": nxt.get("purpose", "")} \
        if nxt else None
    probs = {h["id"]: h["probability"] for h in data["hypotheses"]}
    present = {f["id"]: float(f.get("strength", 1.0)) for f in data.get("findings", []) if f.get("state") == "present"}
    onset = data.get("onset") or {}
    return DiagnoseRun(at, wall, cpu, rss, data.get("status", ""), top, check, probs=probs,
                       unlisted=float(data.get("unexplained", {}).get("probability", 0.0)), present=present,
                       onset=f"{onset.get('time', '')} {onset.get('basis', '')}".strip())


def run_scenario(scenario: Scenario, *, seed: int = 0, budget: float = 30.0, keep: bool = False,
                 hold: Callable[[Stack, float, float], dict[str, Any]] | None = None,
                 progress: Callable[[str], None] | None = None, allow_host_effects: bool = False,
                 wild: WildOptions | None = None) -> DrillResult:
    """Build, break, diagnose and clean up one scenario (its wild variant with ``wild``).
    Never raises for a failed drill: the error is in the result (Ctrl-C still
    propagates, after the clean-up)."""
    say = progress or (lambda _m: None)
    res = DrillResult(scenario.name, scenario.expected, seed, wild=wild is not None)
    if scenario.host_effects and not allow_host_effects:
        res.error = f"not run: it {scenario.host_effects}; allow it with --allow-host-effects"
        return res
    missing = scenario.needs() if scenario.needs else []
    if missing:
        res.error = "not run: missing " + "; ".join(missing)
        return res
    with signals_as_exceptions():
        sb: Sandbox | None = None
        try:
            sb = Sandbox(scenario.name + ("-wild" if wild else ""))
            res.sandbox = str(sb.dir)
            opts = StackOptions()
            if scenario.prepare:
                scenario.prepare(opts)
            if wild:
                wild_prepare(opts)
                opts.ddx_config = False
            t0 = time.monotonic()
            say(f"{scenario.name}: starting the stack in {sb.dir}")
            stack = Stack(sb, opts, seed=seed).start()
            if scenario.config and not wild:
                stack.write_ddx_config(scenario.config)
            res.setup_s = time.monotonic() - t0
            binds: list[tuple[str, str]] = []
            if wild:
                say(f"{scenario.name}: healthy after {res.setup_s:.1f}s; noise now, the fault in {wild.noise_lead:g}s")
                binds = make_noise(stack, wild, time.time() + wild.noise_lead, allow_host_effects)
                time.sleep(wild.noise_lead)
            else:
                say(f"{scenario.name}: healthy after {res.setup_s:.1f}s; injecting the fault")
            started = time.monotonic()
            scenario.inject(stack)
            res.inject_s = time.monotonic() - started
            if wild:
                wait = started + wild.fault_lead - time.monotonic()
                say(f"{scenario.name}: fault in place; ddx looks in {max(0.0, wait):.0f}s")
                if wait > 0:
                    time.sleep(wait)
                _diagnose_wild(res, stack, scenario, started, binds, say)
            else:
                _diagnose_until(res, stack, scenario, started, budget, say)
            if hold is not None:
                res.extra = hold(stack, started, budget)
        except KeyboardInterrupt:
            res.error = "interrupted"
            raise
        except (SandboxError, OSError, subprocess.SubprocessError, ValueError) as exc:
            res.error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a scenario's bug must not leave the sandbox behind
            res.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        finally:
            if sb is not None:
                if keep:
                    say(f"{scenario.name}: kept the sandbox {sb.dir}; remove it with `ddx drill clean`")
                else:
                    res.cleanup_problems = sb.close()
    return res


def _diagnose_wild(res: DrillResult, stack: Stack, scenario: Scenario, started: float,
                   binds: list[tuple[str, str]], say: Callable[[str], None]) -> None:
    """The wild variant: ddx with no configuration, as a person would run it, once (the
    healthy control three times); the runs are judged as they come, no retry until right."""
    argv = ddx_argv(binds, "diagnose", "--json")
    runs = HEALTHY_RUNS if not scenario.expected else 1
    for _ in range(runs):
        run = diagnose_once(None, started, argv=argv, cwd=stack.dir)
        res.runs.append(run)
        if run.error:
            res.error = run.error
            return
        say(f"{scenario.name}: {run.at_s:5.1f}s  " + ", ".join(f"{i} {p:.0%}" for i, p in run.top))
    _judge(res, scenario)
    if res.top1_ok and scenario.expected:
        res.time_to_correct_s = res.runs[0].at_s


def _judge(res: DrillResult, scenario: Scenario) -> None:
    final = res.runs[-1]
    res.top3 = final.top
    res.next_check = final.next_check
    if not scenario.expected:
        worst = max((p for r in res.runs for _i, p in r.top[:1]), default=0.0)
        res.probability = worst
        res.top1_ok = res.top3_ok = worst <= 0.5
    else:
        ids = [i for i, _p in final.top]
        res.top1_ok = bool(ids) and ids[0] == scenario.expected
        res.top3_ok = scenario.expected in ids
        res.probability = dict(final.top).get(scenario.expected, 0.0)


def _diagnose_until(res: DrillResult, stack: Stack, scenario: Scenario, started: float, budget: float,
                    say: Callable[[str], None]) -> None:
    cfg = stack.dir / "ddx.toml"
    healthy = not scenario.expected
    while True:
        run = diagnose_once(cfg, started)
        res.runs.append(run)
        if run.error:
            res.error = run.error
            return
        say(f"{scenario.name}: {run.at_s:5.1f}s  " + ", ".join(f"{i} {p:.0%}" for i, p in run.top))
        if healthy:
            if len(res.runs) >= HEALTHY_RUNS:
                break
        elif run.top and run.top[0][0] == scenario.expected:
            res.time_to_correct_s = run.at_s
            break
        if time.monotonic() - started > budget:
            break
    _judge(res, scenario)
