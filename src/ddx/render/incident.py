"""Incidents as text: the list, one incident, and a postmortem draft in Markdown.

Everything here reads the stored records (``ddx.watch.store``): the incident,
its timeline, each diagnosis (the JSON ``ddx diagnose --json`` prints), its
alerts and notifications. Strings that came from a host are untrusted: shown
through ``printable`` in the terminal and ``md_text``/code spans in Markdown.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ddx.render.safe import md_text, printable
from ddx.watch.store import Event, Incident

__all__ = ["incident_dict", "render_incident", "render_list", "render_postmortem"]


def _t(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)) if at is not None else "-"


def _took(inc: Incident) -> str:
    from ddx.units import duration

    end = inc.resolved_at if inc.resolved_at is not None else time.time()
    return duration(max(0.0, end - inc.opened_at))


def _cause(inc: Incident) -> str:
    if inc.cause is None:
        return "no cause stands out" if inc.diagnosed else "not diagnosed yet"
    p = f" {inc.probability:.0%}" if inc.probability is not None else ""
    return f"{inc.cause}{p}"


def incident_dict(inc: Incident, events: Sequence[Event], diagnoses: Sequence[tuple[float, Mapping[str, Any]]],
                  alerts: Sequence[Mapping[str, Any]] = (), notifications: Sequence[Mapping[str, Any]] = ()
                  ) -> dict[str, Any]:
    """One incident with everything recorded for it (``ddx incident show --json``)."""
    return {
        **inc.to_dict(),
        "timeline": [e.to_dict() for e in events],
        "diagnoses": [{"at": _iso(at), "report": dict(r)} for at, r in diagnoses],
        "alerts": [dict(a) for a in alerts],
        "notifications": [dict(n) for n in notifications],
    }


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def render_list(incidents: Sequence[Incident]) -> str:
    if not incidents:
        return "No incidents.\n"
    rows = [("ID", "STATUS", "OPENED", "FOR", "HOST", "LEADING CAUSE", "TITLE")]
    for inc in incidents:
        rows.append((inc.id, inc.status, _t(inc.opened_at)[:16], _took(inc), printable(inc.host)[:24],
                     printable(_cause(inc)), printable(inc.title)[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] + "\n" for r in rows)


def render_incident(inc: Incident, events: Sequence[Event],
                    diagnoses: Sequence[tuple[float, Mapping[str, Any]]]) -> str:
    out = [f"Incident {inc.id} ({inc.status}) on {printable(inc.host)}: {printable(inc.title)}",
           f"opened {_t(inc.opened_at)}" + (f", resolved {_t(inc.resolved_at)}" if inc.resolved_at else "")
           + f", {_took(inc)}; source {inc.source}",
           f"leading cause: {printable(_cause(inc))}"]
    if inc.bundle:
        out.append(f"evidence bundle: {printable(inc.bundle)} (ddx diagnose --from it)")
    if diagnoses:
        _, last = diagnoses[-1]
        out += ["", "Differential (latest diagnosis)"]
        for h in (last.get("hypotheses") or [])[:5]:
            out.append(f"  {h.get('probability', 0):6.1%}  {printable(h.get('name', h.get('id')))} ({h.get('id')})")
        checks = last.get("next_checks") or []
        if checks:
            out += ["", f"Next check: {printable(checks[0].get('title', ''))}"]
            out += [f"  $ {printable(c)}" for c in checks[0].get("commands", [])]
    out += ["", "Timeline"]
    out += [f"  {_t(e.at)}  {e.kind:<13} {printable(e.text)}" for e in events]
    return "\n".join(out) + "\n"


def _mdcode(text: Any) -> str:
    return "`" + printable(str(text)).replace("`", "'").replace("|", "¦") + "`"


def render_postmortem(inc: Incident, events: Sequence[Event], diagnoses: Sequence[tuple[float, Mapping[str, Any]]],
                      alerts: Sequence[Mapping[str, Any]] = ()) -> str:
    """A postmortem draft: what ddx knows, in the order a review reads it, with the
    parts only people can write left as headings to fill in."""
    last = dict(diagnoses[-1][1]) if diagnoses else {}
    hyps = last.get("hypotheses") or []
    out = [f"# Postmortem draft: {md_text(inc.title)}", "",
           f"- **Incident**: {_mdcode(inc.id)} on {md_text(inc.host)} (opened by {inc.source})",
           f"- **Opened**: {_t(inc.opened_at)}; **resolved**: {_t(inc.resolved_at)}; **duration**: {_took(inc)}",
           f"- **Leading cause at the end**: {md_text(_cause(inc))}"
           + (f" ({md_text(inc.cause_name)})" if inc.cause_name else "")]
    if inc.bundle:
        out.append(f"- **Evidence bundle**: {_mdcode(inc.bundle)} (replay with `ddx diagnose --from`)")
    out += ["", "## Summary", "", "_What happened, who was affected, for how long: to be written._", ""]

    out += ["## Timeline", "", "| time (UTC) | what |", "|---|---|"]
    out += [f"| {_t(e.at)[:19]} | {md_text(e.text)} |" for e in events]

    out += ["", "## How the differential changed", ""]
    if diagnoses:
        out += ["| time (UTC) | first | second | third |", "|---|---|---|---|"]
        for at, rep in diagnoses:
            cells = [f"{md_text(h.get('id'))} {float(h.get('probability', 0)):.0%}"
                     for h in (rep.get("hypotheses") or [])[:3]]
            cells += ["–"] * (3 - len(cells))
            out.append(f"| {_t(at)[:19]} | " + " | ".join(cells) + " |")
    else:
        out.append("No diagnosis was recorded.")

    out += ["", "## Evidence", ""]
    if hyps:
        top = hyps[0]
        out.append(f"For {md_text(top.get('name', top.get('id')))}:")
        for w in top.get("for") or []:
            out.append(f"- {_mdcode(w.get('finding'))} {w.get('state')} ({float(w.get('weight', 0)):+.0f} dB)")
        findings = {f.get("id"): f for f in last.get("findings") or [] if isinstance(f, dict)}
        for w in (top.get("for") or [])[:5]:
            f = findings.get(w.get("finding")) or {}
            for ev in (f.get("evidence") or [])[:1]:
                out.append(f"  - {md_text(ev.get('source', ''))}: {md_text(ev.get('summary', ''))}")
    else:
        out.append("No cause stood out.")

    out += ["", "## What was ruled out", ""]
    absent = [f for f in last.get("findings") or [] if isinstance(f, dict) and f.get("state") == "absent"]
    if absent:
        out += [f"- {_mdcode(f.get('id'))} not seen" + (
            f": {md_text((f.get('evidence') or [{}])[0].get('summary', ''))}" if f.get("evidence") else "")
            for f in absent[:15]]
    first = {h.get("id"): h.get("probability") for h in ((diagnoses[0][1].get("hypotheses") or []) if diagnoses else [])}
    now = {h.get("id"): h.get("probability") for h in hyps}
    dropped = [(c, p) for c, p in first.items() if p and p >= 0.1 and (now.get(c) or 0) < p / 2]
    out += [f"- {md_text(c)} fell from {p:.0%} to {float(now.get(c) or 0):.0%} as evidence came in" for c, p in dropped]
    if not absent and not dropped:
        out.append("Nothing was ruled out explicitly.")

    out += ["", "## Checks proposed", ""]
    for c in (last.get("next_checks") or [])[:3]:
        out += [f"**{md_text(c.get('title'))}**", "", "```sh"]
        out += [printable(cmd).replace("```", "'''") for cmd in c.get("commands", [])]
        out += ["```", ""]
    if alerts:
        out += ["## Alerts", "", "| alert | status | started | ended |", "|---|---|---|---|"]
        out += [f"| {md_text(a.get('labels', {}).get('alertname', a.get('fingerprint')))} | {md_text(a.get('status'))} "
                f"| {md_text(a.get('starts_at') or '-')} | {md_text(a.get('ends_at') or '-')} |" for a in alerts]
        out.append("")
    resolved = [e for e in events if e.kind == "resolved"]
    out += ["## Resolution", "", md_text(resolved[-1].text) + f" at {_t(resolved[-1].at)}." if resolved
            else "The incident is still open.", "",
            "## Action items", "", "_To be written: what will prevent it, who owns each item._", ""]
    return "\n".join(out)
