"""The index folder: manifest round trip, model mismatch refusal, checksums, publish and rollback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jn_qa import store
from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.engine import Engine
from jn_qa.errors import IndexUnavailable
from library_support import FakeEmbedder, write_source

TEXT_A = (
    "Japan and NATO\n\nIntroduction\n\nJapan and NATO signed the IPCP in 2014. It listed nine areas. "
    "Cyber defence was one."
)
TEXT_B = "The ITPP\n\nThe ITPP covers 2023 to 2026. It names sixteen goals. Space security is among them."


@pytest.fixture
def tiny(tmp_path: Path) -> Settings:
    write_source(tmp_path / "corpus", "alpha", TEXT_A, title="Alpha", author="A. Writer", published="2024-07-08")
    write_source(tmp_path / "corpus", "beta", TEXT_B, title="Beta")
    return Settings(corpus=tmp_path / "corpus", index=tmp_path / "index", chunk_words=12, chunk_overlap=4)


def test_manifest_round_trip(tiny: Settings, fake_embedder: FakeEmbedder) -> None:
    report = build(tiny, fake_embedder)
    version = store.open_current(tiny.index)
    m = version.manifest
    assert m.version == report.version == version.name
    assert m.model == store.ModelInfo("fake", fake_embedder.file_hash, fake_embedder.dim)
    assert {k: m.chunking[k] for k in ("words", "overlap", "splitter")} == {
        "words": 12,
        "overlap": 4,
        "splitter": "pysbd",
    }
    assert len(m.chunking["pipeline"]) == 16  # the cleaning and chunking code's fingerprint
    assert m.counts.sources == 2 and m.counts.passages == version.size == report.passages_total
    assert set(m.sources) == {"alpha", "beta"} and all(len(h) == 64 for h in m.sources.values())
    assert m.built_at is not None and m.built_at.endswith("Z") and m.files["vectors.npy"]["bytes"] > 0
    assert m.raw["model"]["name"] == "fake"  # the document as written stays readable whole
    alpha = version.source_index("alpha")
    assert version.meta[alpha].author == "A. Writer" and version.text(alpha).startswith("Japan and NATO")
    for i in range(version.size):  # offsets are exact after the round trip
        p = version.passage(i)
        assert version.passage_text(i) == version.text(p.source)[p.start : p.end]
        assert all(p.start <= s.start < s.end <= p.end for s in p.sentences)
    assert np.allclose(np.linalg.norm(np.asarray(version.vectors), axis=1), 1.0, atol=1e-5)


def test_mismatched_model_is_refused_with_a_clear_message(tiny: Settings, fake_embedder: FakeEmbedder) -> None:
    build(tiny, fake_embedder)
    other = FakeEmbedder(name="other", file_hash="0" * 64)
    engine = Engine(tiny.replace(model="other"), embedder=other)  # type: ignore[arg-type]
    with pytest.raises(IndexUnavailable, match=r"built with model 'fake'.*jn-qa build --full"):
        engine.load()


def test_corrupted_or_truncated_files_are_detected(tiny: Settings, fake_embedder: FakeEmbedder) -> None:
    build(tiny, fake_embedder)
    folder = tiny.index / "versions" / store.Layout(tiny.index).current_name()  # type: ignore[operator]
    vectors = folder / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0xFF
    vectors.write_bytes(bytes(data))
    with pytest.raises(IndexUnavailable, match="vectors.npy is corrupted"):
        store.open_current(tiny.index)
    vectors.write_bytes(bytes(data[:-10]))
    with pytest.raises(IndexUnavailable, match="truncated"):
        store.open_current(tiny.index)


def test_no_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexUnavailable, match="build one with 'jn-qa build'"):
        store.open_current(tmp_path)


def test_rebuild_is_a_no_op_when_nothing_changed_and_incremental_otherwise(
    tiny: Settings, fake_embedder: FakeEmbedder
) -> None:
    first = build(tiny, fake_embedder)
    embedded = fake_embedder.encoded
    again = build(tiny, fake_embedder)
    assert not again.published and again.version == first.version and fake_embedder.encoded == embedded
    write_source(tiny.corpus, "gamma", "GCAP\n\nJapan, the UK and Italy build GCAP. It began in 2022.")
    third = build(tiny, fake_embedder)
    new_passages = store.open_current(tiny.index).source_passages(2)
    assert third.published and third.sources_added == ["gamma"] and third.passages_embedded == len(new_passages)
    assert third.passages_reused == third.passages_total - len(new_passages)
    (tiny.corpus / "beta.txt").unlink()
    fourth = build(tiny, fake_embedder)
    assert fourth.sources_removed == ["beta"] and fourth.passages_embedded == 0
    full = build(tiny, fake_embedder, full=True)
    assert full.published and full.passages_embedded == full.passages_total


def test_publish_keeps_a_few_versions_and_rollback_returns_to_the_previous(
    tiny: Settings, fake_embedder: FakeEmbedder
) -> None:
    s = tiny.replace(keep_versions=2)
    names = [build(s, fake_embedder, full=True).version for _ in range(3)]
    layout = store.Layout(s.index)
    assert layout.list_versions() == names[1:] and layout.current_name() == names[2]
    assert store.rollback(s.index) == (names[2], names[1])
    assert layout.current_name() == names[1]
    with pytest.raises(IndexUnavailable, match="no earlier intact version"):
        store.rollback(s.index)


def test_a_failed_write_leaves_the_current_index_untouched(tiny: Settings, fake_embedder: FakeEmbedder) -> None:
    from jn_qa.errors import BuildError

    good = build(tiny, fake_embedder).version
    before = (tiny.index / "CURRENT").read_bytes()

    def disk_full(stage: str, folder: Path) -> None:
        if stage == "written":
            raise OSError(28, "No space left on device")

    write_source(tiny.corpus, "gamma", "More text. Even more.")
    with pytest.raises(BuildError, match=r"No space left on device\); the current index is unchanged"):
        build(tiny, fake_embedder, on_stage=disk_full)
    assert (tiny.index / "CURRENT").read_bytes() == before
    assert not any((tiny.index / "tmp").glob("*"))
    assert store.open_current(tiny.index).name == good
    assert json.loads((tiny.index / "versions" / good / "manifest.json").read_text())["version"] == good


def test_a_changed_text_pipeline_rereads_sources_but_keeps_vectors(
    tiny: Settings, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build(tiny, fake_embedder)
    monkeypatch.setattr("jn_qa.build.text_pipeline_hash", lambda: "new-cleaning-code")
    again = build(tiny, fake_embedder)
    assert again.published and again.version != first.version  # not "up to date": the text may differ now
    assert "text pipeline" in again.reason and again.passages_embedded == 0
    assert store.open_current(tiny.index).manifest.chunking["pipeline"] == "new-cleaning-code"
    assert not build(tiny, fake_embedder).published


def test_a_passage_whose_content_key_ends_in_a_nul_byte_is_reused(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    """numpy's "S32" strips trailing NUL bytes when keys are read back: about 1 passage in 256 has such a key,
    and it must still be found in the previous version instead of being embedded again by every build."""
    from jn_qa import chunking, ingest
    from jn_qa.build import embed_input, passage_key

    settings = Settings(corpus=tmp_path / "corpus", index=tmp_path / "index")
    settings.corpus.mkdir()
    for n in range(5000):  # ~256 tries expected; deterministic
        data = f"Note {n} on Japan and NATO.\n".encode()
        source = ingest.make_source("note", data, "txt", "note.txt")
        passages = chunking.chunk(source.doc, source=0, words=settings.chunk_words, overlap=settings.chunk_overlap)
        if any(passage_key(*embed_input(source, p)).endswith(b"\0") for p in passages):
            break
    else:
        pytest.fail("no passage key ending in a NUL byte found")
    (settings.corpus / "note.txt").write_bytes(data)
    first = build(settings, fake_embedder)
    assert first.passages_embedded == len(passages)
    (settings.corpus / "other.txt").write_text("Another short note about NATO.\n", encoding="utf-8")
    second = build(settings, fake_embedder)
    assert second.passages_reused == len(passages)
    assert second.passages_embedded == second.passages_total - len(passages)


def test_a_manifest_without_its_counts_is_an_unusable_index() -> None:
    with pytest.raises(IndexUnavailable, match="lacks required fields"):
        store.Manifest.parse({"format": store.FORMAT, "model": {"name": "m"}}, "v1")


def test_passage_rows_are_read_by_name() -> None:
    table = store.PassageTable(np.array([[0, 0, 10, -1, 0], [0, 5, 20, 3, -1], [1, 0, 9, -1, -1]]), ["Intro"])
    assert table.row(0) == store.PassageRow(source=0, start=0, end=10, page=None, section="Intro")
    assert table.row(1).page == 3 and table.row(1).section is None
    assert table.source.tolist() == [0, 0, 1] and table.source_starts().tolist() == [0, 2]
    assert table.row(0).overlap(table.row(1)) == 0.5 and table.row(0).overlap(table.row(2)) == 0.0
