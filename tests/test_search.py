"""Search: candidates, features and the second stage, on a tiny corpus and (marked `model`) the seed corpus."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest

from jn_qa.errors import InvalidInput
from jn_qa.lexical import Lexical, tokenize
from jn_qa.ranking import BASELINES, FEATURES, LinearModel, LinearRanker, Pool, standardise
from jn_qa.search import clean_query, rank_positions, sentence_terms
from jn_qa.store import Csr, concat_ranges


def test_concat_ranges_concatenates_aranges() -> None:
    got = concat_ranges(np.array([5, 0, 9]), np.array([2, 0, 3]))
    assert got.tolist() == [5, 6, 9, 10, 11]


def test_csr_rows_and_gather() -> None:
    csr = Csr(np.array([0, 2, 2, 5]), np.array([10, 11, 20, 21, 22]))
    assert len(csr) == 3 and csr.row(0).tolist() == [10, 11] and csr.row(1).tolist() == []
    assert csr.span(2) == range(2, 5)
    positions, counts = csr.gather(np.array([2, 1, 0]))
    assert csr.values[positions].tolist() == [20, 21, 22, 10, 11] and counts.tolist() == [3, 0, 2]


def test_rank_positions_finds_positions_and_marks_absent() -> None:
    ranked = np.array([40, 7, 13])
    assert rank_positions(np.array([13, 99, 40, 7]), ranked).tolist() == [2, -1, 0, 1]
    assert rank_positions(np.array([1, 2]), np.array([], dtype=np.int64)).tolist() == [-1, -1]


def test_lexical_idf_is_the_one_its_scores_use() -> None:
    """BM25 (Lucene variant, as bm25s writes it: no (k1 + 1) factor) recomputed from the interface's own IDF
    equals the index's scores: coverage, weighted by that IDF, cannot drift from the scores."""
    docs = [["tokyo", "nato"], ["tokyo", "summit", "summit"], ["brussels"], ["nato", "nato", "nato", "summit"]]
    lex = Lexical.build(docs)
    avgdl = sum(map(len, docs)) / len(docs)
    for term in ("tokyo", "nato", "summit", "brussels"):
        tid = lex.term_id(term)
        assert tid is not None and lex.postings(tid).tolist() == [i for i, d in enumerate(docs) if term in d]
        want = [
            lex.idf[tid] * d.count(term) / (d.count(term) + lex.k1 * (1 - 0.75 + 0.75 * len(d) / avgdl)) for d in docs
        ]
        assert lex.scores([term]) == pytest.approx(want, rel=1e-5)
    qt = lex.query_terms(["tokyo", "atlantis", "tokyo"])
    assert qt.ids.tolist() == [lex.term_id("tokyo")]
    assert qt.total == pytest.approx(lex.idf[lex.term_id("tokyo")] + lex.idf_unknown)
    assert lex.idf_unknown > lex.idf.max()


def test_standardise_gives_zscores_and_zero_for_constant_columns() -> None:
    x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    z = standardise(x)
    assert np.allclose(z[:, 0].mean(), 0) and np.allclose(z[:, 0].std(), 1)
    assert np.allclose(z[:, 1], 0)


def test_linear_model_rejects_unknown_features() -> None:
    with pytest.raises(ValueError, match="unknown features"):
        LinearModel.from_dict({"weights": {"lexical": 1.0, "shoe_size": 2.0}}, FEATURES)


def test_linear_model_score_is_invariant_to_feature_scale() -> None:
    model = LinearModel(FEATURES, np.ones(len(FEATURES)))
    x = np.random.default_rng(0).random((20, len(FEATURES)))
    assert np.allclose(model.score(x), model.score(x * 1000 + 7))


def test_clean_query_rejects_empty_and_overlong() -> None:
    with pytest.raises(InvalidInput):
        clean_query("   ")
    with pytest.raises(InvalidInput):
        clean_query("x" * 1001)
    assert clean_query("  a \n b ") == "a b"


def test_stored_sentence_terms_match_the_texts(small_engine) -> None:
    version = small_engine.state.version
    assert version.sentence_terms is not None
    texts = [
        version.text(version.row(p).source)[int(a) : int(b)]
        for p in range(version.size)
        for a, b in version.sentences.row(p)
    ]
    want_ptr, want_ids = version.lexical.term_rows(texts)
    stored = version.sentence_terms
    assert stored.ptr.tolist() == want_ptr.tolist() and stored.values.tolist() == want_ids.tolist()
    assert version.title_vectors is not None and len(version.title_vectors) == len(version.meta)


def test_sentence_terms_are_derived_for_versions_without_them(small_engine) -> None:
    version = small_engine.state.version
    stored = version.sentence_terms
    try:
        version.sentence_terms = None
        derived = sentence_terms(version)
    finally:
        version.sentence_terms = stored
    assert stored is not None
    assert derived.ptr.tolist() == stored.ptr.tolist() and derived.values.tolist() == stored.values.tolist()


def test_coverage_features_count_query_terms_in_passage_and_best_sentence(small_engine) -> None:
    searcher = small_engine.state.searcher
    version = small_engine.state.version
    got = searcher.retrieve("IPCP nine priority areas Vilnius")
    cands = got.candidates
    qt = searcher.query_terms(got.terms)
    idf = dict(zip(qt.ids.tolist(), qt.idf.tolist(), strict=True))
    vocab = version.lexical.vocabulary
    wanted = {vocab[t] for t in got.terms if t in vocab}
    for j, pid in enumerate(cands.ids):
        text = version.passage_text(int(pid))
        in_passage = {vocab[t] for t in tokenize(text) if t in vocab} & wanted
        assert cands.column("coverage")[j] == pytest.approx(sum(idf[t] for t in in_passage) / qt.total)
        sents = [
            version.text(version.row(int(pid)).source)[int(a) : int(b)]
            for a, b in version.sentences.values[cands.sentences.rows[cands.sentence_slice(j)]]
        ]
        best = (
            max(sum(idf[t] for t in {vocab[w] for w in tokenize(s) if w in vocab} & wanted) for s in sents) / qt.total
        )
        assert cands.column("sentence_coverage")[j] == pytest.approx(best)


def test_baseline_rankers_rank_by_one_retriever(small_engine) -> None:
    searcher = small_engine.state.searcher
    lexical = searcher.retrieve("harbour Yokosuka ships", ranker=searcher.ranker_for("lexical"))
    top = lexical.ranked_ids()
    bm25 = searcher.lexical_scores(lexical.terms)
    assert list(bm25[top]) == sorted(bm25[top], reverse=True) and all(bm25[top] > 0)
    assert lexical.ranking.linear is None
    dense = searcher.retrieve("harbour Yokosuka ships", ranker=BASELINES["dense"])
    d = dense.candidates.column("dense")[dense.order]
    assert list(d) == sorted(d, reverse=True)
    hybrid = searcher.retrieve("harbour Yokosuka ships")
    assert set(hybrid.candidates.ids) == set(lexical.candidates.ids) | set(dense.candidates.ids)
    assert hybrid.ranking.linear is searcher.model
    with pytest.raises(InvalidInput):
        searcher.ranker_for("psychic")


def test_a_later_stage_sees_the_ranking_before_it(small_engine) -> None:
    """The composition a reader plugs into: the stage gets the linear ranking and may re-order it."""
    from jn_qa.ranking import Ranking, RankInput, then

    class Reverse:
        name, pool = "reverse", Pool.BOTH

        def rank(self, given: RankInput, previous: Ranking | None) -> Ranking:
            assert previous is not None
            return Ranking(-previous.scores, previous.order[::-1].copy(), previous.linear)

    searcher = small_engine.state.searcher
    plain = searcher.retrieve("cooperation cyber defence")
    got = searcher.retrieve("cooperation cyber defence", ranker=then(LinearRanker(searcher.model), Reverse()))
    assert got.order.tolist() == plain.order.tolist()[::-1] and got.ranking.linear is searcher.model


def test_source_filter_keeps_to_the_named_sources(small_engine) -> None:
    version = small_engine.state.version
    got = small_engine.state.searcher.retrieve("cooperation cyber defence", sources=["gamma"])
    assert len(got.candidates.ids) > 0
    assert {version.meta[version.row(int(p)).source].id for p in got.candidates.ids} == {"gamma"}


def test_specifics_missing_weighs_names_and_numbers_absent_from_the_source(small_engine) -> None:
    searcher = small_engine.state.searcher
    alpha = small_engine.state.version.source_index("alpha")
    assert searcher.specifics_missing("When was the IPCP agreed in Vilnius?", alpha) == 0.0
    assert searcher.specifics_missing("What did the IPCP say about Yokosuka?", alpha) > 0.0
    assert searcher.specifics_missing("What did the IPCP say about Atlantis?", alpha) > searcher.specifics_missing(
        "What did the IPCP say about Yokosuka?", alpha
    )


# ------------------------------------------------------------------ the real model on the seed corpus


def _first_with(answer, needle: str) -> int | None:
    return next((r.rank for r in answer.results if needle in r.text), None)


@pytest.mark.model
@pytest.mark.parametrize(
    "question, needle",
    [
        ("When was the IPCP agreed?", "IPCP"),
        ("How many goals does the ITPP have?", "ITPP"),
        ("What does Japan do with the CCDCOE?", "CCDCOE"),
        ("Which countries are in GCAP?", "GCAP"),
    ],
)
def test_acronyms_match_lexically(seed_engine, question: str, needle: str) -> None:
    answer = seed_engine.ask(question, k=3, explain=True)
    top = answer.results[0]
    assert needle in top.text
    assert top.explain is not None and top.explain["lexical_rank"] is not None and top.explain["lexical_rank"] <= 10


@pytest.mark.model
def test_paraphrase_matches_densely(seed_engine) -> None:
    question = "the Japanese leader's warning that Europe's war could spread to Asia"
    answer = seed_engine.ask(question, k=10, explain=True)
    rank = _first_with(answer, "Ukraine today may be East Asia tomorrow")
    assert rank is not None
    hit = answer.results[rank - 1]
    assert hit.explain is not None and hit.explain["dense_rank"] is not None
    assert hit.explain["lexical_rank"] is None or hit.explain["dense_rank"] < hit.explain["lexical_rank"]


def test_reranker_setting_takes_the_shipped_reader_a_folder_or_off(tmp_path) -> None:
    from jn_qa.errors import ConfigError
    from jn_qa.reader import Reader

    assert Reader.from_setting("off") is None
    shipped = Reader.from_setting("")
    assert shipped is not None and shipped.shipped
    with pytest.raises(ConfigError, match="not a local model folder"):
        Reader.from_setting(str(tmp_path))


class LengthReader:
    """Stands in for the reader: scores a sentence by its length (about ordering, not relevance)."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def score(self, question, sentences):
        import numpy as np

        self.read += list(sentences)
        return np.array([float(len(s)) for s in sentences])


def test_reader_stage_reorders_the_top_candidates_only(small_engine) -> None:
    from jn_qa.reader import ReaderStage

    state = small_engine.state
    base = type(state.searcher)(state.version, state.searcher.embedder)
    plain = base.retrieve("cooperation cyber defence maritime")
    fake = LengthReader()
    searcher = type(state.searcher)(
        state.version,
        state.searcher.embedder,
        stages=[ReaderStage(cast(Any, fake), top=3, per_candidate=2, weight=0.0)],  # a stand-in for Reader
    )
    got = searcher.retrieve("cooperation cyber defence maritime")
    head = [int(got.candidates.ids[i]) for i in got.order[:3]]
    assert sorted(head) == sorted(int(plain.candidates.ids[i]) for i in plain.order[:3])
    assert [int(x) for x in got.order[3:]] == [int(x) for x in plain.order[3:]]
    assert min(got.scores[got.order[:3]]) > max(got.scores[got.order[3:]])
    assert 0 < len(fake.read) <= 6 and len(set(fake.read)) == len(fake.read)  # each distinct sentence read once
    best = [max(len(t) for t in _read_of(searcher, got, j, fake.read)) for j in got.order[:3]]
    assert best == sorted(best, reverse=True)  # ordered by the best sentence the reader read
    assert got.ranking.reader is not None and set(fake.read) == {
        searcher_text(searcher, got, r) for r in got.ranking.reader
    }


def searcher_text(searcher, got, row):
    s = got.candidates.sentences
    j = int(np.flatnonzero(s.rows == row)[0])
    owner = int(np.searchsorted(s.offsets, j, side="right") - 1)
    return searcher.sentence_text(int(got.candidates.ids[owner]), int(row))


def _read_of(searcher, got, j, read):
    s = got.candidates.sentences
    texts = [searcher.sentence_text(int(got.candidates.ids[j]), int(r)) for r in s.rows[s.of(int(j))]]
    return [t for t in texts if t in read] or [""]
