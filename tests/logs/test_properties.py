"""Properties of masking and mining on generated messages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ddx.logs.masking import mask
from ddx.logs.miner import TemplateMiner

WORDS = ["user", "alice", "bob", "carol", "dave", "failed", "from", "port", "session", "opened",
         "closed", "rhost=", "uid=", "state", "LEADING", "LOOKING", "error", "[preauth]", "disk", "full"]
token = st.one_of(
    st.sampled_from(WORDS),
    st.integers(-10**12, 10**12).map(str),
    st.sampled_from(WORDS).flatmap(lambda w: st.integers(0, 999).map(lambda i: f"{w}{i}")),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
)
message = st.lists(token, min_size=0, max_size=12).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_masking_is_idempotent_and_total(text):
    once = mask(text)
    assert mask(once) == once


@settings(max_examples=150, deadline=None)
@given(st.lists(message, min_size=1, max_size=60))
def test_every_message_stays_covered_by_a_template(messages):
    m = TemplateMiner()
    for x in messages:
        m.add(x)
    for x in messages:
        c = m.match(x)
        assert c is not None, x
        assert c.alive or c.template == ""


@settings(max_examples=100, deadline=None)
@given(st.lists(message, min_size=1, max_size=60))
def test_mining_is_deterministic(messages):
    a, b = TemplateMiner(), TemplateMiner()
    assert [a.add(x).template_id for x in messages] == [b.add(x).template_id for x in messages]


@settings(max_examples=100, deadline=None)
@given(st.lists(message, min_size=1, max_size=80))
def test_counts_add_up(messages):
    m = TemplateMiner()
    empty = 0
    for x in messages:
        c = m.add(x)
        empty += c.template == "" and not c.tokens
    assert sum(c.count for c in m.clusters()) + empty == len(messages)
