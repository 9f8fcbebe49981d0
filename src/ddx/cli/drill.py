"""`ddx drill`: break a sandbox web stack for real and see what ddx makes of it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ddx.cli._common import add_command, positive_seconds_arg, seconds_arg
from ddx.errors import UsageError

DESCRIPTION = """\
Game day in a sandbox. `ddx drill run` builds a small web stack on loopback from
Debian packages (nginx in front of a gunicorn app, memcached and PostgreSQL
behind it, a load generator sending ordinary traffic), waits until it is
healthy, injects one real fault, and runs `ddx diagnose` against this host until
ddx names the expected cause or the time budget runs out. It reports ddx's top
three, whether it was right, the time from injection to a correct answer and
the next check ddx proposed, then removes everything it created: processes,
mounts, cgroups, files; also on Ctrl-C. Needs root.

The drill touches only what it creates. A scenario that must leave a trace
outside its sandbox (hardware-fault writes to the kernel log) runs only with
--allow-host-effects.
"""

EXAMPLES = """\
  ddx drill list                             the scenarios and what each breaks
  ddx drill run disk-full                    one scenario
  ddx drill run disk-full healthy --json     several, as JSON
  ddx drill run all --allow-host-effects     every scenario
  ddx drill run process-leak --keep          leave the broken stack for inspection
  ddx drill run disk-full --wild             the same fault on a stack that looks like a real host
  ddx drill clean                            remove sandboxes left by --keep or a crash
  ddx drill clean process-leak-ab12cd34      remove one of them
"""


def register(sub: Any) -> None:
    p = add_command(sub, "drill", help="inject real faults into a sandbox stack and score the diagnosis",
                    description=DESCRIPTION, examples=EXAMPLES, func=run)
    p.add_argument("action", choices=("list", "run", "clean"), help="list the scenarios, run some, or clean up")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenario names for `run` ('all' for every one); "
                   "sandbox folders for `clean` (default: every one whose drill has ended)")
    p.add_argument("--keep", action="store_true", help="leave the broken stack running for inspection")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--budget", type=positive_seconds_arg, default=30.0, metavar="S",
                   help="seconds after injection ddx has to get it right (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of the load generator's randomness")
    p.add_argument("--allow-host-effects", action="store_true",
                   help="also run scenarios that leave traces outside the sandbox (the kernel log)")
    p.add_argument("--wild", action="store_true",
                   help="the wild variant: no ddx.toml, the app's log opened per write, ordinary noise (old package "
                        "installs; with --allow-host-effects an unrelated crash and a kernel error line), and ddx "
                        "run once, minutes after the fault (see docs/drill.md)")
    p.add_argument("--noise-lead", type=seconds_arg, default=90.0, metavar="S",
                   help="with --wild: seconds between the noise and the fault (default 90)")
    p.add_argument("--fault-lead", type=seconds_arg, default=90.0, metavar="S",
                   help="with --wild: seconds between the fault and ddx's diagnosis (default 90)")
    p.add_argument("--all", action="store_true", dest="clean_all",
                   help="with clean: also sandboxes whose drill is still running")


def run(args: argparse.Namespace) -> int:
    from ddx.drill.scenarios import all_scenarios

    scenarios = all_scenarios()
    if args.action == "list":
        return _list(scenarios, args.json)
    if args.action == "clean":
        return _clean(args.clean_all, args.scenarios)
    names = list(scenarios) if args.scenarios == ["all"] else args.scenarios
    if not names:
        raise UsageError("ddx drill run: name at least one scenario (see `ddx drill list`), or 'all'")
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        raise UsageError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(scenarios)}")
    wild = None
    if args.wild:
        from ddx.drill.wild import WildOptions

        if not (0 <= args.noise_lead <= 3600 and 0 <= args.fault_lead <= 3600):
            raise UsageError("--noise-lead and --fault-lead must be between 0 and 3600 seconds")
        wild = WildOptions(noise_lead=args.noise_lead, fault_lead=args.fault_lead)
    from ddx.drill.runner import run_scenario
    from ddx.drill.stack import missing_requirements

    missing = missing_requirements()
    if missing:
        raise UsageError("ddx drill cannot build its stack on this host; missing:\n  " + "\n  ".join(missing))
    results = []
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        for n in names:
            results.append(run_scenario(scenarios[n], seed=args.seed, budget=args.budget, keep=args.keep,
                                        progress=say, allow_host_effects=args.allow_host_effects, wild=wild))
            if not args.json:
                print(_render_one(results[-1]), flush=True)
    except KeyboardInterrupt:
        print("ddx drill: interrupted; the sandbox was removed", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps({"schema": "ddx.drill/1", "results": [r.to_dict() for r in results]}, indent=2))
    else:
        print(_render_summary(results))
    return 0 if all(r.passed for r in results) else 1


def _list(scenarios: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps([{"name": s.name, "expected": s.expected or None, "summary": s.summary,
                           "host_effects": s.host_effects or None} for s in scenarios.values()], indent=2))
        return 0
    width = max(len(n) for n in scenarios)
    for s in scenarios.values():
        flag = "  [host effects: " + s.host_effects + "]" if s.host_effects else ""
        print(f"{s.name:<{width}}  expects {s.expected or '(nothing above 50%)'}\n{'':<{width}}  {s.summary}{flag}")
    return 0


def _clean(include_live: bool, only: list[str]) -> int:
    from ddx.drill.sandbox import DRILL_ROOT, SandboxError, clean_stale

    try:
        done = clean_stale(include_live=include_live or bool(only), only=only)
    except SandboxError as e:
        raise UsageError(str(e)) from None
    if not done:
        print(f"nothing to clean under {DRILL_ROOT}")
    bad = 0
    for folder, problems in done:
        print(f"removed {folder}" if not problems else f"{folder}: " + "; ".join(problems))
        bad += bool(problems)
    return 1 if bad else 0


def _render_one(r: Any) -> str:
    lines = []
    if r.error:
        lines.append(f"{r.scenario}: ERROR {r.error}")
        if not r.runs:
            return "\n".join(lines)
    verdict = "PASS" if r.passed else "FAIL"
    expected = r.expected or "nothing above 50%"
    lines.append(f"{r.scenario}: {verdict}  expected {expected}")
    for i, (cid, p) in enumerate(r.top3, 1):
        mark = " <- expected" if cid == r.expected else ""
        lines.append(f"  {i}. {cid:<28} {p:6.1%}{mark}")
    if r.wild and r.runs:
        lines.append(f"  wild: ddx ran {r.runs[0].at_s:.0f}s after the injection, with no configuration")
    elif r.time_to_correct_s is not None:
        lines.append(f"  correct top-1 {r.time_to_correct_s:.1f}s after injection ({len(r.runs)} diagnosis run(s))")
    elif r.expected:
        lines.append(f"  no correct top-1 within the budget ({len(r.runs)} diagnosis run(s))")
    if r.next_check:
        lines.append(f"  next check: {r.next_check['title']}")
        for cmd in r.next_check["command"].splitlines():
            lines.append(f"    $ {cmd}")
    if r.cleanup_problems:
        lines.append("  clean-up problems: " + "; ".join(r.cleanup_problems))
    return "\n".join(lines)


def _render_summary(results: list[Any]) -> str:
    scored = [r for r in results if r.runs]
    top1 = sum(r.top1_ok for r in scored)
    top3 = sum(r.top3_ok for r in scored)
    times = sorted(r.time_to_correct_s for r in scored if r.time_to_correct_s is not None)
    median = f"{times[len(times) // 2]:.1f}s" if times else "n/a"
    skipped = len(results) - len(scored)
    tail = f", {skipped} not run" if skipped else ""
    return (f"\n{len(scored)} scenario(s): top-1 right {top1}/{len(scored)}, top-3 {top3}/{len(scored)}, "
            f"median time to a correct top-1 {median}{tail}")
