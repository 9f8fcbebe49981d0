"""A Markdown block to paste into an incident channel or a postmortem.

Text that came from a host, a case file or a knowledge-base folder is escaped
(``md_text``, ``_code``): it cannot break the table, open a tag or leave a
code block.
"""

from __future__ import annotations

from ddx.engine.diagnosis import Diagnosis
from ddx.engine.inference import Weight
from ddx.render.safe import host_title, md_text, printable

__all__ = ["render_markdown"]


def _code(text: str) -> str:
    """``text`` as inline code on one line, with no backtick or ``|`` to end the span or the table cell."""
    return "`" + printable(text).replace("`", "'").replace("|", "¦") + "`"


def _command(text: str) -> str:
    """A command inside a fenced block: one line, with no fence of its own."""
    return printable(text).replace("```", "'''")


def _ws(ws: tuple[Weight, ...], limit: int = 3) -> str:
    if not ws:
        return "–"
    return ", ".join(f"{_code(w.finding)}{'' if w.state.value == 'present' else ' absent'} ({w.decibans:+.0f} dB)"
                     for w in ws[:limit])


def render_markdown(d: Diagnosis, *, top: int = 5) -> str:
    meta = d.meta
    title = md_text(host_title(meta, "incident"))
    lines = [f"### ddx diagnosis: {title}", ""]
    if meta.get("story"):
        lines += [f"> {md_text(' '.join(str(meta['story']).split()))}", ""]
    onset = meta.get("onset") or {}
    if onset.get("time"):
        lines += [f"Trouble began about **{md_text(onset['time'])}**: {md_text(onset.get('basis', ''))}.", ""]
    if d.nothing_wrong:
        lines += ["**Nothing looks wrong**: no symptom was found.", ""]
    lines += ["| # | Cause | Probability | For | Against |", "|---|---|---:|---|---|"]
    for i, h in enumerate(d.hypotheses[:top], 1):
        lines.append(f"| {i} | {md_text(h.name)} ({_code(h.id)}) | {h.probability:.0%} | {_ws(h.support)} | "
                     f"{_ws(h.against)} |")
    lines.append(f"|  | *a cause not in the knowledge base* | {d.unlisted:.0%} |  |  |")
    lines.append("")
    if d.next_checks:
        lines.append("**Next checks**")
        lines.append("")
        for i, a in enumerate(d.next_checks, 1):
            lines.append(f"{i}. **{md_text(a.check.title)}**: tests {', '.join(_code(t) for t in a.tests[:4])} "
                         f"(~{a.check.cost:.0f} s)")
            lines.append("   ```")
            lines += [f"   {_command(cmd)}" for cmd in a.run]
            lines.append("   ```")
            if a.unfilled:
                lines.append(f"   Fill in: {', '.join(_code(f'<{n}>') for n in a.unfilled)} (not found by ddx).")
        lines.append("")
    gaps = d.not_looked_at()
    if gaps:
        lines.append("**Not looked at** (unlike an absent finding, this says nothing either way)")
        lines.append("")
        lines += [f"- {md_text(what)}" + (f" ({', '.join(_code(x) for x in fids[:4])})" if fids else "")
                  for what, fids in gaps]
        lines.append("")
    present = [f.id for f in d.findings if f.state.value == "present"]
    absent = [f.id for f in d.findings if f.state.value == "absent"]
    lines.append(f"<details><summary>Findings: {len(present)} present, {len(absent)} absent</summary>")
    lines.append("")
    lines.append("Present: " + (", ".join(_code(x) for x in present) or "none"))
    lines.append("")
    lines.append("Absent: " + (", ".join(_code(x) for x in absent) or "none"))
    lines.append("</details>")
    return "\n".join(lines) + "\n"
