"""The inference engine and next-check ranking: properties and behaviour."""

from __future__ import annotations

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ddx.engine.checks import rank_checks
from ddx.engine.diagnosis import diagnose
from ddx.engine.inference import (
    implied_by_present,
    posterior,
    unlisted_likelihood,
    weights,
)
from ddx.kb.loader import load_kb
from ddx.kb.model import Check, Condition, FindingDef, KnowledgeBase, Outcome
from ddx.model import Finding, State

KB = load_kb()
FIDS = sorted(KB.findings)
STATES = st.sampled_from([State.PRESENT, State.ABSENT, State.UNKNOWN])
OBS = st.dictionaries(st.sampled_from(FIDS), STATES, max_size=25)


@settings(max_examples=200, deadline=None)
@given(OBS)
def test_probabilities_are_a_distribution(obs):
    post = posterior(KB, obs)
    assert all(0.0 <= p <= 1.0 for p in post.probs.values())
    assert 0.0 <= post.unlisted <= 1.0
    assert sum(post.probs.values()) <= 1.0 + 1e-9
    assert math.isclose(sum(post.probs.values()) + post.unlisted, 1.0, rel_tol=1e-9)


@settings(max_examples=200, deadline=None)
@given(OBS, st.lists(st.sampled_from(FIDS), max_size=10))
def test_unknown_findings_change_nothing(obs, extra):
    with_unknown = dict(obs)
    for f in extra:
        with_unknown.setdefault(f, State.UNKNOWN)
    assert posterior(KB, obs) == posterior(KB, with_unknown)


@settings(max_examples=300, deadline=None)
@given(OBS, st.sampled_from(sorted(KB.conditions)), st.sampled_from(FIDS))
def test_a_predicted_finding_raises_the_odds_against_unlisted(obs, cid, fid):
    """A present finding that C predicts more often than a cause not in the knowledge base
    would (the conditions' average) raises C's odds against it (the weight-of-evidence
    property), and never lowers C's probability when no rival predicts the finding more
    strongly."""
    p = KB.likelihood(cid, fid)
    leak = unlisted_likelihood(KB, fid)
    base = {k: v for k, v in obs.items() if k != fid}
    before, after = posterior(KB, base), posterior(KB, {**base, fid: State.PRESENT})
    odds_before = before.probs[cid] / before.unlisted
    odds_after = after.probs[cid] / after.unlisted
    if p > leak:
        assert odds_after >= odds_before * (1 - 1e-9)
        strongest = max([KB.likelihood(c, fid) for c in KB.conditions] + [leak])
        if p >= strongest:
            assert after.probs[cid] >= before.probs[cid] - 1e-12
    elif p < leak:
        assert odds_after <= odds_before * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(OBS)
def test_explanations_match_the_posterior(obs):
    """The weights shown for C add up to C's log likelihood ratio against a cause that lists
    none of the findings (every finding at its leak), and C's posterior odds against any
    rival move by the difference of their sums."""
    post = posterior(KB, obs)
    implied = implied_by_present(KB, obs)
    known = [(f, s) for f, s in obs.items() if s is not State.UNKNOWN and f not in implied]

    def loglik(cid: str) -> float:
        total = 0.0
        for f, s in known:
            p = KB.likelihood(cid, f)
            total += math.log10(p if s is State.PRESENT else 1 - p)
        return total

    def leaklik() -> float:
        total = 0.0
        for f, s in known:
            p = KB.findings[f].fp_rate
            total += math.log10(p if s is State.PRESENT else 1 - p)
        return total

    sums = {}
    for cid in ("disk-full", "hardware-fault", "connection-limit"):
        ws = weights(KB, cid, obs)
        sums[cid] = sum(w.decibans for w in ws)
        assert math.isclose(sums[cid], 10 * (loglik(cid) - leaklik()) / KB.temperature, abs_tol=0.05 * max(1, len(ws)))
    a, b = "disk-full", "hardware-fault"
    odds = 10 * math.log10(post.probs[a] / post.probs[b] / (KB.conditions[a].prior / KB.conditions[b].prior))
    assert math.isclose(sums[a] - sums[b], odds, abs_tol=0.1 * max(1, len(known)))


STRENGTHS = st.dictionaries(st.sampled_from(FIDS), st.floats(0.5, 1.0), max_size=25)


@settings(max_examples=200, deadline=None)
@given(OBS, STRENGTHS)
def test_soft_findings_keep_a_distribution_and_weights_add_up(obs, strengths):
    post = posterior(KB, obs, strengths)
    assert math.isclose(sum(post.probs.values()) + post.unlisted, 1.0, rel_tol=1e-9)
    # the difference of two conditions' weights is how far the evidence moved their odds
    a, b = "disk-full", "hardware-fault"
    diff = sum(w.decibans for w in weights(KB, a, obs, strengths)) - sum(w.decibans for w in weights(KB, b, obs, strengths))
    expected_db = 10 * math.log10(post.probs[a] / post.probs[b] / (KB.conditions[a].prior / KB.conditions[b].prior))
    assert math.isclose(diff, expected_db, abs_tol=0.1 * max(1, len(obs)))


@settings(max_examples=200, deadline=None)
@given(OBS, st.sampled_from(FIDS), st.sampled_from([State.PRESENT, State.ABSENT]))
@example({"memory.oom_kill": State.PRESENT}, "memory.oom_kills_repeated", State.PRESENT)  # it implies oom_kill
def test_a_finding_of_strength_one_half_tells_nothing(obs, fid, state):
    base = {k: v for k, v in obs.items() if k != fid}
    soft = posterior(KB, {**base, fid: state}, {fid: 0.5})
    plain = posterior(KB, base)
    for cid in KB.conditions:
        assert math.isclose(soft.probs[cid], plain.probs[cid], rel_tol=1e-9, abs_tol=1e-15)


@settings(max_examples=200, deadline=None)
@given(OBS, st.sampled_from(sorted(KB.conditions)), st.sampled_from(FIDS), st.floats(0.5, 1.0), st.floats(0.5, 1.0))
def test_a_firmer_finding_moves_the_odds_further(obs, cid, fid, s1, s2):
    """Between no information (0.5) and a plain observation (1), the weight of a finding
    for a condition grows with its strength, in the same direction."""
    lo, hi = sorted((s1, s2))
    base = {k: v for k, v in obs.items() if k != fid}
    obs2 = {**base, fid: State.PRESENT}

    def log_odds(s: float) -> float:
        post = posterior(KB, obs2, {fid: s})
        return math.log(post.probs[cid] / post.unlisted)

    neutral, weak, firm = log_odds(0.5), log_odds(lo), log_odds(hi)
    assert abs(firm - neutral) >= abs(weak - neutral) - 1e-9
    assert (firm - neutral) * (weak - neutral) >= -1e-12


def test_no_evidence_is_not_confident():
    post = posterior(KB, {})
    top = max(post.probs.values())
    assert top < 0.2  # the priors alone: no cause stands out
    assert post.unlisted >= 0.1


def test_unmatched_evidence_leaves_a_large_unlisted_share():
    """Symptoms that no condition explains better than its leak do not produce a confident answer."""
    obs = {"http.5xx_rate_high": State.PRESENT, "http.latency_high": State.PRESENT, "logs.error_burst": State.PRESENT}
    post = posterior(KB, obs)
    assert max(post.probs.values()) < 0.5


def test_evidence_that_no_single_condition_explains_raises_the_unlisted_share():
    """Three symptoms, each the mark of a different condition: no condition explains them
    together, so a cause outside the knowledge base gains; one condition's three marks
    make that condition the answer."""
    fids = ("s.a1", "s.a2", "s.a3", "s.b1", "s.c1")
    findings = {f: FindingDef(f, f, 0.03) for f in fids}
    conds = {
        "a": Condition("a", "A", "a", 0.3, {"s.a1": 0.8, "s.a2": 0.8, "s.a3": 0.8}, ()),
        "b": Condition("b", "B", "b", 0.3, {"s.b1": 0.8}, ()),
        "c": Condition("c", "C", "c", 0.3, {"s.c1": 0.8}, ()),
    }
    kb = KnowledgeBase(findings, conds, {}, unlisted_prior=0.1)
    fits = posterior(kb, {f: State.PRESENT for f in ("s.a1", "s.a2", "s.a3")})
    scattered = posterior(kb, {f: State.PRESENT for f in ("s.a1", "s.b1", "s.c1")})
    assert fits.ranked()[0] == ("a", fits.probs["a"]) and fits.probs["a"] > 0.9
    assert scattered.unlisted > 0.5 > fits.unlisted * 10
    assert scattered.unlisted > max(scattered.probs.values())


def test_diagnosis_is_deterministic():
    findings = [Finding("procs.crash_loop", State.PRESENT, "cli"), Finding("disk.space_exhausted", State.ABSENT, "cli")]
    a = diagnose(KB, findings)
    b = diagnose(KB, list(reversed(findings)))
    assert a == b


def _toy_kb(checks: list[Check]) -> KnowledgeBase:
    findings = {f: FindingDef(f, f, 0.05) for f in ("s.common", "s.a_only", "s.b_only", "s.a_more")}
    conds = {
        "a": Condition("a", "A", "a", 0.4, {"s.common": 0.9, "s.a_only": 0.9, "s.b_only": 0.02, "s.a_more": 0.9}, ("x",)),
        "b": Condition("b", "B", "b", 0.4, {"s.common": 0.9, "s.a_only": 0.02, "s.b_only": 0.9, "s.a_more": 0.6}, ("y",)),
    }
    return KnowledgeBase(findings, conds, {c.id: c for c in checks}, unlisted_prior=0.2)


def _check(cid: str, reveals: tuple[str, ...], cost: float = 30.0, cond: str = "a") -> Check:
    return Check(cid, cid, ("true",), (Outcome("x", "y"),), cost, True, reveals, cond)


def test_a_check_that_separates_the_leaders_beats_one_that_confirms_the_leader():
    kb = _toy_kb([_check("confirm", ("s.a_more",)), _check("separate", ("s.a_only",))])
    obs = {"s.common": State.PRESENT}
    advice = rank_checks(kb, obs, posterior(kb, obs))
    assert [a.check.id for a in advice] == ["separate", "confirm"]
    assert set(advice[0].tests) == {"a", "b"}


def test_cost_matters():
    kb = _toy_kb([_check("slow", ("s.a_only",), cost=3600), _check("fast", ("s.b_only",), cost=10, cond="b")])
    obs = {"s.common": State.PRESENT}
    assert rank_checks(kb, obs, posterior(kb, obs))[0].check.id == "fast"


def test_checks_whose_findings_are_known_are_not_proposed():
    kb = _toy_kb([_check("separate", ("s.a_only",))])
    obs = {"s.common": State.PRESENT, "s.a_only": State.ABSENT}
    assert rank_checks(kb, obs, posterior(kb, obs)) == []


def test_dominant_leader_gets_its_confirming_check_first():
    findings = [Finding("tls.cert_expired", State.PRESENT, "cli"), Finding("logs.tls_errors", State.PRESENT, "cli")]
    d = diagnose(KB, findings)
    assert d.hypotheses[0].id == "tls-certificate-expired" and d.hypotheses[0].probability > 0.9
    assert d.next_checks[0].purpose == "confirm"
    assert d.next_checks[0].check.id == "tls-expiry"


def test_weights_explain_for_and_against():
    obs = {"disk.space_exhausted": State.PRESENT, "logs.enospc": State.ABSENT}
    ws = {w.finding: w.decibans for w in weights(KB, "disk-full", obs)}
    assert ws["disk.space_exhausted"] > 10
    assert ws["logs.enospc"] < -3
