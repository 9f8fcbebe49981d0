"""Secrets out of text: free text, command lines, command output.

Used wherever evidence leaves the process (bundles, samples in reports): a
password, token or key found by these rules is replaced by ``***``.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_cmdline", "redact_cmdline_file", "redact_output", "redact_text"]

# Words that make a key or an option name secret: password=, --api-key X, TOKEN=...
_TEXT_SECRET = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|apikey|access[-_]?key|private[-_]?key"
    r"|credentials?|session[-_]?key|client[-_]?secret)"
)
_OPT_SECRET = rf"(?:{_TEXT_SECRET}|auth|key)"
_SECRET_OPT_RE = re.compile(rf"(?i)^(?:[a-z0-9_.-]*[-_.])?{_OPT_SECRET}$")
_OPT_RE = re.compile(r"^--?([A-Za-z0-9][A-Za-z0-9_.-]*)$")
_OPT_EQ_RE = re.compile(r"^(--?[A-Za-z0-9][A-Za-z0-9_.-]*)=(.*)$", re.S)
_KV_RE = re.compile(  # the key's own prefix (db_, APP_) is left as it is, outside the match
    rf"(?i)({_TEXT_SECRET})([\"']?\s*(?:=>|[=:])\s*)(\"[^\"]*\"|'[^']*'|[^\s&;,\"'}}]+)"
)
_URL_CRED_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*):([^@\s/]+)@")
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+([A-Za-z0-9._~+/=-]{8,})")
_KNOWN_TOKEN_RE = re.compile(
    r"\b(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}"
    r"|glpat-[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{5,})"
)
REDACTED = "***"


_KV_FAST = re.compile(r"(?:pass|pwd|secret|token|key|credential)[a-z]*[\"']?\s*(?:=>|[=:])")


def redact_text(text: str) -> str:
    """Hide secrets in free text (log lines, command output, config files):
    ``password=x``, ``token: x``, ``scheme://user:pass@``, ``Bearer x`` and
    well-known token formats (AWS, GitHub, Slack, JWT). Lines without a hint
    word are not searched: a 4 MB log costs tens of milliseconds."""
    if not text:
        return text
    if "://" in text:
        text = _URL_CRED_RE.sub(rf"\1:{REDACTED}@", text)
    low = text.lower()
    if _KV_FAST.search(low):
        # Only lines with a candidate get the full (slower) expression.
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if _KV_FAST.search(line.lower()):
                lines[i] = _KV_RE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, line)
        text = "\n".join(lines)
        low = text.lower()
    if "bearer" in low or "basic" in low:
        text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _KNOWN_TOKEN_RE.sub(REDACTED, text)


def _secret_option(name: str) -> bool:
    return bool(_SECRET_OPT_RE.match(name))


def redact_cmdline(args: list[str]) -> list[str]:
    """Hide secrets in one command line, argument by argument:
    ``--password X``, ``--password=X``, ``-pSECRET`` (mysql style; ``-p8080``
    stays, a port), ``-u user:pass`` / ``--user user:pass`` (curl),
    ``password=X``, URLs with credentials and known token formats."""
    return [redact_text(a) for a in _redact_args(args, skip_first=True)]


def _redact_args(args: list[str], *, skip_first: bool) -> list[str]:
    """The option-aware rules of ``redact_cmdline`` (no free-text rules)."""
    out: list[str] = []
    hide_next = False
    user_next = False
    for i, arg in enumerate(args):
        if hide_next:
            out.append(REDACTED if arg else arg)
            hide_next = bool(not arg)  # several spaces in free text: hide the next word
            continue
        if user_next:
            user_next = False
            if ":" in arg:
                out.append(arg.split(":", 1)[0] + ":" + REDACTED)
                continue
        if i > 0 or not skip_first:
            m = _OPT_EQ_RE.match(arg)
            if m and _secret_option(m.group(1).lstrip("-")):
                out.append(f"{m.group(1)}={REDACTED}")
                continue
            m = _OPT_RE.match(arg)
            if m:
                name = m.group(1)
                if _secret_option(name) and i + 1 < len(args) and not args[i + 1].startswith("-"):
                    out.append(arg)
                    hide_next = True
                    continue
                if arg in ("-u", "--user", "--proxy-user"):
                    out.append(arg)
                    user_next = True
                    continue
            if arg.startswith("-p") and not arg.startswith("--") and len(arg) > 2:
                val = arg[2:]
                if not val.isdigit() and not val.startswith("="):
                    out.append("-p" + REDACTED)
                    continue
        out.append(arg)
    return out


# Lines of free text that may hold a command line with a secret option.
_CMDLINE_HINT = re.compile(
    rf"(?i)(?:^|\s)(?:--?[a-z0-9_.-]*{_OPT_SECRET}(?:[\s=]|$)|-p[^\s\d=-]|-u\s+\S+:|--(?:proxy-)?user\s+\S+:)"
)


def redact_output(text: str) -> str:
    """Hide secrets in command output or a file: the free-text rules, plus the
    command-line rules on lines that look like they hold one (``ps`` output,
    ``systemctl status``, a cron log line)."""
    text = redact_text(text)
    if not _CMDLINE_HINT.search(text):
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _CMDLINE_HINT.search(line):
            lines[i] = " ".join(_redact_args(line.split(" "), skip_first=False))
    return "\n".join(lines)



def redact_cmdline_file(text: str) -> str:
    if not text:
        return text
    end = "\0" if text.endswith("\0") else ""
    parts = text[:-1].split("\0") if end else text.split("\0")
    if len(parts) == 1 and " " in parts[0]:  # a process that rewrote its title into one string
        parts = redact_cmdline(parts[0].split(" "))
        return " ".join(parts) + end
    return "\0".join(redact_cmdline(parts)) + end
