"""Streaming log template miner: one pass, bounded memory, pure (no I/O).

Each message is masked (:mod:`ddx.logs.masking`), split on whitespace, and
assigned to a *cluster* of messages with the same number of tokens whose
*template* (the tokens, with ``<*>`` at variable positions, or ``key=<*>``) it
matches.

Why not plain Drain: Drain merges a message into the most similar cluster when
a fixed share of tokens agree, so two different events that differ in one word
("... failures for admin" / "... failures for root") merge, while a template
whose variable is a word (a user name) splits until the tree happens to catch
it. Here a position becomes variable only on evidence:

1. *Masked values.* Two messages that differ only where both hold masked values
   of the same shape (``rhost=<*>`` / ``rhost=<*>.example``) belong together;
   the generalised token keeps a common key (``rhost=<*>``). Such a cluster is
   found by one dict look-up on the *skeleton* (masked tokens replaced by their
   shape).
2. *Word variability* (the streaming form of Brain's per-position word
   frequency). Clusters identical except at one position are *siblings*; once
   a position has taken ``variable_threshold`` distinct values (4) among
   siblings, it is a variable and the siblings merge. Two or three values stay
   separate templates (``state LEADING`` / ``state LOOKING`` are different
   events). Values of different keys (``num=`` / ``top=``) are counted apart.
3. *Context words.* A word that preceded a position found variable (``user``
   in ``session closed for user <*>``) lowers the threshold by one where it
   precedes a position elsewhere (``session opened for user <*> by ...``).
4. *Subsumption.* When a template becomes more general, clusters it now covers
   merge into it.

A template keeps at least one constant word, and a merge by word variability
keeps two anchors (words or keys): one-word messages never merge into ``<*>``,
and a message of numbers only forms a template that matches only itself.

Matching is fast: templates are grouped in buckets by (token count, first
token); in a bucket, templates without wildcards are looked up by their text in
a dict, and the others are tried most frequent first, each a compiled regular
expression. The common case costs one masking ``re.sub``, one ``str.split``, a
dict look-up and one ``re.fullmatch``, all in C. There is no cache keyed by
whole messages. The slow path (a message no template matches) runs in Python
and is rare once the templates of a stream are known.

Identifiers: a template's id is a hash of its text (:func:`template_id`), so
the same template has the same id in another run or file. When a template
generalises, its id changes; in streaming use, lines already reported keep the
id they were given. Merged clusters are linked (union-find), so
:meth:`TemplateMiner.root` gives the final cluster of an earlier result.

Bounded memory (the caps, all per miner):

- at most ``max_clusters`` (3000) live clusters; when the cap is reached the
  least recently matched 10% are dropped (a template seen again later starts
  a new cluster, with the same id if it gets the same text);
- messages longer than ``max_tokens`` (128) tokens keep their first 127 tokens
  and a final ``<...>`` (a constant: the tail is ignored); a token longer than
  200 characters is a value (``<*>``), so a template is at most about 26 KB;
- word variables are looked for in the first 40 tokens only; the sibling index
  holds one entry per live cluster and position, dropped with the cluster, and
  is rebuilt from the live clusters if merges leave it three times too large;
- at most 4096 remembered context words and near-variable positions.

Worst case (every line a new template, e.g. random text): about 10,000 lines/s
and 45 MB for 30-word lines, 80 MB for 200-word lines.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from hashlib import blake2b

from ddx.logs.masking import WILDCARD, mask

__all__ = ["Cluster", "TemplateMiner", "template_id"]

WILD = WILDCARD
TRUNCATED = "<...>"  # the last token of a message cut at max_tokens
_LONG = 2000  # messages longer than this (masked) get their tokens checked for length
_MAX_TOKEN = 200  # a token longer than this is a value
_SIBLING_POSITIONS = 40  # word variables are looked for in the first 40 tokens (bounds memory)
_LETTERS3 = re.compile(r"[A-Za-z]{3,}")
_LETTER = re.compile(r"[A-Za-z]")


def template_id(template: str) -> str:
    """A stable 10-hex-digit id for a template text."""
    return blake2b(template.encode("utf-8", "replace"), digest_size=5).hexdigest()


class Cluster:
    """A group of messages sharing one template. Read-only for callers.

    ``template`` and ``template_id`` are the current values; ``count`` is the
    number of messages assigned, including clusters merged into this one.
    """

    __slots__ = ("tokens", "template", "template_id", "count", "parent", "last", "alive", "serial", "generic", "rx")

    def __init__(self, tokens: list[str], serial: int) -> None:
        self.tokens = [sys.intern(t) for t in tokens]  # words shared across templates are stored once
        self.template = " ".join(tokens)
        self.template_id = template_id(self.template)
        self.generic = _has_constant(tokens)
        self.rx: re.Pattern[str] | None = None  # compiled when first needed
        self.count = 0
        self.parent: Cluster | None = None  # set when merged into another (no self-reference: no cycle)
        self.last = 0
        self.alive = True
        self.serial = serial

    def __repr__(self) -> str:
        return f"Cluster({self.template_id}, {self.template!r}, count={self.count})"


class _Bucket:
    """Templates with one (token count, first token): literal ones in a dict by
    their text, the others in a list, most frequent first, each with its own
    compiled regular expression (so changing one template recompiles one)."""

    __slots__ = ("fixed", "clusters", "dirty")

    def __init__(self) -> None:
        self.fixed: dict[str, Cluster] = {}
        self.clusters: list[Cluster] = []
        self.dirty = False


def _token_regex(tok: str) -> str:
    if tok == WILD:
        return r"\S+"
    if WILD not in tok:
        return re.escape(tok)
    return r"\S*".join(re.escape(p) for p in tok.split(WILD))


_TOKEN_RE_CACHE: dict[str, re.Pattern[str]] = {}


def _token_matches(pattern: str, tok: str) -> bool:
    """Does template token ``pattern`` (constant or with ``<*>``) match ``tok``?"""
    if pattern == tok:
        return True
    if WILD not in pattern:
        return False
    if pattern == WILD:
        return True
    rx = _TOKEN_RE_CACHE.get(pattern)
    if rx is None:
        if len(_TOKEN_RE_CACHE) > 4096:
            _TOKEN_RE_CACHE.clear()
        rx = _TOKEN_RE_CACHE[pattern] = re.compile(_token_regex(pattern) + r"\Z")
    return rx.match(tok) is not None


def _generalise(a: str, b: str) -> str:
    """One template token covering tokens ``a`` and ``b``.

    Keeps a common prefix that ends at a non-alphanumeric character (a key such
    as ``rhost=`` or ``blk_``) and a common suffix of punctuation (a closing
    bracket or comma); the rest becomes ``<*>``.
    """
    if a == b:
        return a
    m = min(len(a), len(b))
    p = 0
    while p < m and a[p] == b[p]:
        p += 1
    while p > 0 and a[p - 1].isalnum():
        p -= 1
    pre = a[:p]
    if pre.endswith("<") or pre.endswith("<*"):
        pre = pre[: pre.rfind("<")]
    s = 0
    while s < m - p and a[-1 - s] == b[-1 - s] and not a[-1 - s].isalnum() and a[-1 - s] not in "<*>":
        s += 1
    suf = a[len(a) - s :] if s else ""
    if WILD in pre or not (pre or suf):  # a prefix of values is not a key
        return WILD
    return pre + WILD + suf


def _shape(tok: str) -> str:
    """The key of a ``key=value`` token (``"uid="``), else ``""``."""
    i = tok.find("=")
    return tok[: i + 1] if i > 0 else ""


def _skeleton(tokens: list[str]) -> str:
    """The tokens with each masked one replaced by its shape: equal skeletons
    differ only in masked values."""
    return "\x1f".join(("\x00" + _shape(t)) if WILD in t else t for t in tokens)


def _compatible(a: str, b: str) -> bool:
    """May tokens ``a`` and ``b``, both holding masked values, share a template token?"""
    if WILD not in a or WILD not in b:
        return False
    if _shape(a) != _shape(b):
        return False
    if _generalise(a, b) != WILD:
        return True
    # nothing in common: only when neither carries a word of its own
    return _LETTERS3.search(a.replace(WILD, " ")) is None and _LETTERS3.search(b.replace(WILD, " ")) is None


def _has_constant(tokens: list[str]) -> bool:
    return any(WILD not in t and _LETTER.search(t) for t in tokens)


def _constants(tokens: list[str]) -> int:
    """Tokens that anchor a template: constant words, or keys such as ``user=<*>``."""
    n = 0
    for t in tokens:
        if WILD in t:
            n += _LETTERS3.search(t.replace(WILD, " ")) is not None
        else:
            n += _LETTER.search(t) is not None
    return n


def _sibling_keys(toks: list[str]) -> Iterator[tuple[int, str, int]]:
    """(position, token, key) for each position where a sibling may differ.

    The key hashes the other tokens with their positions (prefix and suffix
    hash chains, so the cost is linear), and the key of a ``key=value`` token.
    """
    n = len(toks)
    pre = [0] * (n + 1)
    h = n
    for i, t in enumerate(toks):
        h = hash((h, t))
        pre[i + 1] = h
    suf = [0] * (n + 1)
    h = -n
    for i in range(n - 1, -1, -1):
        h = hash((toks[i], h))
        suf[i] = h
    for i, t in enumerate(toks[:_SIBLING_POSITIONS]):
        if t == WILD:
            continue
        key = pre[i] ^ suf[i + 1]
        eq = t.find("=")
        if eq > 0:
            key = hash((key, t[: eq + 1]))  # values of one key only
        yield i, t, key


class TemplateMiner:
    """Learns templates from a stream of messages; see the module docstring."""

    def __init__(
        self,
        *,
        variable_threshold: int = 4,
        max_clusters: int = 3000,
        max_tokens: int = 128,
        masker: Callable[[str], str] = mask,
    ) -> None:
        if variable_threshold < 2:
            raise ValueError("variable_threshold must be at least 2")
        self.variable_threshold = variable_threshold
        self.max_clusters = max(10, max_clusters)
        self.max_tokens = max(2, max_tokens)
        self._mask = masker
        self._buckets: dict[tuple[int, str | None], _Bucket] = {}
        self._by_len: dict[int, list[Cluster]] = {}
        self._skel: dict[str, list[Cluster]] = {}
        self._contexts: set[str] = set()  # words that preceded a position found variable
        self._sib_limit = 4 * self.max_clusters
        self._rebuilding = False
        self._siblings: dict[int, tuple[str, Cluster] | dict[str, Cluster]] = {}
        self._near: dict[int, str] = {}  # sibling sets one value short, by the word before
        self._live = 0
        self._serial = 0
        self._tick = 0
        self._empty = Cluster([], -1)
        self.evicted = 0

    # -- public -------------------------------------------------------------

    def add(self, message: str) -> Cluster:
        """Assign ``message`` to a cluster, learning from it; return the cluster.

        The returned cluster is the final one after any merge this message
        caused; read ``template``/``template_id`` right away for streaming use.
        """
        masked = self._mask(message)
        toks = masked.split()
        n = len(toks)
        if n == 0:
            self._empty.count += 1
            return self._empty
        if n > self.max_tokens or len(masked) > _LONG:
            toks = self._bound(toks)
            n = len(toks)
        joined = " ".join(toks)
        self._tick += 1
        c = self._lookup(n, toks[0], joined)
        if c is None:
            c = self._learn(toks)
        c.count += 1
        c.last = self._tick
        return c

    def match(self, message: str) -> Cluster | None:
        """The cluster whose template matches ``message``, without learning."""
        masked = self._mask(message)
        toks = masked.split()
        n = len(toks)
        if n == 0:
            return self._empty
        if n > self.max_tokens or len(masked) > _LONG:
            toks = self._bound(toks)
            n = len(toks)
        return self._lookup(n, toks[0], " ".join(toks))

    def _bound(self, toks: list[str]) -> list[str]:
        """At most ``max_tokens`` tokens of at most 200 characters: a longer
        token is a value (a blob), a longer message keeps its head."""
        if len(toks) > self.max_tokens:
            toks = toks[: self.max_tokens - 1]
            toks.append(TRUNCATED)
        return [t if len(t) <= _MAX_TOKEN else WILD for t in toks]

    @staticmethod
    def root(cluster: Cluster) -> Cluster:
        """The cluster that ``cluster`` was merged into (itself if none)."""
        c = cluster
        while c.parent is not None:
            c = c.parent
        while cluster.parent is not None and cluster.parent is not c:  # path compression
            nxt = cluster.parent
            cluster.parent = c
            cluster = nxt
        return c

    def clusters(self) -> Iterator[Cluster]:
        """The live clusters, most frequent first."""
        out = [c for g in self._by_len.values() for c in g]
        out.sort(key=lambda c: (-c.count, c.serial))
        return iter(out)

    def __len__(self) -> int:
        return self._live

    # -- fast path ----------------------------------------------------------

    def _lookup(self, n: int, first: str, joined: str) -> Cluster | None:
        buckets = self._buckets
        for key in ((n, first), (n, None)):
            b = buckets.get(key)
            if b is None:
                continue
            c = b.fixed.get(joined)
            if c is not None:
                return c
            if b.dirty:
                b.clusters.sort(key=lambda c: -c.count)
                b.dirty = False
            for c in b.clusters:
                rx = c.rx
                if rx is None:
                    rx = c.rx = re.compile(" ".join(_token_regex(t) for t in c.tokens))
                if rx.fullmatch(joined) is not None:
                    return c
        return None

    # -- slow path ----------------------------------------------------------

    def _learn(self, toks: list[str]) -> Cluster:
        # A cluster that differs only where both hold masked values of the same
        # shape has the same skeleton: found by one dict look-up.
        for c in sorted(self._skel.get(_skeleton(toks), ()), key=lambda c: -c.count):
            if c.generic:
                merged = self._try_generalise(c, toks)
                if merged is not None:
                    return merged
        c = Cluster(toks, self._serial)
        self._serial += 1
        self._insert(c)
        self._absorb(c)
        self._register(c)
        if self._live > self.max_clusters:
            self._evict()
        return self.root(c)

    def _try_generalise(self, c: Cluster, toks: list[str]) -> Cluster | None:
        new = list(c.tokens)
        changed = False
        for i, (a, b) in enumerate(zip(c.tokens, toks)):
            if a == b or (WILD in a and _token_matches(a, b)):
                continue
            if not _compatible(a, b):
                return None
            new[i] = _generalise(a, b)
            changed = True
        if not changed or not _has_constant(new):
            return None
        self._update(c, new)
        return self.root(c)

    def _update(self, c: Cluster, tokens: list[str]) -> None:
        """Give ``c`` a more general template; absorb what it now covers."""
        self._remove_from_bucket(c)
        self._unindex(c)
        c.tokens = tokens
        c.template = " ".join(tokens)
        c.template_id = template_id(c.template)
        c.generic = _has_constant(tokens)
        self._add_to_bucket(c)
        self._index(c)
        self._absorb(c)
        self._register(c)

    def _absorb(self, c: Cluster) -> None:
        """Merge into ``c`` the clusters of the same length its template covers."""
        ct = c.tokens
        if not any(WILD in t for t in ct) or not _has_constant(ct):
            return
        if WILD in ct[0]:
            others: list[Cluster] = list(self._by_len.get(len(ct), ()))
        else:  # only clusters with the same first token can be covered
            b = self._buckets.get((len(ct), ct[0]))
            others = [*b.fixed.values(), *b.clusters] if b is not None else []
        for o in others:
            if o is c:
                continue
            if all(a == b or _token_matches(a, b) for a, b in zip(ct, o.tokens)):
                self._kill(o, c)

    def _kill(self, o: Cluster, into: Cluster) -> None:
        self._remove(o)
        o.parent = into
        into.count += o.count
        if o.last > into.last:
            into.last = o.last

    def _register(self, c: Cluster) -> None:
        """Record ``c`` as a sibling at each position; merge when a position varies enough.

        The sibling index maps a hash of (length, position, the other tokens,
        the key of a ``key=value`` token) to the values seen there: one
        ``(value, cluster)`` pair, or a dict once there are two.
        """
        toks = c.tokens
        sib = self._siblings
        contexts = self._contexts
        k = self.variable_threshold
        for i, t, key in _sibling_keys(toks):
            e = sib.get(key)
            if e is None or (type(e) is tuple and e[0] == t):
                sib[key] = (t, c)
                continue
            if isinstance(e, tuple):
                d: dict[str, Cluster] = {e[0]: e[1], t: c}
                sib[key] = d
            else:
                d = e
                d[t] = c
            prev = toks[i - 1] if i else None
            need = k - 1 if prev in contexts else k  # the word before announces a variable ("user <*>")
            if len(d) >= need:
                if self._merge_siblings(c, i, key):  # noqa: SIM102
                    return  # c changed; _update registered it again
            elif prev is not None and len(d) == k - 1 and len(self._near) < 4096:
                self._near[key] = prev
        if len(sib) > self._sib_limit and not self._rebuilding:
            self._rebuild_siblings()

    def _merge_siblings(self, c: Cluster, i: int, key: int) -> bool:
        d = self._siblings.get(key)
        if not isinstance(d, dict):
            return False
        values = list(d)
        tok = values[0]
        for v in values[1:]:
            tok = _generalise(tok, v)
        ct = c.tokens
        new = ct[:i] + [tok] + ct[i + 1 :]
        if _constants(new) < 2:
            return False
        rest = ct[:i] + ct[i + 1 :]
        members: list[Cluster] = []
        for o in d.values():
            o = self.root(o)
            if o.alive and o not in members and o.tokens[:i] + o.tokens[i + 1 :] == rest:
                members.append(o)
        self._siblings[key] = (tok, c)
        self._near.pop(key, None)
        learned = None
        if i and WILD not in ct[i - 1] and ct[i - 1] not in self._contexts and len(self._contexts) < 4096:
            learned = ct[i - 1]
            self._contexts.add(learned)
        target = max(members, key=lambda o: (o.count, -o.serial)) if members else c
        for o in members:
            if o is not target:
                self._kill(o, target)
        self._update(target, target.tokens[:i] + [tok] + target.tokens[i + 1 :])
        if learned is not None:
            self._recheck(learned)
        return True

    def _recheck(self, word: str) -> None:
        """A word just became a variable context: positions after it that were
        one value short may now be variables."""
        for key, prev in list(self._near.items()):
            if prev != word:
                continue
            d = self._siblings.get(key)
            if not isinstance(d, dict):
                self._near.pop(key, None)
                continue
            for o in d.values():
                o = self.root(o)
                if not o.alive:
                    continue
                i = next((j for j in range(1, len(o.tokens)) if o.tokens[j - 1] == word and o.tokens[j] in d), None)
                if i is not None:
                    self._merge_siblings(o, i, key)
                    break

    def _unregister(self, c: Cluster) -> None:
        sib = self._siblings
        for _, t, key in _sibling_keys(c.tokens):
            e = sib.get(key)
            if e is None:
                continue
            if type(e) is tuple:
                if e[1] is c:
                    del sib[key]
            elif e.get(t) is c:  # type: ignore[union-attr]
                del e[t]  # type: ignore[union-attr]

    def _rebuild_siblings(self) -> None:
        """Forget sibling records of dropped or merged clusters (bounds memory)."""
        self._siblings = {}
        self._near = {}
        limit = self.variable_threshold
        self.variable_threshold = 1 << 30  # no merging while re-registering
        self._rebuilding = True
        try:
            for g in self._by_len.values():
                for c in g:
                    self._register(c)
        finally:
            self.variable_threshold = limit
            self._rebuilding = False
        self._sib_limit = max(4 * self.max_clusters, 3 * len(self._siblings))

    # -- bookkeeping --------------------------------------------------------

    def _key(self, c: Cluster) -> tuple[int, str | None]:
        first = c.tokens[0]
        return (len(c.tokens), None if WILD in first else first)

    def _add_to_bucket(self, c: Cluster) -> None:
        key = self._key(c)
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket()
        if WILD not in c.template or not c.generic:
            b.fixed[c.template] = c
        else:
            c.rx = None
            b.clusters.append(c)
            b.dirty = True

    def _remove_from_bucket(self, c: Cluster) -> None:
        key = self._key(c)
        b = self._buckets.get(key)
        if b is None:
            return
        if b.fixed.get(c.template) is c:
            del b.fixed[c.template]
        else:
            try:
                b.clusters.remove(c)
            except ValueError:
                return
        if not b.clusters and not b.fixed:
            del self._buckets[key]

    def _index(self, c: Cluster) -> None:
        self._skel.setdefault(_skeleton(c.tokens), []).append(c)

    def _unindex(self, c: Cluster) -> None:
        key = _skeleton(c.tokens)
        lst = self._skel.get(key)
        if lst is not None and c in lst:
            lst.remove(c)
            if not lst:
                del self._skel[key]

    def _insert(self, c: Cluster) -> None:
        self._by_len.setdefault(len(c.tokens), []).append(c)
        self._add_to_bucket(c)
        self._index(c)
        self._live += 1

    def _remove(self, c: Cluster) -> None:
        self._remove_from_bucket(c)
        self._unindex(c)
        g = self._by_len.get(len(c.tokens))
        if g is not None:
            g.remove(c)
            if not g:
                del self._by_len[len(c.tokens)]
        c.alive = False
        self._live -= 1

    def _evict(self) -> None:
        """Drop the least recently matched 10% of clusters."""
        every = [c for g in self._by_len.values() for c in g]
        every.sort(key=lambda c: c.last)
        for c in every[: max(1, len(every) // 10)]:
            self._remove(c)
            self._unregister(c)
            self.evicted += 1
