#!/usr/bin/env python3
"""Accuracy of `ddx drill` scenarios, side by side with threshold alerts on the same faults.

    .venv/bin/python bench/accuracy/run.py [SCENARIO...] [--repeats N] [--budget S] [--write-docs]
    .venv/bin/python bench/accuracy/run.py --from-json bench/accuracy/results.json --write-docs
    .venv/bin/python bench/accuracy/run.py --drill-doc      # only refresh the scenario list in docs/drill.md

For the whole run it starts node_exporter and two Prometheus servers (rules
of bench/data/awesome-prometheus-alerts-node-exporter.yml with
``for:`` as shipped, and at 0s) in a sandbox of their own. Then it runs every
scenario (all registered ones by default) through ``ddx.drill.runner.run_scenario``,
``--repeats`` times with seeds 0..N-1: the clean variants first, then the wild
ones (``--variants``; ``--noise-lead`` and ``--fault-lead`` set the wild
timing). After ddx's diagnosis loop of a clean scenario, a hook waits until the
end of the budget (counted from the injection, as for ddx) and asks each
Prometheus which alerts were pending or firing since the injection; the answer
is stored in the drill result's ``extra``. The report adds the wild variants'
table and the calibration of ddx's probabilities over all runs (Brier score,
reliability table). Before each scenario it empties the kernel log (``dmesg -C``;
``--keep-kernel-log`` to keep it): each scenario stands for a different host, and
the crashes and hardware errors the previous one wrote are not this host's.

Writes every result to ``--out`` (bench/accuracy/results.json) after each
scenario, and with ``--write-docs`` replaces the "Accuracy: ddx drill vs
threshold alerts" section of docs/benchmarks.md and the scenario list of
docs/drill.md. Needs root (the drill does). Run it on a quiet machine: other
drills running at the same time are visible to both ddx and node_exporter
(the run records any it sees).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from alertmap import conditions_named  # noqa: E402
from prometheus import (  # noqa: E402
    VARIANTS,
    MonitorError,
    Monitors,
    alert_timeline,
    summarise_variant,
)
from report import (  # noqa: E402
    ACCURACY_BEGIN,
    ACCURACY_END,
    ACCURACY_HEADING,
    SCENARIOS_BEGIN,
    SCENARIOS_END,
    render_accuracy,
    render_scenarios,
    replace_section,
)

RULES = ROOT / "bench" / "data" / "awesome-prometheus-alerts-node-exporter.yml"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
DRILL_MD = ROOT / "docs" / "drill.md"
SCHEMA = "ddx.bench.accuracy/1"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_hold(mon: Monitors, expected: str) -> Any:
    """The hook run_scenario calls after ddx's diagnosis loop, before clean-up: wait out
    the budget, then ask each Prometheus what it alerted on since the injection."""
    def hold(_stack: Any, started: float, budget: float) -> dict[str, Any]:
        injection = time.time() - (time.monotonic() - started)  # the injection's start, unix time
        settle = 2 * mon.interval + 0.5  # the last evaluation inside the window is stored by then
        delay = started + budget + settle - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        out: dict[str, Any] = {"injection_unix": round(injection, 3), "budget_s": budget, "variants": {}}
        for v in VARIANTS:
            try:
                # from a few evaluations before the injection, to tell alerts already active
                payload = mon.alerts(v, injection - 3 * mon.interval, injection + budget)
                out["variants"][v] = summarise_variant(alert_timeline(payload, injection, conditions_named), expected)
            except MonitorError as exc:
                out["variants"][v] = {"error": str(exc)}
        return out
    return hold


def machine() -> dict[str, Any]:
    ram = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    commit = ""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"nproc": os.cpu_count(), "ram_gib": round(ram, 1), "kernel": os.uname().release,
            "python": sys.version.split()[0], "commit": commit}


def other_drills(own: Path) -> list[str]:
    """Sandboxes of other drills alive right now (they would be seen by ddx and node_exporter)."""
    from ddx.drill.sandbox import _owner_alive, sandboxes

    return [d.name for d, m in sandboxes()
            if d != own and m is not None and m.owner != os.getpid() and _owner_alive(m.owner)]


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def write_docs(data: dict[str, Any] | None) -> None:
    from ddx.drill.scenarios import all_scenarios

    if data is not None:
        text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
        BENCHMARKS_MD.write_text(replace_section(text, render_accuracy(data), ACCURACY_BEGIN, ACCURACY_END,
                                                 heading=ACCURACY_HEADING))
        say(f"wrote the accuracy section of {BENCHMARKS_MD}")
    if DRILL_MD.exists():
        text = DRILL_MD.read_text()
        DRILL_MD.write_text(replace_section(text, render_scenarios(all_scenarios().values()),
                                            SCENARIOS_BEGIN, SCENARIOS_END, heading="## Scenarios"))
        say(f"wrote the scenario list of {DRILL_MD}")


def clear_kernel_log() -> None:
    """Empty the kernel ring buffer: the crashes, OOM kills and hardware errors that the
    previous scenario wrote (its fault, or its noise) belong to another host. The bench
    runs scenarios with host effects on a machine given to it, so the buffer is its own."""
    try:
        subprocess.run(["dmesg", "-C"], check=False, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenarios to run (default: all registered)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per scenario, seeds 0..N-1 (default 1; docs: 3)")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds from the injection, for ddx and alerts")
    ap.add_argument("--interval", type=float, default=1.0, help="Prometheus scrape and evaluation interval (s)")
    ap.add_argument("--warmup", type=float, default=30.0,
                    help="seconds Prometheus collects before the first scenario (rate windows fill; default 30)")
    ap.add_argument("--variants", default="clean,wild", metavar="LIST",
                    help="clean, wild or both (default clean,wild): the clean variants run first, then the wild ones")
    ap.add_argument("--noise-lead", type=float, default=90.0, help="wild: seconds between the noise and the fault")
    ap.add_argument("--fault-lead", type=float, default=90.0, help="wild: seconds between the fault and ddx")
    ap.add_argument("--out", type=Path, default=HERE / "results.json", help="results JSON (default %(default)s)")
    ap.add_argument("--rules", type=Path, default=RULES, help="the alert rules (default: bench/data's baseline)")
    ap.add_argument("--no-tmpfs-relabel", action="store_true",
                    help="leave the drill's tmpfs mounts as tmpfs (the shipped disk rules then skip them)")
    ap.add_argument("--keep-kernel-log", action="store_true",
                    help="do not clear the kernel log (dmesg -C) before each scenario; by default it is cleared, "
                         "as each scenario stands for a different host and the previous one's crashes are not its own")
    ap.add_argument("--write-docs", action="store_true", help="rewrite the accuracy section and docs/drill.md's list")
    ap.add_argument("--from-json", type=Path, metavar="FILE", help="no run: render the docs from saved results")
    ap.add_argument("--drill-doc", action="store_true", help="no run: only refresh docs/drill.md's scenario list")
    args = ap.parse_args(argv)

    if args.drill_doc:
        write_docs(None)
        return 0
    if args.from_json:
        try:
            data = json.loads(args.from_json.read_text())
        except (OSError, ValueError) as exc:
            print(f"run.py: cannot read {args.from_json}: {exc}", file=sys.stderr)
            return 2
        if data.get("schema") != SCHEMA:
            print(f"run.py: {args.from_json} is not a {SCHEMA} results file", file=sys.stderr)
            return 2
        if args.write_docs:
            write_docs(data)
        else:
            print(render_accuracy(data), end="")
        return 0

    from ddx.drill.runner import run_scenario
    from ddx.drill.sandbox import (
        DRILL_ROOT,
        Sandbox,
        SandboxError,
        signals_as_exceptions,
    )
    from ddx.drill.scenarios import all_scenarios
    from ddx.drill.stack import missing_requirements

    scenarios = all_scenarios()
    names = args.scenarios or list(scenarios)
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        print(f"run.py: unknown scenario(s): {', '.join(unknown)}; known: {', '.join(scenarios)}", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.budget <= 0 or args.interval <= 0:
        print("run.py: --repeats, --budget and --interval must be positive", file=sys.stderr)
        return 2
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or any(v not in ("clean", "wild") for v in variants):
        print("run.py: --variants is a list of clean and wild", file=sys.stderr)
        return 2
    from ddx.drill.wild import WildOptions

    wild = WildOptions(noise_lead=args.noise_lead, fault_lead=args.fault_lead)
    missing = missing_requirements()
    if missing:
        print("run.py: the drill cannot run here; missing:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2

    command = ".venv/bin/python " + shlex.join([os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])
    data: dict[str, Any] = {
        "schema": SCHEMA, "command": command, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "budget_s": args.budget, "repeats": args.repeats, "scenarios": names,
        "monitors": {}, "concurrent_drills": [], "elapsed_s": 0.0, "results": [], "variants": variants,
        "wild": {"noise_lead_s": args.noise_lead, "fault_lead_s": args.fault_lead},
    }
    t0 = time.monotonic()
    with signals_as_exceptions():
        try:
            with Sandbox("bench-accuracy") as sb:
                say(f"starting node_exporter and Prometheus ({', '.join(VARIANTS.values())}) in {sb.dir}")
                mon = Monitors(sb, args.rules, interval=args.interval, relabel_tmpfs=not args.no_tmpfs_relabel,
                               drill_root=DRILL_ROOT).start()
                data["monitors"] = {**mon.info, "warmup_s": args.warmup}
                if mon.info["rules_without_metrics"]:
                    say("rules that cannot fire here (metrics absent): " + ", ".join(mon.info["rules_without_metrics"]))
                if args.warmup > 0:
                    say(f"warming up for {args.warmup:g}s (the rules' rate windows fill)")
                    time.sleep(args.warmup)
                plan = [(v, rep, name) for v in variants for rep in range(args.repeats) for name in names]
                for variant, rep, name in plan:
                    s = scenarios[name]
                    others = other_drills(sb.dir)
                    if others:
                        say(f"warning: other drills are running ({', '.join(others)}); results may show cross-talk")
                        data["concurrent_drills"] = sorted(set(data["concurrent_drills"]) | set(others))
                    if not args.keep_kernel_log:
                        clear_kernel_log()
                    if variant == "wild":
                        res = run_scenario(s, seed=rep, budget=args.budget, progress=say, allow_host_effects=True,
                                           wild=wild)
                    else:
                        res = run_scenario(s, seed=rep, budget=args.budget, hold=make_hold(mon, s.expected),
                                           progress=say, allow_host_effects=True)
                    data["results"].append(res.to_dict())
                    data["elapsed_s"] = round(time.monotonic() - t0, 1)
                    write_json(args.out, data)
                    say(_line(res))
                    dead = mon.dead()
                    if dead:  # the comparison is void from here on: stop rather than run on without it
                        raise MonitorError("a monitor died (did something run `ddx drill clean --all`?): "
                                           + "; ".join(dead))
        except KeyboardInterrupt:
            say("interrupted; everything was removed; partial results in " + str(args.out))
            return 130
        except (MonitorError, SandboxError, OSError) as exc:
            print(f"run.py: {exc}", file=sys.stderr)
            if data["results"]:
                print(f"run.py: partial results in {args.out}", file=sys.stderr)
            return 1
    data["elapsed_s"] = round(time.monotonic() - t0, 1)
    write_json(args.out, data)
    say(f"wrote {args.out}")
    if args.write_docs:
        write_docs(data)
    else:
        print(render_accuracy(data), end="")
    return 0


def _line(res: Any) -> str:
    v = res.extra.get("variants", {}) if res.extra else {}
    alerts = "; ".join(f"{VARIANTS[k]}: {', '.join(x.get('fired') or []) or '-'}"
                       + (f" (names cause {x.get('first_naming_s')}s)" if x.get("names_cause") else "")
                       + (f" ERROR {x['error']}" if x.get("error") else "")
                       for k, x in v.items())
    top = ", ".join(f"{i} {p:.0%}" for i, p in res.top3)
    ttc = f"{res.time_to_correct_s:.1f}s" if res.time_to_correct_s is not None else "-"
    return (f"{res.scenario} seed {res.seed}: {'PASS' if res.passed else 'FAIL'} top3 [{top}] correct after {ttc}"
            + (f" error: {res.error.splitlines()[0]}" if res.error else "") + f" | alerts {alerts}")


if __name__ == "__main__":
    sys.exit(main())
