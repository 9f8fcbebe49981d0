"""The terminal view: readable at a glance, colour only on a TTY.

Every string that came from a host, a case file or a knowledge-base folder
goes through ``printable`` before it is written (``ddx.render.safe``)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping

from ddx.engine.diagnosis import LIKELY, Diagnosis, Hypothesis
from ddx.engine.inference import Weight
from ddx.host.redact import redact_text
from ddx.model import Finding
from ddx.render.safe import host_title, printable

__all__ = ["clip", "render_terminal", "use_colour"]

NBSP = "\u00a0"
BAR = 20
SHOWN = 5
WIDTH = 100


class _Style:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text


def use_colour(stream: object) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _bar(p: float) -> str:
    n = int(round(p * BAR))
    return "█" * n + "░" * (BAR - n)


def _pct(p: float) -> str:
    return f"{p * 100:5.1f}%" if p < 0.995 else " >99%"


def _weights(ws: tuple[Weight, ...], limit: int = 4) -> str:
    shown = [f"{printable(w.finding)}{'' if w.state.value == 'present' else ' (absent)'} {_db(w.decibans)}"
             for w in ws[:limit]]
    more = len(ws) - limit
    # non-breaking spaces keep "finding +6 dB" on one line when wrapped
    return ", ".join(x.replace(" ", NBSP) for x in shown) + (f", +{more} more" if more > 0 else "")


def _db(x: float) -> str:
    return f"{x:+.0f} dB" if abs(x) >= 0.95 else f"{x:+.1f} dB"


def _wrap(text: str, first: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=first, subsequent_indent=" " * len(first)).replace(NBSP, " ")


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _evidence_lines(h: Hypothesis, by_id: Mapping[str, Finding], indent: str, shown: set[str]) -> list[str]:
    """The measured evidence behind the strongest supporting findings, each finding once per report."""
    lines = []
    for w in h.support[:3]:
        f = by_id.get(w.finding)
        if not f or not f.evidence or f.id in shown:
            continue
        shown.add(f.id)
        ev = f.evidence[0]
        src = f" [{printable(ev.source)}]" if ev.source and ev.source not in ev.summary else ""
        lines.append(clip(f"{indent}· {printable(w.finding)}: {printable(ev.summary)}{src}", WIDTH))
        for sample in ev.samples[:1]:
            lines.append(clip(f"{indent}    {printable(sample.strip())}", WIDTH))
        if f.note:
            lines.append(clip(f"{indent}    (counts {f.strength:.0%}: {printable(f.note)})", WIDTH))
    return lines


def render_terminal(d: Diagnosis, *, colour: bool = False, top: int = SHOWN) -> str:
    s = _Style(colour)
    out: list[str] = []
    meta = d.meta
    title = printable(host_title(meta))
    out.append(s(f"ddx diagnosis{': ' + title if title else ''}", "1"))
    present = sum(1 for f in d.findings if f.state.value == "present")
    absent = len(d.findings) - present
    where = printable(meta.get("case_file") or meta.get("host") or "")
    out.append(f"{present} findings present, {absent} absent" + (f" · {where}" if where else ""))
    onset = meta.get("onset") or {}
    if onset.get("time"):
        state = "still going on" if onset.get("ongoing") else "not seen at the time of looking"
        out.append(clip(f"trouble began about {printable(onset['time'])} ({state}): {printable(onset.get('basis', ''))}",
                        WIDTH))
    for probe in meta.get("probes", []):
        if probe.get("status") == "ok" and probe.get("reason"):
            reason = printable(redact_text(str(probe["reason"])))
            out.append(s(clip(f"  note from probe {printable(probe['name'])}: {reason}", WIDTH), "2"))
    gaps = d.not_looked_at()
    if gaps:
        out.append(s("Not looked at (its findings stay unknown or count less, unlike \"looked, not there\"):", "33"))
        for what, fids in gaps[:6]:
            tail = f" [{printable(', '.join(fids[:3]))}{' …' if len(fids) > 3 else ''}]" if fids else ""
            out.append(s(clip(f"  - {printable(what)}{tail}", WIDTH), "33"))
        if len(gaps) > 6:
            out.append(s(f"  - and {len(gaps) - 6} more (see --json)", "33"))
    out.append("")
    if d.nothing_wrong:
        unread = [printable(p["name"]) for p in meta.get("probes", []) if p.get("status") in ("failed", "timeout", "denied")]
        caveat = f" (among what could be read: {', '.join(unread)} could not run)" if unread else ""
        out.append(s(f"Nothing looks wrong: no symptom was found{caveat}.", "32;1"))
        out.append("No cause reaches 50%; the ranking below only says what would be least surprising.")
        out.append("")
    elif d.hypotheses and d.hypotheses[0].probability <= LIKELY:
        out.append(s("No single cause stands out yet: do the next checks below.", "33;1"))
        out.append("")
    out.append(s("Most likely causes", "1"))
    by_id = {f.id: f for f in d.findings}
    shown: set[str] = set()
    for i, h in enumerate(d.hypotheses[:top], 1):
        code = "31" if h.probability > LIKELY else "33" if h.probability > 0.2 else "2"
        name = clip(printable(h.name), 34)
        out.append(f"{i:>2}. {s(f'{name:<35}', '1')} {s(_bar(h.probability), code)} {_pct(h.probability)}  "
                   f"{s(printable(h.id), '2')}")
        if h.support:
            out.append(_wrap(_weights(h.support), "      for:     "))
        if h.against:
            out.append(_wrap(_weights(h.against), "      against: "))
        out.extend(_evidence_lines(h, by_id, "      ", shown))
    label = f"{'a cause not in the knowledge base':<35}"
    out.append(f"    {s(label, '2')} {s(_bar(d.unlisted), '2')} {_pct(d.unlisted)}")
    out.append("")
    if d.next_checks:
        out.append(s("Next checks (most information per minute first)", "1"))
        for i, a in enumerate(d.next_checks, 1):
            c = a.check
            tests = printable(", ".join(a.tests[:4])) + (" …" if len(a.tests) > 4 else "")
            auto = ", read-only" if c.auto else ""
            out.append(f"{i:>2}. {s(printable(c.title), '1')}")
            why = " · separates the two leading causes" if a.purpose == "separate" else (
                " · confirms the leading cause" if a.purpose == "confirm" else "")
            out.append(f"      tests {tests} · ~{c.cost:.0f} s{auto} · {a.gain:.2f} bits{why}")
            for cmd in a.run:
                out.append(s(f"      $ {printable(cmd)}", "36"))
            if a.unfilled:
                out.append(s(f"      fill in: {', '.join(f'<{printable(n)}>' for n in a.unfilled)} (ddx did not find them)",
                             "2"))
    return "\n".join(out) + "\n"
