"""Dependency addresses named in configuration files: pure parsers on text.

Two families of files:

- **nginx** (``parse_nginx``): ``upstream NAME { server HOST[:PORT] ...; }``
  blocks and the ``proxy_pass``, ``fastcgi_pass``, ``uwsgi_pass``,
  ``scgi_pass``, ``grpc_pass`` and ``memcached_pass`` directives; ``include``
  lines are handed back for the caller to read (the parser does no I/O). A
  ``*_pass`` that names an upstream block (``proxy_pass http://app``) is not an
  address; one that holds a variable (``$backend``) or a unix socket is skipped.
- **application settings** (``parse_settings``): ``.env``, YAML, INI, TOML and
  JSON read line by line, which covers all of them without a parser per
  format and keeps line numbers for the evidence. On each line: URLs
  (``redis://h:p``, ``postgres://user:pass@h:p/db``: the user-info is dropped
  at once and never stored), bare ``host:port`` values (``10.0.0.5:11211,
  10.0.0.6:11211``), and pairs of keys such as ``DB_HOST``/``DB_PORT`` (or
  ``host:``/``port:`` under the same YAML parent or INI section).

What is *not* an address, to keep false alarms down: listen/bind settings
(``0.0.0.0:8000`` is where the app listens, not a dependency), wildcard hosts,
template placeholders (``${DB_HOST}``, ``{{ host }}``), ``image: redis:7``
(a bare ``name:port`` needs an IP, ``localhost``, a dotted name, or a key that
says it is an address), and ports outside 1..65535.

Nothing here resolves a name or opens a socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PORTS",
    "Endpoint",
    "NginxConf",
    "Upstream",
    "parse_nginx",
    "parse_settings",
    "split_hostport",
    "without_upstream_names",
]

# Default ports of URL schemes a settings file may name without a port.
DEFAULT_PORTS: dict[str, int] = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "redis": 6379,
    "rediss": 6379,
    "memcached": 11211,
    "memcache": 11211,
    "postgres": 5432,
    "postgresql": 5432,
    "mysql": 3306,
    "mariadb": 3306,
    "mongodb": 27017,
    "amqp": 5672,
    "amqps": 5671,
    "grpc": 80,
    "ldap": 389,
    "ldaps": 636,
    "smtp": 25,
    "nats": 4222,
    "kafka": 9092,
    "elasticsearch": 9200,
}


@dataclass(frozen=True)
class Endpoint:
    """One dependency address and where the configuration names it.
    ``what`` says how (``upstream app``, ``proxy_pass``, ``REDIS_URL``): a
    key name or directive, never the value (which may hold a password)."""

    host: str
    port: int
    file: str
    line: int
    what: str

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Upstream:
    """An nginx ``upstream`` block: its name and its TCP servers, in order."""

    name: str
    servers: tuple[Endpoint, ...]


@dataclass(frozen=True)
class NginxConf:
    """What one nginx file gives: addresses, upstream blocks, includes (as written)."""

    endpoints: tuple[Endpoint, ...]
    upstreams: tuple[Upstream, ...]
    includes: tuple[str, ...]
    http_upstreams: frozenset[str] = frozenset()  # upstream names used by ``proxy_pass http://NAME``


# --- host:port -------------------------------------------------------------------

_HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*"
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_WILDCARD = frozenset({"0.0.0.0", "*", "::", "[::]", ""})


def _valid_host(host: str) -> bool:
    if host in _WILDCARD:
        return False
    if _IPV4.match(host):
        return all(int(x) <= 255 for x in host.split("."))
    if ":" in host:  # IPv6 (brackets already removed)
        return bool(re.fullmatch(r"[0-9A-Fa-f:.]+", host)) and host.count(":") >= 2
    return bool(re.fullmatch(_HOSTNAME, host)) and not host.replace(".", "").isdigit()


def _port(text: str) -> int | None:
    if not text.isdigit():
        return None
    n = int(text)
    return n if 0 < n < 65536 else None


def split_hostport(text: str, default_port: int | None = None) -> tuple[str, int] | None:
    """``host:port``, ``[v6]:port`` or a bare host (with ``default_port``) ->
    ``(host, port)``; None when it is not an address."""
    text = text.strip()
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", text)
    if m:
        host, ptxt = m.group(1), m.group(2)
    elif text.count(":") == 1:
        host, ptxt = text.split(":")
    elif ":" not in text:
        host, ptxt = text, None
    else:
        return None
    if ptxt is None:
        if default_port is None:
            return None
        port: int | None = default_port
    else:
        port = _port(ptxt)
    if port is None or not _valid_host(host):
        return None
    return host.lower(), port


# --- nginx -----------------------------------------------------------------------

_PASS = frozenset({"proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass", "memcached_pass"})


def _nginx_tokens(text: str) -> list[tuple[str, int]]:
    """Words, ``{``, ``}`` and ``;`` with their line numbers (the nginx lexer of
    ``httpparse``; a quoted brace or semicolon is a word, not punctuation)."""
    from ddx.probes.parsers.httpparse import nginx_tokens

    return [(f" {t}" if quoted and t in ("{", "}", ";") else t, line) for t, line, quoted in nginx_tokens(text)]


def _statements(tokens: list[tuple[str, int]]) -> list[tuple[list[str], int, list[str]]]:
    """Each directive as (words, line, enclosing block heads like
    ``["http", "upstream app"]``)."""
    out: list[tuple[list[str], int, list[str]]] = []
    stack: list[str] = []
    words: list[str] = []
    first = 0
    for tok, line in tokens:
        if tok == ";":
            if words:
                out.append((words, first, list(stack)))
            words = []
        elif tok == "{":
            stack.append(" ".join(words))
            words = []
        elif tok == "}":
            if stack:
                stack.pop()
            words = []
        else:
            if not words:
                first = line
            words.append(tok)
    return out


def _pass_target(directive: str, arg: str) -> tuple[str, int | None] | None:
    """The host part of a ``*_pass`` argument and its default port."""
    if "$" in arg or arg.startswith("unix:"):
        return None
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]+)", arg)
    if m:
        scheme, rest = m.group(1).lower(), m.group(2)
        if rest.startswith("unix:"):
            return None
        return rest.rsplit("@", 1)[-1], DEFAULT_PORTS.get(scheme, 80)
    if directive == "proxy_pass":
        return None
    return arg, None  # fastcgi_pass 127.0.0.1:9000 (no scheme; an upstream name when no port)


def without_upstream_names(endpoints: list[Endpoint], upstreams: list[Upstream]) -> list[Endpoint]:
    """Drop ``*_pass`` targets that name an upstream block defined in another
    file of the same configuration (``proxy_pass http://app`` in a site file,
    ``upstream app`` in ``conf.d``)."""
    names = {u.name.lower() for u in upstreams}
    return [e for e in endpoints if not (e.what in _PASS and e.host in names)]


def parse_nginx(text: str, path: str) -> NginxConf:
    """Addresses, upstream blocks and ``include`` arguments of one nginx file.
    A ``*_pass`` naming an upstream of another file is still returned; the
    caller drops it with ``without_upstream_names`` once every file is read."""
    stmts = _statements(_nginx_tokens(text))
    upstream_servers: dict[str, list[Endpoint]] = {}
    pending: list[tuple[str, str, int, int | None]] = []  # (directive, host text, line, default port)
    proxied: set[str] = set()  # names after proxy_pass http://
    includes: list[str] = []
    for words, line, stack in stmts:
        head = words[0]
        block = stack[-1].split() if stack else []
        if head == "include" and len(words) > 1:
            includes.append(words[1])
        elif head == "server" and len(block) == 2 and block[0] == "upstream" and len(words) > 1:
            name = block[1]
            arg = words[1]
            if arg.startswith("unix:") or "$" in arg:
                continue
            hp = split_hostport(arg, 80)
            if hp:
                upstream_servers.setdefault(name, []).append(Endpoint(hp[0], hp[1], path, line, f"upstream {name}"))
        elif head in _PASS and len(words) > 1:
            tgt = _pass_target(head, words[1])
            if head == "proxy_pass" and words[1].lower().startswith("http://") and tgt:
                proxied.add(tgt[0].lower())
            if tgt:
                pending.append((head, tgt[0], line, tgt[1]))
        if len(block) == 2 and block[0] == "upstream":
            upstream_servers.setdefault(block[1], upstream_servers.get(block[1], []))
    names = {n.lower() for n in upstream_servers}
    endpoints: list[Endpoint] = [e for servers in upstream_servers.values() for e in servers]
    for directive, hosttext, line, default in pending:
        if ":" not in hosttext.strip("[]") and hosttext.lower() in names:
            continue  # names an upstream block
        if hosttext.lower() in names:
            continue
        hp = split_hostport(hosttext, default)
        if hp:
            endpoints.append(Endpoint(hp[0], hp[1], path, line, directive))
    ups = tuple(Upstream(n, tuple(s)) for n, s in upstream_servers.items())
    return NginxConf(tuple(endpoints), ups, tuple(includes), frozenset(proxied))


# --- application settings ----------------------------------------------------------------

_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{1,20})://([^\s/?#\"',;<>]+)")
_BARE = re.compile(
    r"(?<![\w.:/@-])(\[[0-9A-Fa-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3}|" + _HOSTNAME + r"):(\d{2,5})(?![\w.:])"
)
# ``KEY=value``, ``key: value`` (YAML/INI: a space after the colon, so ``cache2:11211`` stays a
# value), ``"key": value`` (JSON).
_KEYVAL = re.compile(
    r"""^\s*(?:export\s+)?(?:-\s+)?(?:"([A-Za-z_][\w.-]*)"\s*:|'([A-Za-z_][\w.-]*)'\s*:"""
    r"""|([A-Za-z_][\w.-]*)\s*(?:=|:(?=\s|$)))\s*(.*)$"""
)
_SECTION = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*$")
# Keys whose values are where this service listens, or not addresses at all.
_NOT_DEPENDENCY = re.compile(r"(?i)(?:^|[_.-])(?:listen|bind|image|version|tag|time|timeout|date|ttl)(?:$|[_.-])")
# Keys that say "this value is an address" (so a bare short name is taken).
_ADDRESS_KEY = re.compile(
    r"(?i)(?:host|hosts|hostname|server|servers|addr|address|addresses|endpoint|endpoints|url|uri|dsn|nodes?"
    r"|upstream|backend|backends|cluster|seeds?|brokers?|location|memcache[ds]?|redis|sentinels?)$"
)
_HOST_SUFFIX = re.compile(r"(?i)^(.*?)[_.-]?(?:host|hostname|server|addr|address)$")
_PORT_SUFFIX = re.compile(r"(?i)^(.*?)[_.-]?port$")
_PLACEHOLDER = re.compile(r"\$\{|\{\{|%\(|<%|\$[A-Za-z_]")


def _unquote(v: str) -> str:
    v = v.strip().rstrip(",").strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        v = v[1:-1]
    return v.split(" #", 1)[0].strip()


def _strip_comment(line: str) -> str | None:
    s = line.lstrip()
    if s.startswith(("#", ";", "//")):
        return None
    return line


def _prefix_port(prefix: str) -> int | None:
    """``redis`` / ``memcached`` / ``pg`` prefixes -> the service's default port."""
    for word in re.split(r"[_.-]", prefix.lower())[::-1]:
        if word in DEFAULT_PORTS and word not in ("http", "https", "grpc"):
            return DEFAULT_PORTS[word]
        if word in ("pg", "postgres", "psql"):
            return 5432
    return None


def parse_settings(text: str, path: str) -> list[Endpoint]:
    """Addresses in an application settings file (any of .env, YAML, INI,
    TOML, JSON), one per (host, port, line)."""
    found: dict[tuple[str, int, int], Endpoint] = {}
    # (section path, prefix) -> {"host": (value, line, key), "port": (value, line, key)}
    pairs: dict[tuple[str, str], dict[str, tuple[str, int, str]]] = {}
    parents: list[tuple[int, str]] = []  # YAML: (indent, key) of enclosing mappings
    section = ""

    def add(host: str, port: int, line: int, what: str) -> None:
        found.setdefault((host, port, line), Endpoint(host, port, path, line, what))

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if line is None or not line.strip():
            continue
        sm = _SECTION.match(line)
        if sm and "=" not in line and ":" not in sm.group(1):
            section, parents = sm.group(1), []
            continue
        indent = len(line) - len(line.lstrip(" -"))
        kv = _KEYVAL.match(line)
        key = (kv.group(1) or kv.group(2) or kv.group(3)) if kv else ""
        value = _unquote(kv.group(4)) if kv else line.strip().lstrip("-").strip()
        while parents and parents[-1][0] >= indent:
            parents.pop()
        scope = section + "/" + "/".join(k for _, k in parents)
        if kv and not value.strip("{[ "):
            parents.append((indent, key))  # a YAML/JSON parent: its children follow, deeper
            continue
        if not kv:
            # A YAML list item or a JSON array element: its owner is the nearest parent key.
            key = parents[-1][1] if parents else ""
        if key and _NOT_DEPENDENCY.search(key):
            continue
        what = key or "value"
        if _PLACEHOLDER.search(value):
            value = _PLACEHOLDER.split(value)[0]  # keep what comes before a template, if anything
        seen_spans: list[tuple[int, int]] = []
        for m in _URL.finditer(value):
            scheme = m.group(1).lower()
            netloc = m.group(2).rsplit("@", 1)[-1]  # user-info (and its password) dropped here
            seen_spans.append(m.span())
            for part in netloc.split(","):  # redis-sentinel://h1:26379,h2:26379
                hp = split_hostport(part, DEFAULT_PORTS.get(scheme))
                if hp:
                    add(hp[0], hp[1], lineno, what)
        addressy = bool(key) and bool(_ADDRESS_KEY.search(key.split(".")[-1]))
        for m in _BARE.finditer(value):
            if any(a <= m.start() < b for a, b in seen_spans):
                continue
            host = m.group(1).strip("[]")
            if not (addressy or _IPV4.match(host) or ":" in host or "." in host or host.lower() == "localhost"):
                continue
            hp = split_hostport(m.group(0))
            if hp:
                add(hp[0], hp[1], lineno, what)
        if kv and value:
            leaf = key.split(".")[-1]
            hm, pm = _HOST_SUFFIX.match(leaf), _PORT_SUFFIX.match(leaf)
            prefix_scope = scope + "/" + ".".join(key.split(".")[:-1])
            if pm and value.isdigit():
                pairs.setdefault((prefix_scope, pm.group(1).lower().strip("_.-")), {})["port"] = (value, lineno, key)
            elif hm and not _URL.search(value) and ":" not in value and "," not in value:
                pairs.setdefault((prefix_scope, hm.group(1).lower().strip("_.-")), {})["host"] = (value, lineno, key)
    for (_, prefix), slot in pairs.items():
        if "host" not in slot:
            continue
        hval, hline, hkey = slot["host"]
        if "port" in slot:
            pval, _, pkey = slot["port"]
            port, what = _port(pval), f"{hkey} + {pkey}"
        else:  # REDIS_HOST alone: the service's usual port
            port, what = _prefix_port(prefix), f"{hkey} (default port)"
        if port is not None and _valid_host(hval):
            add(hval.lower(), port, hline, what)
    return sorted(found.values(), key=lambda e: (e.line, e.host, e.port))
