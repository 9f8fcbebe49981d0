"""Next best checks: expected information gain per unit of cost.

For a check, the outcomes are the joint states of the findings it reveals that
are still unknown. Under the same model as ``inference`` the check's expected
gain is the mutual information between its outcome and the cause (conditions
plus the unlisted hypothesis), in bits. Checks are ranked by gain per minute of
cost, where cost is the engineer's time plus a fixed overhead for switching to
any check at all (so a 1-second check that tells nothing does not beat a
30-second check that settles the question).

A check that separates the two leading hypotheses has a large gain; one that
only confirms the leader a little more has a small one, because it hardly
moves the distribution.

The first check. An engineer runs the first command and stops reading, so
the first one must tell apart the causes that lead, not merely be informative
about the differential as a whole (a certificate check that would settle a
cause at 2% can carry more bits than the one that separates the two causes at
60% and 25%). When no cause dominates, the first check is the one with the
most information about "the leader or the runner-up" (the mutual information
between its outcome and that binary question, under the two causes'
renormalised probabilities) per minute of cost, among the checks with at least
``SEPARATES_MIN`` of it, marked ``purpose="separate"``; the rest follow by
their gain per minute. When one cause already dominates (probability >=
``CONFIRM_AT``) there is little left to separate, and what an engineer needs
is the command that confirms and localises it before acting: the best of the
leader's own checks comes first, marked ``purpose="confirm"``.

Commands are filled with this host's facts (``ddx.engine.facts``): the real
log path, host, port and certificate; a value ddx did not find stays a named
placeholder (``<app_log>``), listed in ``unfilled``.

A check *tests* a condition when one of its reasonably likely outcomes would
move that condition's probability by at least ``TESTS_MIN_SHIFT``, or when a
finding it reveals bears directly on a condition that is still in play.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ddx.engine.facts import Facts, fill_all
from ddx.engine.inference import DB, Posterior, entropy, likelihood_row
from ddx.kb.model import Check, KnowledgeBase
from ddx.model import State

__all__ = ["CHECK_OVERHEAD_S", "CONFIRM_AT", "SEPARATES_MIN", "CheckAdvice", "rank_checks", "separation"]

CHECK_OVERHEAD_S = 30.0  # reading the advice, opening a shell, reading the answer
CONFIRM_AT = 0.9  # above this the leader's own confirming check comes first
MAX_FINDINGS_PER_CHECK = 8  # enumerate at most 2**8 outcomes
TESTS_MIN_SHIFT = 0.05  # an outcome moves the condition by 5 percentage points or more
TESTS_MIN_OUTCOME = 0.01  # ... and that outcome has at least a 1% chance
TESTS_MIN_DB = 3.0  # or a revealed finding weighs >= 3 dB for a condition ...
TESTS_MIN_PROB = 0.01  # ... that still has at least 1%
SEPARATES_MIN = 0.02  # bits about "the leader or the runner-up" a first check must carry at least


@dataclass(frozen=True)
class CheckAdvice:
    check: Check
    gain: float  # expected information gain in bits
    score: float  # gain per minute of cost (with the overhead)
    tests: tuple[str, ...]  # conditions the check helps confirm or rule out, most probable first
    unknown: tuple[str, ...]  # the findings it would reveal that are still unknown
    purpose: str = "discriminate"  # or "confirm", or "separate" (the first: it tells the two leaders apart)
    commands: tuple[str, ...] = ()  # the check's commands with this host's facts filled in
    unfilled: tuple[str, ...] = ()  # facts ddx did not find, left as <name> in the commands
    separation: float = 0.0  # expected information about "the leader or the runner-up", in bits

    @property
    def run(self) -> tuple[str, ...]:
        """What to paste: the filled commands (the check's own when none were filled)."""
        return self.commands or self.check.run


def _outcomes(rows: list[list[float]], prior: list[float]) -> list[tuple[float, list[float]]]:
    """(probability, posterior) for every joint outcome of the revealed findings."""
    out = []
    for outcome in itertools.product((True, False), repeat=len(rows)):
        joint = list(prior)
        for present, row in zip(outcome, rows):
            for i, p in enumerate(row):
                joint[i] *= p if present else (1.0 - p)
        p_out = sum(joint)
        if p_out > 0.0:
            out.append((p_out, [x / p_out for x in joint]))
    return out


def _h2(p: float) -> float:
    return entropy((p, 1.0 - p))


def separation(outcomes: list[tuple[float, list[float]]], prior: list[float], i: int, j: int) -> float:
    """Mutual information (bits) between a check's outcome and "cause i or cause j",
    given that it is one of the two: how well the check tells them apart."""
    pair = prior[i] + prior[j]
    if pair <= 0.0:
        return 0.0
    before = _h2(prior[i] / pair)
    after = 0.0
    for p_out, post in outcomes:
        mass = post[i] + post[j]
        if mass <= 0.0:
            continue
        after += (p_out * mass / pair) * _h2(post[i] / mass)
    return max(0.0, before - after)


def _advice(
    kb: KnowledgeBase, check: Check, observed: Mapping[str, State], order: list[str], prior: list[float],
    ranked: list[str], probs: Mapping[str, float], purpose: str = "discriminate",
) -> CheckAdvice:
    unknown = tuple(f for f in dict.fromkeys(check.reveals) if observed.get(f, State.UNKNOWN) is State.UNKNOWN)
    rows = [likelihood_row(kb, f, order) for f in unknown[:MAX_FINDINGS_PER_CHECK]]
    outcomes = _outcomes(rows, prior) if rows else []
    expected = sum(p * entropy(post) for p, post in outcomes)
    gain = max(0.0, entropy(prior) - expected) if outcomes else 0.0
    moved: set[str] = {check.condition} if check.condition in kb.conditions else set()
    for p_out, post in outcomes:
        if p_out < TESTS_MIN_OUTCOME:
            continue
        for i, cid in enumerate(order):
            if abs(post[i] - prior[i]) >= TESTS_MIN_SHIFT:
                moved.add(cid)
    for fid in check.reveals:
        leak = kb.findings[fid].fp_rate
        for cid in ranked:
            p = kb.conditions[cid].likelihoods.get(fid)
            if p is None or probs[cid] < TESTS_MIN_PROB:
                continue
            w = max(abs(DB * math.log(p / leak)), abs(DB * (math.log1p(-p) - math.log1p(-leak))))
            if w >= TESTS_MIN_DB:
                moved.add(cid)
    score = gain / ((check.cost + CHECK_OVERHEAD_S) / 60.0)
    tests = tuple(c for c in ranked if c in moved)
    sep = 0.0
    if len(ranked) >= 2 and outcomes:
        sep = separation(outcomes, prior, order.index(ranked[0]), order.index(ranked[1]))
    return CheckAdvice(check, gain, score, tests, unknown, purpose, separation=sep)


def rank_checks(
    kb: KnowledgeBase, observed: Mapping[str, State], post: Posterior, *, limit: int = 3, facts: Facts | None = None,
) -> list[CheckAdvice]:
    """The best checks to do next, best first (deterministic order; the first rule
    in the module docstring), their commands filled with ``facts``."""
    order = sorted(kb.conditions)
    prior = post.as_vector(order)
    ranked = [c for c, _ in post.ranked()]
    out: list[CheckAdvice] = []
    for cid in sorted(kb.checks):
        check = kb.checks[cid]
        if all(observed.get(f, State.UNKNOWN) is not State.UNKNOWN for f in check.reveals):
            continue
        advice = _advice(kb, check, observed, order, prior, ranked, post.probs)
        if advice.gain > 1e-9:
            out.append(advice)
    out.sort(key=lambda a: (-round(a.score, 12), a.check.id))
    if ranked and post.probs[ranked[0]] >= CONFIRM_AT:
        leader = kb.conditions[ranked[0]]
        confirm = [
            _advice(kb, kb.checks[c], observed, order, prior, ranked, post.probs, "confirm") for c in leader.checks
        ]
        # the leader's most informative check; its first listed one when none tells anything more
        best = max(enumerate(confirm), key=lambda ia: (round(ia[1].score, 12), -ia[0]))[1]
        out = [best] + [a for a in out if a.check.id != best.check.id]
    else:
        separating = [a for a in out if a.separation >= SEPARATES_MIN]
        if separating:
            best = max(separating, key=lambda a: (round(a.separation / (a.check.cost + CHECK_OVERHEAD_S), 12),
                                                   round(a.score, 12), a.check.id))
            out = [replace(best, purpose="separate")] + [a for a in out if a.check.id != best.check.id]
    out = out[:limit] if limit else out
    return [_filled(a, facts) for a in out]


def _filled(a: CheckAdvice, facts: Facts | None) -> CheckAdvice:
    commands, unfilled = fill_all(a.check.run, facts)
    return replace(a, commands=tuple(commands), unfilled=tuple(unfilled))
