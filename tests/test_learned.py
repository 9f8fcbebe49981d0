"""Likelihoods learned from incidents (ddx.kb.learned) and the temperature (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ddx.engine.inference import posterior, weights
from ddx.kb.learned import apply_learned, fit, learned_from_dict, learned_to_dict
from ddx.kb.loader import load_kb
from ddx.model import State

KB = load_kb(learned=False)
P, A = State.PRESENT, State.ABSENT


def test_incidents_move_a_hand_set_value_by_their_weight_against_the_prior() -> None:
    hand = KB.likelihood("disk-full", "logs.enospc")
    incidents = [("disk-full", {"logs.enospc": P})] * 3 + [("disk-full", {"logs.enospc": A})]
    v = fit(KB, incidents, n_listed=8.0, n_unlisted=4.0).values["disk-full"]["logs.enospc"]
    assert (v.present, v.absent, v.hand) == (3, 1, hand)
    assert v.learned == pytest.approx((8.0 * hand + 3) / 12.0, abs=1e-4)


def test_an_unlisted_finding_starts_from_its_leak_with_the_smaller_weight() -> None:
    leak = KB.findings["time.unsynchronized"].fp_rate
    assert "time.unsynchronized" not in KB.conditions["disk-full"].likelihoods
    v = fit(KB, [("disk-full", {"time.unsynchronized": P})], n_listed=8.0, n_unlisted=4.0
            ).values["disk-full"]["time.unsynchronized"]
    assert v.hand == leak and v.learned == pytest.approx((4.0 * leak + 1) / 5.0, abs=1e-4)


def test_unknown_findings_and_causes_outside_the_kb_teach_nothing() -> None:
    learned = fit(KB, [("leap-day-time-bomb", {"http.5xx_rate_high": P}),
                       ("disk-full", {"logs.enospc": State.UNKNOWN})])
    assert learned.values == {} and learned.cases == 2


def test_applying_keeps_hand_edits_made_since_the_fit() -> None:
    learned = fit(KB, [("disk-full", {"logs.enospc": P})] * 4)
    kb = apply_learned(KB, learned)
    assert kb.likelihood("disk-full", "logs.enospc") == learned.values["disk-full"]["logs.enospc"].learned
    edited = replace(KB, conditions={**KB.conditions, "disk-full": replace(
        KB.conditions["disk-full"], likelihoods={**KB.conditions["disk-full"].likelihoods, "logs.enospc": 0.42})})
    assert apply_learned(edited, learned).likelihood("disk-full", "logs.enospc") == 0.42


def test_the_file_round_trips_and_bad_values_name_their_field() -> None:
    learned = replace(fit(KB, [("disk-full", {"logs.enospc": P})]), temperature=1.3)
    again = learned_from_dict(learned_to_dict(learned))
    assert again == learned
    bad = learned_to_dict(learned)
    bad["conditions"]["disk-full"]["logs.enospc"]["learned"] = 2  # type: ignore[index]
    with pytest.raises(ValueError, match=r"conditions\.disk-full\.logs\.enospc\.learned"):
        learned_from_dict(bad)
    with pytest.raises(ValueError, match="temperature"):
        learned_from_dict({"temperature": "hot"})


def test_temperature_shrinks_the_evidence_not_the_priors() -> None:
    seen = {"disk.space_exhausted": P, "logs.enospc": P}
    kb1 = replace(KB, temperature=1.0)
    cold, warm = posterior(kb1, seen), posterior(replace(KB, temperature=2.0), seen)
    assert warm.probs["disk-full"] < cold.probs["disk-full"] and warm.unlisted > cold.unlisted
    assert posterior(replace(KB, temperature=2.0), {}).probs == posterior(kb1, {}).probs
    w1 = {w.finding: w.decibans for w in weights(kb1, "disk-full", seen)}
    w2 = {w.finding: w.decibans for w in weights(replace(KB, temperature=2.0), "disk-full", seen)}
    assert all(w2[f] == pytest.approx(w1[f] / 2.0) for f in w1)


def test_the_loader_applies_a_learned_file_and_names_a_broken_one(tmp_path, monkeypatch) -> None:
    import yaml

    from ddx.errors import KBError
    from ddx.kb import loader

    path = tmp_path / "learned.yaml"
    learned = replace(fit(KB, [("disk-full", {"logs.enospc": P})] * 4), temperature=1.5)
    path.write_text(yaml.safe_dump(learned_to_dict(learned)))
    monkeypatch.setattr(loader, "LEARNED_FILE", str(path))  # an absolute path wins over DATA_DIR
    kb = loader.load_kb()
    assert kb.temperature == 1.5
    assert kb.likelihood("disk-full", "logs.enospc") == learned.values["disk-full"]["logs.enospc"].learned
    # without the learned file, the temperature fitted for the hand-set values (calibration.yaml)
    assert loader.load_kb(learned=False).temperature == loader._temperature(loader.DATA_DIR / loader.CALIBRATION_FILE)
    path.write_text("temperature: [1, 2]\n")
    with pytest.raises(KBError, match="temperature"):
        loader.load_kb()
