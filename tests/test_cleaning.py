"""Residue removal: each kind of web-scrape and page furniture, and what must never be touched."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jn_qa.cleaning import clean_text


def text_of(raw: str, **kw: bool) -> str:
    return clean_text(raw, **kw).text


def test_empty_markdown_links_are_unwrapped() -> None:
    out = text_of("Enhanced [Japan-NATO cooperation](#) could bring benefits, see [the ITPP]().")
    assert out == "Enhanced Japan-NATO cooperation could bring benefits, see the ITPP."


def test_escaped_brackets_inside_links_are_unescaped() -> None:
    out = text_of(
        "cooperation under the [Individual Partnership and Cooperation Programme \\(IPCP\\)](#), agreed in 2014."
    )
    assert out == "cooperation under the Individual Partnership and Cooperation Programme (IPCP), agreed in 2014."


def test_real_links_are_kept_in_text_but_unwrapped_in_markdown() -> None:
    raw = "Read [the report](https://example.org/r) now."
    assert text_of(raw) == raw
    assert text_of(raw, markdown=True) == "Read the report now."


def test_duplicated_headlines_and_captions_are_removed() -> None:
    raw = (
        "Japan and NATO: An Inevitable Partnership?\n\nRecent Features\n\n"
        "Japan and NATO: An Inevitable Partnership?\n\nRAND\nRAND\n\n"
        "A photo caption of the two leaders meeting in Vilnius.\n"
        "A photo caption of the two leaders meeting in Vilnius.\n\n"
        "The body starts here and says something."
    )
    out = text_of(raw)
    assert out.count("An Inevitable Partnership?") == 1
    assert out.count("RAND") == 1
    assert out.count("A photo caption") == 1
    assert "Recent Features" not in out
    assert out.endswith("The body starts here and says something.")


def test_pull_quote_repeating_a_body_sentence_is_removed() -> None:
    sentence = "By continuing to strengthen bilateral ties today, Japan and NATO are positioning themselves well."
    raw = f"{sentence}\n\nIn space, more could be done.\n\n{sentence} The more both work together, the better."
    out = text_of(raw)
    assert out.count("By continuing to strengthen") == 1
    assert out.startswith("In space")


def test_subscribe_blurbs_are_removed() -> None:
    raw = "Last paragraph of the article.\nWant to read more?\nSubscribe for full access.\nSubscribeThe Authors\nA. Writer is a correspondent."  # noqa: E501
    out = text_of(raw)
    assert "Subscribe" not in out and "Want to read more" not in out
    assert "The Authors\nA. Writer is a correspondent." in out


def test_section_breadcrumbs_are_removed_but_bylines_with_a_bar_are_kept() -> None:
    raw = "Features | Security | East Asia\n\nRyosuke Tanaka | National Institute for Defense Studies, Japan.\n\nBody text here."  # noqa: E501
    assert text_of(raw) == "Ryosuke Tanaka | National Institute for Defense Studies, Japan.\n\nBody text here."


def test_stray_page_numbers_and_separators_are_removed() -> None:
    raw = "\n\n16\n\nJapan and NATO\n\n--\n\nIntroduction\n\nJapan has 16 goals in 2023.\n\nPage 3 of 12\n"
    out = text_of(raw)
    assert out == "Japan and NATO\n\nIntroduction\n\nJapan has 16 goals in 2023."


def test_sentences_cut_by_page_breaks_are_rejoined() -> None:
    raw = (
        "Nevertheless, toward the end of the Cold War, the two sides did undertake\n\n"
        "to initiate some informal contact.\n\nA new paragraph."
    )
    out = text_of(raw)
    assert "did undertake to initiate some informal contact." in out
    assert "\n\nA new paragraph." in out


def test_headings_are_found_and_not_joined_to_prose() -> None:
    raw = "Title of the piece\n\nStrengthening Ties\n\nAs I detailed in a 2020 report, Japan is a partner. It works.\n\nBy Jeffrey W. Hornung\n\nMore prose follows here."  # noqa: E501
    doc = clean_text(raw)
    headings = [doc.text[h.start : h.end] for h in doc.headings]
    assert headings == ["Title of the piece", "Strengthening Ties"]
    assert "By Jeffrey W. Hornung" in doc.text


def test_markdown_headings() -> None:
    doc = clean_text("# Japan and NATO\n\nSome text here.\n\n## Past developments\n\nMore text.", markdown=True)
    assert [doc.text[h.start : h.end] for h in doc.headings] == ["Japan and NATO", "Past developments"]
    assert "#" not in doc.text


def test_page_offsets_follow_form_feeds() -> None:
    doc = clean_text("First page text.\n\n1\fSecond page starts here.\f\fFourth page.")
    assert len(doc.pages) == 4
    assert doc.text[doc.pages[1] :].startswith("Second page")
    assert doc.text[doc.pages[3] :].startswith("Fourth page")
    assert doc.pages[2] == doc.pages[3]  # an empty page starts where the next one does


def test_cleaning_is_deterministic_and_normalises_whitespace() -> None:
    raw = "A\u00a0line\twith   odd\u200b spacing.\r\nNext line.\rAnother line."
    assert text_of(raw) == text_of(raw) == "A line with odd spacing.\nNext line.\nAnother line."


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_cleans_without_error_to_valid_structure(raw: str) -> None:
    doc = clean_text(raw)
    assert doc.text == doc.text.strip()
    assert "\r" not in doc.text and "\x00" not in doc.text
    for h in doc.headings:
        assert 0 <= h.start < h.end <= len(doc.text)
        assert "\n" not in doc.text[h.start : h.end]


def test_markdown_marks_never_reach_the_display_text() -> None:
    raw = "Japan's **Individual** Partnership, the *IPCP*, and `code()` in __bold__.\n\n> A quoted line.\n\n2 * 3 = 6"
    out = text_of(raw, markdown=True)
    assert out == "Japan's Individual Partnership, the IPCP, and code() in bold.\n\nA quoted line.\n\n2 * 3 = 6"


def test_markdown_code_fences_are_code_never_headings() -> None:
    raw = "# Title\n\nSome text here.\n\n```c\n#define CHUNK 16384\n#include <stdio.h>\n```\n\n## Next\n\nMore."
    doc = clean_text(raw, markdown=True)
    assert [doc.text[h.start : h.end] for h in doc.headings] == ["Title", "Next"]
    assert "#define CHUNK 16384\n#include <stdio.h>" in doc.text and "```" not in doc.text


def test_captions_footers_and_link_labels_are_removed() -> None:
    body = " ".join(["The article body says something about Japan and NATO."] * 12)
    raw = (
        "Leaders meet in Vilnius, Lithuania, July 12, 2023. Photo by Yves Herman/Reuters\n\n"
        "NATO Secretary General Jens Stoltenberg meets Prime Minister Kishida, Jan. 31, 2023.\n\nCredit: NATO\n\n"
        f"{body} They signed the Programme (PDF). The support (PDF, 2.1 MB) continued.\n\n--\n\n--\n\n"
        "RAND\n\nWe help improve policy and decisionmaking through research and analysis."
    )
    out = text_of(raw)
    assert out == f"{body} They signed the Programme. The support continued."
    assert text_of("Reports in PDF (PDFs, mostly) stay.") == "Reports in PDF (PDFs, mostly) stay."
