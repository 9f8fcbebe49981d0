"""Secrets out of text: free text, command lines, command output.

Used wherever evidence leaves the process (bundles, samples in reports): a
password, token or key found by these rules is replaced by ``***``. The rules
(``tests/data/secrets.yaml`` holds a corpus of each kind):

- ``key=value``, ``key: value``, ``"key": "value"`` and ``key => value``
  where the key names a secret (``password``, ``SECRET_KEY_BASE``,
  ``api_token``, ``client_secret``, ...);
- configuration lines ``requirepass x``, ``masterauth x``, ``auth_pass x``;
- XML: ``<password>x</password>``, ``<property name="...password" value="x"/>``;
- SQL: ``IDENTIFIED BY 'x'``, ``PASSWORD 'x'``, ``SET PASSWORD ... = 'x'``;
- HTTP: ``Authorization: <scheme> x``, ``Cookie: ...``, ``Bearer x``, ``Basic x``;
- URLs: the password of ``scheme://user:pass@host`` (to the last ``@``, so
  ``@`` and ``/`` in it are covered) and secret query parameters (``?password=x``);
- PEM private keys (the lines between BEGIN and END, or to the end of the text);
- well-known token formats (AWS, GitHub, GitLab, Slack, Stripe, OpenAI, Google,
  npm, SendGrid, Hugging Face, JWT);
- free text that says it: ``with password hunter2x``, ``the password is 'x'``
  (only a value that looks like one: a digit, a symbol or mixed case, or quoted;
  ``password authentication failed`` stays as it is);
- command lines (``redact_cmdline``): ``--password X``, ``--password=X``,
  ``-pX``, ``-u user:X``, ``redis-cli -a X``, ``sshpass -p X``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from ddx.urls import mask_params, mask_url

__all__ = ["REDACTED", "redact_cmdline", "redact_cmdline_file", "redact_output", "redact_text"]

REDACTED = "***"

# Words that make a key secret: password=, SECRET_KEY_BASE=, api_token: ...
_TEXT_SECRET = (
    r"(?:pass(?:word|wd|phrase)?(?!ed|ing|es\b|age)|pwd|secret|token|api[-_]?key|apikey|access[-_]?key"
    r"|private[-_]?key|account[-_]?key|credentials?|session[-_]?key|client[-_]?secret|[_.-]auth\b|[_.-]key\b"
    r"|signature)"
)
_OPT_SECRET = rf"(?:{_TEXT_SECRET}|auth|key|pw)"
_SECRET_OPT_RE = re.compile(
    r"(?i)^(?:[a-z0-9_.-]*[-_.])?(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|apikey|access[-_]?key"
    r"|private[-_]?key|credentials?|session[-_]?key|client[-_]?secret|auth|key|pw)$"
)
_SECRET_LONG_OPT_RE = re.compile(r"(?i)^[a-z0-9_.-]*(?:pass|password|auth|secret|token)$")  # --requirepass, --masterauth
_OPT_RE = re.compile(r"^--?([A-Za-z0-9][A-Za-z0-9_.-]*)$")
_OPT_EQ_RE = re.compile(r"^(--?[A-Za-z0-9][A-Za-z0-9_.-]*)=(.*)$", re.S)
# Programs whose short option takes a password: redis-cli -a X, sshpass -p X.
_PASSWORD_SHORT_OPTS = {"redis-cli": "-a", "sshpass": "-p", "keydb-cli": "-a"}

# key = value: the secret word and the rest of the key's name (its prefix, DB_ or SECRET_, is left
# outside the match), the separator, the value. Name parts are bounded: no backtracking over a long word.
_KV_RE = re.compile(
    rf"(?i)({_TEXT_SECRET}[A-Za-z0-9_.-]{{0,64}}?)([\"']?\s*(?:=>|[=:])\s*)"
    r"(\"[^\"]*\"|'[^']*'|[^\s&;,\"'}<]+)"
)
_KV_FAST = re.compile(r"(?:pass|pwd|secret|token|key|credential|auth|signature)[a-z0-9_.-]{0,64}[\"']?\s*(?:=>|[=:])")
# Configuration directives whose value is always a secret, at the start of a line.
_DIRECTIVE_RE = re.compile(
    r"(?im)^(\s*(?:requirepass|masterauth|masteruser[-_]?password|auth[-_]pass|rpcpassword|ssl[-_]password"
    r"|passwd|password|secret)\s+)(\S.*?)\s*$"
)
_DIRECTIVE_FAST = re.compile(r"(?m)^\s*(?:requirepass|masterauth|masteruser|auth[-_]pass|rpcpassword|ssl[-_]password"
                             r"|passwd|password|secret)\s")
_XML_ELEM_RE = re.compile(
    rf"(?i)(<([A-Za-z_][\w.:-]{{0,64}}?{_TEXT_SECRET}[\w.:-]{{0,64}}|secret|password|token)(?:\s[^>]*)?>)"
    r"([^<]*)(</\2\s*>)"
)
_XML_NAMED_RE = re.compile(
    rf"(?i)((?:name|key)\s*=\s*([\"'])[^\"'<>]{{0,100}}?{_TEXT_SECRET}[^\"'<>]{{0,100}}\2\s+value\s*=\s*)"
    r"([\"'])(.*?)\3"
)
_SQL_RE = re.compile(
    r"(?i)(\bIDENTIFIED\s+(?:WITH\s+\S+\s+)?(?:BY|AS)\s+(?:PASSWORD\s+)?|\bPASSWORD(?:\s+|\s*\(\s*|\s*=\s*)"
    r"|\bSET\s+PASSWORD\b[^=\n]{0,200}=\s*(?:PASSWORD\s*\(\s*)?)([\"'])(.*?)\2"
)
# Authorization: the scheme (kept), then the credentials: a word, or comma-separated parameters
# (Digest, AWS4-HMAC-SHA256) whose values may be quoted.
_AUTH_WORD = r"""(?:[^\s"',]|(?<==)"[^"\n]*"|(?<==)'[^'\n]*')+"""
_AUTH_HEADER_RE = re.compile(
    rf"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?:([A-Za-z][\w-]*)\s+)?"
    rf"({_AUTH_WORD}(?:,\s*{_AUTH_WORD})*)"
)
_COOKIE_RE = re.compile(r"(?im)\b((?:set-)?cookie\s*:\s*)([^\n\r]+)")
# A URL in free text: its scheme starts a word and is short (no backtracking over a long word).
_URL_RE = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s\"'<>]+")
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+([A-Za-z0-9._~+/=-]{8,})")
_PEM_RE = re.compile(
    r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)(.*?)(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.S,
)
_KNOWN_TOKEN_RE = re.compile(
    r"\b((?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}"
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{16,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|AIza[0-9A-Za-z_-]{35}|npm_[A-Za-z0-9]{36}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
    r"|hf_[A-Za-z0-9]{30,}|dckr_pat_[A-Za-z0-9_-]{20,}|pypi-[A-Za-z0-9_-]{50,}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{5,})"
)
_SLACK_HOOK_RE = re.compile(r"(hooks\.slack\.com/services/[A-Z0-9]+/[A-Z0-9]+/)[A-Za-z0-9]+")
# Free text: "with password hunter2x", "the password is 'x'", "reset token 9f86...".
_SAYS_RE = re.compile(
    r"(?i)\b(pass(?:word|wd|phrase)|secret|token|api[ _-]?key)((?:\s+(?:is|was|of|=))?\s+)"
    r"(\"[^\"]+\"|'[^']+'|[^\s\"',;]+)"
)
_SAYS_FAST = re.compile(r"pass(?:word|wd|phrase)\s|secret\s|token\s|api[ _-]?key\s")
_SYMBOLS = set("!#$%^&*+=/\\~?<>{}[]|@")


def _looks_secret(value: str) -> bool:
    """Is this word (not quoted) a value rather than an English word? A digit,
    a symbol or mixed case, and at least 4 characters."""
    if value[:1] in "\"'":
        return len(value) > 2
    word = value.rstrip(".:)]!")
    if len(word) < 4:
        return False
    return (any(c.isdigit() for c in word) or any(c in _SYMBOLS for c in word)
            or (any(c.islower() for c in word) and any(c.isupper() for c in word[1:])))


def _says(m: re.Match[str]) -> str:
    value = m.group(3)
    if value.startswith(REDACTED) or value.upper() in ("YES", "NO", "NONE", "NULL") or not _looks_secret(value):
        return m.group()
    return m.group(1) + m.group(2) + REDACTED


def _key_value(m: re.Match[str]) -> str:
    if m.group(3).rstrip(")").upper() in ("YES", "NO"):  # MySQL's "(using password: YES)" says, not tells
        return m.group()
    if m.group(3).startswith(REDACTED):  # hidden already: "--token=***: 1019 open fds" keeps its colon
        return m.group()
    return m.group(1) + m.group(2) + REDACTED


def _per_line(text: str, hint: re.Pattern[str], fix: Callable[[str], str]) -> str:
    """``fix`` applied to each line on which ``hint`` finds something, the other
    lines untouched: one pass of a cheap pattern over a 4 MB log, then the
    costly rules on a few lines."""
    low = text.lower()
    if len(low) != len(text):  # a character whose lower case is longer: search the text itself
        low, hint = text, _case_blind(hint)
    out: list[str] = []
    done = 0  # text before this index is in out
    for m in hint.finditer(low):
        pos = m.start() + (1 if low.startswith("\n", m.start()) else 0)  # a hint may start with the newline before
        if pos < done:
            continue
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        out += [text[done:start], fix(text[start:end])]
        done = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


@functools.lru_cache(maxsize=None)
def _case_blind(hint: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(hint.pattern, hint.flags | re.IGNORECASE)


def _rule(pattern: re.Pattern[str], repl: str | Callable[[re.Match[str]], str]) -> Callable[[str], str]:
    return lambda line: pattern.sub(repl, line)


# Hints are searched in the lower-cased text (much faster than a case-insensitive pattern).
_AUTH_HINT = re.compile(r"authorization")
_COOKIE_HINT = re.compile(r"cookie")
_XML_HINT = re.compile(r"\svalue\s*=")
_SQL_HINT = re.compile(r"identified|password")
_BEARER_HINT = re.compile(r"bearer|basic")
# Rules that hold within one line, each with the cheap hint that finds its lines.
_LINE_RULES: tuple[tuple[re.Pattern[str], Callable[[str], str]], ...] = (
    (_AUTH_HINT, _rule(_AUTH_HEADER_RE, lambda m: m.group(1) + (m.group(2) + " " if m.group(2) else "") + REDACTED)),
    (_COOKIE_HINT, _rule(_COOKIE_RE, rf"\1{REDACTED}")),
    (_XML_HINT, _rule(_XML_NAMED_RE, lambda m: m.group(1) + m.group(3) + REDACTED + m.group(3))),
    (_SQL_HINT, _rule(_SQL_RE, lambda m: m.group(1) + m.group(2) + REDACTED + m.group(2))),
    (_DIRECTIVE_FAST, _rule(_DIRECTIVE_RE, rf"\1{REDACTED}")),
    (_KV_FAST, _rule(_KV_RE, _key_value)),
    (_SAYS_FAST, _rule(_SAYS_RE, _says)),
    (_BEARER_HINT, _rule(_BEARER_RE, lambda m: f"{m.group(1)} {REDACTED}")),
)


def redact_text(text: str) -> str:
    """Hide secrets in free text (log lines, command output, config files):
    every rule of the module docstring, the command-line ones on the lines that
    look like they hold a command line (``ps`` output, a cron or sudo log
    line). Rules that need a hint word run only on the lines holding it."""
    if not text:
        return text
    if "PRIVATE KEY" in text:
        text = _PEM_RE.sub(lambda m: f"{m.group(1)}\n{REDACTED}\n{m.group(3)}", text)
    if "://" in text:
        text = _URL_RE.sub(lambda m: mask_url(m.group()), text)
        text = _SLACK_HOOK_RE.sub(rf"\1{REDACTED}", text)
    if "=" in text:
        text = mask_params(text)  # ?password=x&..., ;Password=x; also outside a URL (an access log's path)
    if "<" in text:
        text = _XML_ELEM_RE.sub(lambda m: m.group(1) + REDACTED + m.group(4), text)  # may span lines
    for hint, fix in _LINE_RULES:
        text = _per_line(text, hint, fix)
    text = _KNOWN_TOKEN_RE.sub(REDACTED, text)
    return _per_line(text, _CMDLINE_HINT, _command_line)


def _secret_option(option: str) -> bool:
    """Does this option (``--db-password``, ``-password``, ``--requirepass``) take a secret?"""
    name = option.lstrip("-")
    return bool(_SECRET_OPT_RE.match(name) or (option.startswith("--") and _SECRET_LONG_OPT_RE.match(name)))


def redact_cmdline(args: list[str]) -> list[str]:
    """Hide secrets in one command line, argument by argument:
    ``--password X``, ``--password=X``, ``-pSECRET`` (mysql style; ``-p8080``
    stays, a port), ``-u user:pass`` / ``--user user:pass`` (curl),
    ``redis-cli -a X``, ``sshpass -p X``, then the free-text rules on each
    argument (``password=X``, URLs with credentials, headers, known tokens)."""
    return [redact_text(a) for a in _redact_args(args, skip_first=True)]


def _redact_args(args: list[str], *, skip_first: bool) -> list[str]:
    """The option-aware rules of ``redact_cmdline`` (no free-text rules)."""
    out: list[str] = []
    hide_next = False
    user_next = False
    program = args[0].rsplit("/", 1)[-1] if args and skip_first else ""
    short_password = _PASSWORD_SHORT_OPTS.get(program)
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
            if short_password and arg == short_password and i + 1 < len(args):
                out.append(arg)
                hide_next = True
                continue
            if short_password and arg.startswith(short_password) and len(arg) > 2 and not arg.startswith("--"):
                out.append(short_password + REDACTED)
                continue
            m = _OPT_EQ_RE.match(arg)
            if m and _secret_option(m.group(1)) and not m.group(2).startswith(REDACTED):  # hidden already
                out.append(f"{m.group(1)}={REDACTED}")
                continue
            m = _OPT_RE.match(arg)
            if m:
                if (_secret_option(arg) and i + 1 < len(args) and not args[i + 1].startswith("-")
                        and not args[i + 1].startswith(REDACTED)):
                    out.append(arg)
                    hide_next = True
                    continue
                if arg in ("-u", "--user", "--proxy-user"):
                    out.append(arg)
                    user_next = True
                    continue
            if arg.startswith("-p") and not arg.startswith("--") and len(arg) > 2:
                val = arg[2:]
                if not val.isdigit() and not val.startswith(("=", REDACTED)):
                    out.append("-p" + REDACTED)
                    continue
        out.append(arg)
    return out


# Lines of free text that may hold a command line with a secret option.
_CMDLINE_HINT = re.compile(  # searched in lower case, like the hints above
    rf"(?m)(?:^|\s)(?:--?[a-z0-9_.-]*{_OPT_SECRET}(?:[\s=]|$)|-p[^\s\d=-]|-u\s+\S+:|--(?:proxy-)?user\s+\S+:"
    r"|(?:redis-cli|keydb-cli)\s.*\s-a\s|sshpass\s+-p)"
)


def redact_output(text: str) -> str:
    """Hide secrets in command output or a file (``redact_text``: the same rules)."""
    return redact_text(text)


def _command_line(line: str) -> str:
    """The command-line rules on one line of text that looks like it holds one."""
    words = line.split(" ")
    start = next((j for j, w in enumerate(words) if w.rsplit("/", 1)[-1] in _PASSWORD_SHORT_OPTS), None)
    if start is not None:  # `redis-cli -a X` in a ps line: the program's own rules from its name on
        words = words[:start] + _redact_args(words[start:], skip_first=True)
    return " ".join(_redact_args(words, skip_first=False))


def redact_cmdline_file(text: str) -> str:
    """Hide secrets in a ``/proc/PID/cmdline`` (arguments separated by NUL,
    or one string when the process rewrote its title)."""
    if not text:
        return text
    end = "\0" if text.endswith("\0") else ""
    parts = text[:-1].split("\0") if end else text.split("\0")
    if len(parts) == 1 and " " in parts[0]:  # a process that rewrote its title into one string
        return redact_text(" ".join(_redact_args(parts[0].split(" "), skip_first=True))) + end
    return "\0".join(redact_cmdline(parts)) + end
