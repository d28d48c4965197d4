"""Chunking invariants: exact offsets, whole sentences only, every character covered, sizes respected."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from jn_qa.chunking import chunk, page_of, split_sentences, verify
from jn_qa.cleaning import clean_text
from jn_qa.schema import Document, Span

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzÅéü", min_size=1, max_size=9)
SENTENCE = st.builds(
    lambda words, end: " ".join(words).capitalize() + end,
    st.lists(WORD, min_size=1, max_size=30),
    st.sampled_from([".", "?", "!", ".”", " (2014)."]),
)
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=8).map(" ".join)
HEADING = st.lists(WORD, min_size=1, max_size=5).map(lambda w: " ".join(w).title())
BLOCK = st.one_of(PARAGRAPH, PARAGRAPH, PARAGRAPH, HEADING)
DOC = st.lists(BLOCK, min_size=1, max_size=14).map("\n\n".join)


def nonspace_positions(text: str) -> set[int]:
    return {m.start() for m in re.finditer(r"\S", text)}


@settings(max_examples=150, deadline=None)
@given(DOC, st.integers(min_value=10, max_value=80), st.integers(min_value=0, max_value=30))
def test_passage_invariants(raw: str, words: int, overlap: int) -> None:
    overlap = min(overlap, words - 1)
    doc = clean_text(raw)
    passages = chunk(doc, words=words, overlap=overlap)
    verify(doc.text, passages)
    sentences = split_sentences(doc.text, max_words=words)
    starts, ends = {s.start for s in sentences}, {s.end for s in sentences}
    covered: set[int] = set()
    for p in passages:
        text = doc.text[p.start : p.end]
        assert text == text.strip() and text
        assert p.start in starts and p.end in ends  # never starts or ends mid-sentence
        assert [s for s in sentences if p.start <= s.start and s.end <= p.end] == list(p.sentences)
        if len(p.sentences) > 1:
            assert sum(len(doc.text[s.start : s.end].split()) for s in p.sentences) <= words
        covered.update(range(p.start, p.end))
    assert nonspace_positions(doc.text) <= covered  # every character of the source is in a passage
    assert [p.start for p in passages] == sorted(p.start for p in passages)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_sentences_cover_arbitrary_text(text: str) -> None:
    spans = split_sentences(text, max_words=20)
    covered = set().union(*(range(s.start, s.end) for s in spans)) if spans else set()
    assert nonspace_positions(text) <= covered
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.end <= b.start
    for s in spans:
        assert "\n" not in text[s.start : s.end] and len(text[s.start : s.end].split()) <= 20


def test_abbreviations_do_not_split_sentences() -> None:
    text = "The U.S. and Japan met on Jan. 31, 2023 in Tokyo. Dr. Smith attended."
    got = [text[s.start : s.end] for s in split_sentences(text)]
    assert got == ["The U.S. and Japan met on Jan. 31, 2023 in Tokyo.", "Dr. Smith attended."]


def test_passages_keep_their_section_heading_and_do_not_cross_sections() -> None:
    raw = "Analysis\n\nIntroduction\n\n" + "Japan and NATO met. " * 20 + "\n\nConclusion\n\nThey agreed. It ended well."
    doc = clean_text(raw)
    passages = chunk(doc, words=40, overlap=10)
    assert passages[0].section == "Introduction"
    assert doc.text[passages[0].start :].startswith("Analysis\n\nIntroduction")  # stacked headings stay with their text
    last = passages[-1]
    assert last.section == "Conclusion" and doc.text[last.start : last.end].startswith("Conclusion")
    for p in passages:
        assert not ("Introduction" in doc.text[p.start : p.end] and "Conclusion" in doc.text[p.start : p.end])


def test_overlap_repeats_whole_sentences() -> None:
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(12)]
    doc = Document(" ".join(sentences))
    passages = chunk(doc, words=21, overlap=7)
    assert [len(p.sentences) for p in passages] == [3, 3, 3, 3, 3, 2]
    for a, b in zip(passages, passages[1:], strict=False):
        assert b.sentences[0] == a.sentences[-1]  # one sentence (7 words) of overlap


def test_runaway_sentence_is_cut_at_word_boundaries() -> None:
    doc = Document(" ".join(["word"] * 250))
    passages = chunk(doc, words=100, overlap=0)
    assert [len(doc.text[p.start : p.end].split()) for p in passages] == [100, 100, 50]


def test_page_of() -> None:
    assert page_of((), 5) is None
    assert [page_of((0, 10, 20), x) for x in (0, 9, 10, 25)] == [1, 1, 2, 3]


def test_verify_catches_broken_offsets() -> None:
    from jn_qa.schema import Passage

    text = "One sentence. Two sentences."
    good = Passage(0, 0, 13, sentences=(Span(0, 13),))
    verify(text, [good], ["One sentence."])
    for bad, texts in ((Passage(0, 0, 99), None), (Passage(0, 0, 14), None), (good, ["One sentence!"])):
        try:
            verify(text, [bad], texts)
        except AssertionError:
            continue
        raise AssertionError(f"verify accepted {bad}")


LINES = [
    "Dr. Smith met Gen. Stoltenberg in Brussels on Jan. 5. They spoke for an hour, i.e. briefly.",
    "Japan's share rose to 2.5 per cent (p. 14). NATO's did not! Why? Nobody said... Then U.S. officials left.",
    'He said "enough." She replied: "No." The I.T.P.P. runs 2023-26; its effects remain undetermined.',
    "Mr. Kishida (PM) and Ms. Kamikawa arrived at 9 a.m. The meeting began at 10 a.m. and ended at noon.",
]


def test_sentences_are_those_pysbd_segments() -> None:
    """Only pysbd's processor runs (its `segment` adds a regex compile per sentence to locate them): the
    sentence starts must be the ones pysbd's own `segment` gives."""
    import pysbd

    whole = pysbd.Segmenter(language="en", clean=False)
    for line in LINES:
        want = [s.strip() for s in whole.segment(line) if s.strip()]
        got = [line[span.start : span.end] for span in split_sentences(line)]
        assert got == want and len(got) >= 2
