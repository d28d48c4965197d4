"""Questions as people type them: acronyms the corpus defines, typos, and the rewritten question shown."""

from __future__ import annotations

from jn_qa import acronyms, query
from jn_qa.spelling import Speller, vocabulary

TEXTS = [
    "Japan and NATO agreed the Individual Partnership and Cooperation Programme (IPCP) in 2014. "
    "The North Atlantic Treaty Organization (NATO) welcomed it.",
    "Under the IPCP, Japan joined NATO exercises of the Cooperative Cyber Defence Centre of Excellence (CCDCOE).",
    "NATO partners met in Vilnius; the summit discussed NATO's partners in the Indo-Pacific.",
    "NATO and Japan signed the Individually Tailored Partnership Programme (ITPP) in 2023 in Vilnius.",
    "NATO budgets rose after 2022.",
]


def test_mines_definitions_stated_in_the_corpus() -> None:
    table = acronyms.mine(TEXTS)
    assert table["IPCP"] == "Individual Partnership and Cooperation Programme"
    assert table["CCDCOE"] == "Cooperative Cyber Defence Centre of Excellence"
    assert table["ITPP"] == "Individually Tailored Partnership Programme"
    assert table["NATO"] == "North Atlantic Treaty Organization"


def test_rejects_parentheses_that_are_not_definitions() -> None:
    table = acronyms.mine(["Japan's defence spending rose sharply (GDP) last year.", "He spoke at length (MP)."])
    assert "GDP" not in table and "MP" not in table


def test_expands_both_ways_but_keeps_acronyms_every_source_uses() -> None:
    table = acronyms.mine(TEXTS)
    keep = acronyms.common(TEXTS, table)
    assert keep == ["NATO"]
    assert acronyms.expansions("When was the IPCP agreed?", table, keep) == [
        ("IPCP", "Individual Partnership and Cooperation Programme")
    ]
    assert acronyms.expansions("what did the individual partnership and cooperation programme do", table, keep) == [
        ("Individual Partnership and Cooperation Programme", "IPCP")
    ]
    assert acronyms.expansions("Is it IT?", table, keep) == []  # case matters for short forms
    assert acronyms.expansions("What does NATO do?", table, keep) == []


def test_typos_are_corrected_to_corpus_words_only() -> None:
    speller = Speller(vocabulary(TEXTS))
    assert speller.correct("When did Japn join the summit in Vilnus?") == (
        "When did Japan join the summit in Vilnius?",
        [speller_fix("Japn", "Japan"), speller_fix("Vilnus", "Vilnius")],
    )
    assert speller.correct_word("Tokyo") is None  # unknown but nothing close: left as typed
    assert speller.correct_word("join") is None  # known words are never touched
    assert speller.correct_word("the") is None


def speller_fix(typed: str, corrected: str):
    from jn_qa.spelling import Correction

    return Correction(typed, corrected)


def test_plan_records_every_rewrite() -> None:
    table = acronyms.mine(TEXTS)
    p = query.plan("When was the IPCP agred?", Speller(vocabulary(TEXTS)), table, acronyms.common(TEXTS, table))
    assert p.text == "When was the IPCP agreed?"
    assert p.searched_for == "When was the IPCP agreed? (IPCP = Individual Partnership and Cooperation Programme)"
    assert p.extra_terms == ()  # the short form is in the question; the index tags the long form with it
    assert [(r.kind, r.typed, r.meant) for r in p.rewrites] == [
        ("typo", "agred", "agreed"),
        ("acronym", "IPCP", "Individual Partnership and Cooperation Programme"),
    ]
    assert query.plan("Who is in NATO?", None, table, ["NATO"]).searched_for is None
    spelled = query.plan("What did the Cooperative Cyber Defence Centre of Excellence teach?", None, table, [])
    assert spelled.extra_terms == ("CCDCOE",)


def test_passages_that_spell_an_acronym_out_are_tagged_with_it() -> None:
    table = acronyms.mine(TEXTS)
    assert acronyms.tagged("Japan joined the Cooperative Cyber Defence Centre of Excellence in 2019.", table) == [
        "CCDCOE"
    ]
    assert acronyms.tagged("Japan joined the centre in 2019.", table) == []


def test_the_tagger_finds_every_long_form_a_text_spells_out_in_the_tables_order() -> None:
    table = {
        "NATO": "North Atlantic Treaty Organization",
        "NAC": "North Atlantic Council",
        "CCDCOE": "Cooperative Cyber Defence Centre of Excellence",
        "IT": "information technology",
    }

    def brute(text: str) -> list[str]:  # the definition: the folded long form stands in the folded text
        fold = lambda s: " " + " ".join(acronyms._WORD.findall(s.lower())) + " "  # noqa: E731
        return [short for short, long_ in table.items() if fold(long_) in fold(text)]

    tag = acronyms.Tagger(table)
    for text in [
        "The North Atlantic Council met; the North Atlantic Treaty Organization's Cooperative Cyber Defence "
        "Centre of Excellence and Information Technology.",
        "North Atlantic Treaty Organizations",  # not the long form: a longer word
        "north atlantic council",
        "",
    ]:
        assert tag(text) == brute(text)
    assert tag("the NORTH ATLANTIC COUNCIL and the north atlantic treaty organization") == ["NATO", "NAC"]
