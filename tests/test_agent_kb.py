"""The knowledge base: chunking, stable ids, BM25 search over what callers say, and bad input."""

import re

import pytest

from parley.appliance.agent.kb import (
    MAX_CHUNK_WORDS,
    Chunk,
    KnowledgeBase,
    KnowledgeBaseError,
    fts_query,
    prompt_section,
    split_document,
)
from parley.appliance.demo import ACME_DIR

SAFE_QUERY = re.compile(r'(?:"[^\W_]+"\*?(?: OR "[^\W_]+"\*?)*)?')
"""Only quoted words, optionally as prefixes, joined by OR: nothing else reaches MATCH."""

GUIDE = """# Returns

Intro paragraph about returns.

## Damaged items
Tell us within 30 days.

Photos help.

### Glass
Broken glass is refunded without a return.

# Delivery
Parcels ship in two days.
"""


@pytest.fixture(scope="module")
def acme():
    return KnowledgeBase.from_folder(ACME_DIR / "kb")


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_documents_split_at_headings_keeping_the_heading_path_as_title():
    assert split_document(GUIDE, "Guide") == [
        ("Returns", "Intro paragraph about returns."),
        ("Returns > Damaged items", "Tell us within 30 days.\n\nPhotos help."),
        ("Returns > Damaged items > Glass", "Broken glass is refunded without a return."),
        ("Delivery", "Parcels ship in two days."),
    ]


def test_text_before_any_heading_takes_the_document_title():
    assert split_document("Just a note.\n", "Opening hours") == [("Opening hours", "Just a note.")]


def test_long_sections_are_cut_at_paragraphs_then_sentences():
    paragraph = " ".join(f"Sentence {n} has exactly six words." for n in range(40))  # 240 words
    text = f"# Long\nShort first paragraph.\n\n{paragraph}\n\nShort last paragraph.\n"
    chunks = split_document(text, "Long")
    assert all(len(body.split()) <= MAX_CHUNK_WORDS for _, body in chunks)
    assert chunks[0] == ("Long", "Short first paragraph.")
    assert all(body.endswith(".") for _, body in chunks)
    assert " ".join(body for _, body in chunks).split() == text.replace("# Long", "").split()


def test_a_run_on_sentence_is_cut_at_words():
    chunks = split_document("word " * 300, "Run on")
    assert [len(body.split()) for _, body in chunks] == [120, 120, 60]


def test_chunk_ids_name_the_file_and_count_from_one(tmp_path):
    write(tmp_path, "guide.md", GUIDE)
    write(tmp_path, "faq/hours.txt", "We open at nine.\n\nWe close at five.\n")
    kb = KnowledgeBase.from_folder(tmp_path)
    assert [c.id for c in kb.chunks] == [
        "faq/hours.txt#1", "guide.md#1", "guide.md#2", "guide.md#3", "guide.md#4",
    ]
    assert kb.chunks[0].title == "Hours"
    assert kb.document_names == ["faq/hours.txt", "guide.md"]


def test_ids_are_stable_when_another_file_changes(tmp_path):
    write(tmp_path, "guide.md", GUIDE)
    write(tmp_path, "other.md", "# Other\nOne.\n")
    before = {c.id: c.text for c in KnowledgeBase.from_folder(tmp_path).chunks if c.id.startswith("guide")}
    write(tmp_path, "other.md", "# Other\nOne.\n\n# More\nTwo.\n")
    write(tmp_path, "a-first.md", "# First\nZero.\n")
    after = {c.id: c.text for c in KnowledgeBase.from_folder(tmp_path).chunks if c.id.startswith("guide")}
    assert after == before


def test_only_markdown_and_text_documents_are_read(tmp_path):
    write(tmp_path, "guide.md", "Kept.")
    write(tmp_path, "data.csv", "a,b")
    write(tmp_path, ".drafts/secret.md", "Not published.")
    assert KnowledgeBase.from_folder(tmp_path).document_names == ["guide.md"]


def test_the_returns_chunk_answers_a_caller_sending_back_a_kettle(acme):
    results = acme.search("can I send back a kettle I bought two weeks ago")
    assert results[0].id == "returns-policy.md#1"
    assert results[0].title == "Returns policy > Returning an item"
    assert results[0].score > 0
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


@pytest.mark.parametrize(
    ("question", "document"),
    [
        ("when will I get my money back", "returns-policy.md"),
        ("can I change the delivery address", "delivery.md"),
        ("what time do you open on Saturday", "store-hours-and-contact.md"),
        ("is my blender covered by a warranty", "warranty.md"),
    ],
)
def test_each_acme_document_answers_its_questions(acme, question, document):
    assert acme.search(question, limit=1)[0].id.startswith(f"{document}#")


def test_an_unrelated_question_finds_nothing(acme):
    assert acme.search("what's the weather like in Paris") == []
    assert acme.search("um, well, so, yeah") == []


def test_a_word_in_most_chunks_alone_is_below_the_cut_off(tmp_path):
    for n in range(4):
        write(tmp_path, f"doc{n}.md", f"Acme note {n}: topic{n}.")
    kb = KnowledgeBase.from_folder(tmp_path)
    assert kb.search("acme") == []
    assert [c.id for c in kb.search("acme", min_score=0.0)] != []


def test_search_respects_the_limit(acme):
    assert len(acme.search("refund delivery warranty order", limit=2)) == 2
    assert acme.search("refund", limit=0) == []


@pytest.mark.parametrize(
    "query",
    ['" OR NEAR( -- *', 'refund" OR "', "AND", "NOT refund", "NEAR(refund kettle, 2)", "col:refund",
     "{title}: refund", "^refund", "refund*", "-- DROP TABLE chunks;", "\x00\x01", "ümlaut façade", "", "   "],
)
def test_hostile_queries_never_reach_match_raw(acme, query):
    results = acme.search(query)
    assert all(isinstance(chunk, Chunk) for chunk in results)
    assert SAFE_QUERY.fullmatch(fts_query(query))


def test_the_query_keeps_content_words_with_prefixes_for_long_ones():
    assert fts_query("Can I RETURN my kettle, please?!") == '"return"* OR "kettle"*'
    assert fts_query("the box and the bag") == '"box" OR "bag"'
    assert fts_query("What's a 30-day return?") == '"30" OR "day" OR "return"*'


def test_stemming_finds_other_forms_of_a_word(tmp_path):
    write(tmp_path, "money.md", "We refund you within a week.")
    write(tmp_path, "parcels.md", "Parcels ship in two days.")
    write(tmp_path, "hours.md", "We open at nine.")
    kb = KnowledgeBase.from_folder(tmp_path)
    assert [c.id for c in kb.search("were my refunds processed")] == ["money.md#1"]
    assert [c.id for c in kb.search("shipping")] == ["parcels.md#1"]


def test_an_empty_or_missing_folder_is_an_empty_knowledge_base(tmp_path):
    for folder in (tmp_path, tmp_path / "missing"):
        kb = KnowledgeBase.from_folder(folder)
        assert len(kb) == 0
        assert kb.search("returns") == []


def test_a_file_where_the_folder_should_be_is_an_error(tmp_path):
    path = write(tmp_path, "kb.md", "text")
    with pytest.raises(KnowledgeBaseError, match="is a file"):
        KnowledgeBase.from_folder(path)


def test_a_document_that_is_not_utf8_is_named_in_the_error(tmp_path):
    write(tmp_path, "fine.md", "Fine.")
    (tmp_path / "legacy.txt").write_bytes("Caf\u00e9 hours".encode("latin-1"))
    with pytest.raises(KnowledgeBaseError, match="legacy.txt: not UTF-8") as raised:
        KnowledgeBase.from_folder(tmp_path)
    assert raised.value.path == tmp_path / "legacy.txt"
    assert "save it as UTF-8" in str(raised.value)


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path):
    (tmp_path / "bom.md").write_bytes("\ufeff# Hours\nOpen daily.".encode())
    assert KnowledgeBase.from_folder(tmp_path).chunks[0].title == "Hours"


def test_content_hash_changes_exactly_when_the_documents_do(tmp_path):
    write(tmp_path, "guide.md", GUIDE)
    first = KnowledgeBase.from_folder(tmp_path).content_hash()
    assert KnowledgeBase.from_folder(tmp_path).content_hash() == first
    assert len(first) == 64
    write(tmp_path, "guide.md", GUIDE + "\nOne more line.\n")
    changed = KnowledgeBase.from_folder(tmp_path).content_hash()
    assert changed != first
    (tmp_path / "guide.md").rename(tmp_path / "renamed.md")
    assert KnowledgeBase.from_folder(tmp_path).content_hash() != changed


def test_prompt_section_labels_each_chunk_with_its_id():
    chunks = [Chunk("returns-policy.md#1", "Returns policy > Returning an item", "Send it back within 30 days.")]
    section = prompt_section(chunks)
    assert "[returns-policy.md#1] Returns policy > Returning an item\nSend it back within 30 days." in section
    assert section.splitlines()[0].startswith("Knowledge base")
    assert prompt_section([]) == ""
