"""Notification messages: what an incident's opening, change or resolution says, per channel."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ddx import __version__
from ddx.render.safe import printable
from ddx.watch.store import Incident

log = logging.getLogger("ddx.watch.notify")


KINDS = ("opened", "changed", "resolved")
NOTIFICATION_VERSION = 1
MAX_CAUSES = 3          # leading causes in a message
MIN_SHOWN = 0.01        # a cause after the first is shown from this probability on
MAX_EVIDENCE = 5        # evidence items of the leading cause
MAX_COMMANDS = 5        # commands of the next check
MAX_TEXT = 300          # characters of one untrusted string (a title, an evidence summary, a command)
SLACK_BLOCK = 3000      # Slack's limit on a section block's text

_VERBS = {"opened": "opened", "changed": "leading cause changed", "resolved": "resolved"}
_EMOJI = {"opened": ":rotating_light:", "changed": ":arrows_counterclockwise:", "resolved": ":white_check_mark:"}


# --- the message ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One notification, built once from (kind, incident, report) when it is
    sent (a snapshot: the incident may change while the message waits) and
    rendered by each channel: ``payload()`` for a webhook, ``slack()``,
    ``email()``."""

    kind: str
    incident: dict[str, Any]             # Incident.to_dict()
    causes: list[dict[str, Any]]         # [{"id", "name", "probability", "evidence": [...]}]
    next_check: dict[str, Any] | None    # {"title", "commands": [...]}
    text: str                            # one-paragraph summary, one line
    at: str                              # ISO-8601 time of the event

    @property
    def incident_id(self) -> str:
        return str(self.incident.get("id", ""))

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON (docs/schema/notification.schema.json)."""
        return {"version": NOTIFICATION_VERSION, "kind": self.kind, "at": self.at, "incident": self.incident,
                "causes": self.causes, "next_check": self.next_check, "text": self.text}

    def slack(self) -> tuple[str, list[dict[str, Any]]]:
        """Slack's ``text`` (mrkdwn) and ``blocks``."""
        inc = self.incident
        head = (f"{_EMOJI.get(self.kind, '')} *ddx: incident {_VERBS.get(self.kind, self.kind)}* on "
                f"*{_slack(inc.get('host'))}*: {_slack(inc.get('title'))}")
        lines = [head.strip()]
        if self.causes:
            first = self.causes[0]
            lines.append(f"*Leading cause:* {_slack(first['name'])} ({_pct(first['probability'])})")
            if len(self.causes) > 1:
                lines.append("*Also possible:* " + ", ".join(f"{_slack(c['name'])} ({_pct(c['probability'])})"
                                                              for c in self.causes[1:]))
            if first["evidence"]:
                lines.append("*Evidence:*")
                lines.extend(f"\u2022 {_slack(_evidence_line(e))}" for e in first["evidence"])
        elif self.kind != "resolved":
            lines.append("*Leading cause:* none stands out")
        if self.next_check:
            lines.append(f"*Next check:* {_slack(self.next_check['title'])}")
            if self.next_check["commands"]:
                cmds = "\n".join(_slack(c).replace("```", "`\u200b`\u200b`") for c in self.next_check["commands"])
                lines.append(f"```{cmds}```")
        main = _slack_cut("\n".join(lines))
        footer = (f"Incident {_slack(inc.get('id'))} \u00b7 {_slack(inc.get('status'))} \u00b7 "
                  f"opened {_slack(inc.get('opened_at'))}")
        if inc.get("resolved_at"):
            footer += f" \u00b7 resolved {_slack(inc.get('resolved_at'))}"
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": main}},
                  {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_cut(footer)}]}]
        return f"{main}\n{footer}", blocks

    def email(self) -> tuple[str, str]:
        """The mail's subject and plain-text body."""
        inc = self.incident
        subject = f"[ddx] {self.kind}: {one_line(inc.get('title'), 150)} on {one_line(inc.get('host'), 100)}"
        lines = [
            self.text, "",
            f"Incident:  {one_line(inc.get('id'))}",
            f"Host:      {one_line(inc.get('host'))}",
            f"Title:     {one_line(inc.get('title'))}",
            f"Status:    {one_line(inc.get('status'))}",
            f"Opened:    {one_line(inc.get('opened_at'))}",
        ]
        if inc.get("resolved_at"):
            lines.append(f"Resolved:  {one_line(inc.get('resolved_at'))}")
        if self.causes:
            lines += ["", "Leading causes:"]
            lines += [f"  {i}. {one_line(c['name'])} ({one_line(c['id'])}): {_pct(c['probability'])}"
                      for i, c in enumerate(self.causes, 1)]
            if self.causes[0]["evidence"]:
                lines += ["", f"Evidence for {one_line(self.causes[0]['name'])}:"]
                lines += [f"  - {one_line(_evidence_line(e), 2 * MAX_TEXT)}" for e in self.causes[0]["evidence"]]
        if self.next_check:
            lines += ["", f"Next check: {one_line(self.next_check['title'])}"]
            lines += [f"  $ {one_line(c, 2 * MAX_TEXT)}" for c in self.next_check["commands"]]
        lines += ["", f"-- ddx {__version__}"]
        return subject, "\n".join(lines) + "\n"


def build_message(kind: str, incident: Incident, report: Mapping[str, Any] | None, *,
                  at: float | None = None) -> Message:
    """The message for one event of ``incident``; ``report`` is the diagnosis
    as JSON (``ddx.render.jsonout.to_dict``), None for ``resolved``. A report
    of the wrong shape gives a message without causes, never an error."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r} (known: {', '.join(KINDS)})")
    inc = incident.to_dict()
    inc["probability"] = _prob(inc.get("probability"))  # a NaN would make the JSON invalid
    causes = _causes(incident, report)
    check = _next_check(report) if kind != "resolved" else None
    when = _iso(at if at is not None else time.time())
    return Message(kind, inc, causes, check, _summary(kind, inc, causes, check), when)


def _causes(incident: Incident, report: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not isinstance(report, Mapping):
        if incident.cause:  # resolved: the last diagnosis's leading cause, as the incident keeps it
            return [{"id": clip(incident.cause), "name": clip(incident.cause_name or incident.cause),
                     "probability": _prob(incident.probability), "evidence": []}]
        return []
    hyps = report.get("hypotheses")
    if report.get("status") == "nothing_wrong" or not isinstance(hyps, list):
        return []
    out: list[dict[str, Any]] = []
    for h in hyps:
        if len(out) >= MAX_CAUSES:
            break
        if not isinstance(h, Mapping) or not isinstance(h.get("id"), str):
            continue
        p = _prob(h.get("probability"))
        if out and (p is None or p < MIN_SHOWN):
            continue
        name = h.get("name") if isinstance(h.get("name"), str) else h["id"]
        out.append({"id": clip(h["id"]), "name": clip(name), "probability": p,
                    "evidence": _evidence(h, report) if not out else []})
    return out


def _evidence(h: Mapping[str, Any], report: Mapping[str, Any]) -> list[dict[str, Any]]:
    weights = h.get("for")
    support = [w for w in (weights if isinstance(weights, list) else [])
               if isinstance(w, Mapping) and isinstance(w.get("finding"), str)]
    support.sort(key=lambda w: -_num(w.get("weight")))
    summaries: dict[str, str] = {}
    findings = report.get("findings")
    for f in findings if isinstance(findings, list) else []:
        if isinstance(f, Mapping) and isinstance(f.get("id"), str) and isinstance(f.get("evidence"), list):
            first = f["evidence"][0] if f["evidence"] else None
            if isinstance(first, Mapping) and isinstance(first.get("summary"), str):
                summaries.setdefault(f["id"], first["summary"])
    out = []
    for w in support[:MAX_EVIDENCE]:
        item: dict[str, Any] = {"finding": clip(w["finding"]), "state": clip(str(w.get("state", "")))}
        if isinstance(w.get("weight"), (int, float)) and not isinstance(w.get("weight"), bool) \
                and math.isfinite(w["weight"]):
            item["weight"] = float(w["weight"])
        item["summary"] = clip(summaries.get(w["finding"], ""))
        out.append(item)
    return out


def _next_check(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    checks = report.get("next_checks") if isinstance(report, Mapping) else None
    if not isinstance(checks, list) or not checks or not isinstance(checks[0], Mapping):
        return None
    c = checks[0]
    title = c.get("title") if isinstance(c.get("title"), str) else str(c.get("id", "a check"))
    cmds = c.get("commands")
    commands = [clip(x, 2 * MAX_TEXT) for x in (cmds if isinstance(cmds, list) else []) if isinstance(x, str)]
    return {"title": clip(title), "commands": commands[:MAX_COMMANDS]}


def _summary(kind: str, inc: Mapping[str, Any], causes: list[dict[str, Any]], check: dict[str, Any] | None) -> str:
    parts = [f"ddx: incident {one_line(inc.get('id'))} on {one_line(inc.get('host'))} {_VERBS[kind]}: "
             f"{one_line(inc.get('title'))}."]
    if causes:
        lead = causes[0]
        word = "Leading cause was" if kind == "resolved" else "Leading cause"
        parts.append(f"{word}: {one_line(lead['name'])} ({_pct(lead['probability'])})"
                     + ("; also " + ", ".join(f"{one_line(c['name'])} ({_pct(c['probability'])})" for c in causes[1:])
                        if len(causes) > 1 else "") + ".")
        if lead["evidence"]:
            parts.append("Evidence: " + "; ".join(one_line(_evidence_line(e)) for e in lead["evidence"]) + ".")
    elif kind != "resolved":
        parts.append("No cause stands out.")
    if check:
        parts.append(f"Next check: {one_line(check['title'])}"
                     + (": " + "; ".join(one_line(c) for c in check["commands"]) if check["commands"] else "") + ".")
    return " ".join(parts)


def _evidence_line(e: Mapping[str, Any]) -> str:
    s = f"{e['finding']} ({e['state']})"
    return f"{s}: {e['summary']}" if e.get("summary") else s


def clip(text: Any, limit: int = MAX_TEXT) -> str:
    s = text if isinstance(text, str) else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "\u2026"


def one_line(text: Any, limit: int = MAX_TEXT) -> str:
    """Untrusted text on one line, control characters escaped, cut."""
    return clip(printable("" if text is None else text), limit)


def _slack(text: Any) -> str:
    """Untrusted text for Slack mrkdwn: one line, and ``&``, ``<``, ``>`` as
    Slack wants them (so no ``<!channel>``, no ``<url|link>``)."""
    return one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_cut(text: str) -> str:
    if len(text) <= SLACK_BLOCK:
        return text
    cut = text[: SLACK_BLOCK - 10]
    amp = cut.rfind("&")
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]  # not half an entity
    cut += "\u2026"
    return cut + "```" if cut.count("```") % 2 else cut


def _prob(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return min(1.0, max(0.0, float(value)))
    return None


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else 0.0


def _pct(p: float | None) -> str:
    return "?" if p is None else f"{p:.0%}"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# --- channels ---------------------------------------------------------------------------------


