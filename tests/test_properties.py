"""Property-based tests: the normaliser and the text-format parsers never crash on arbitrary input."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from vqalab.data.daquar import image_of, parse_qa_file
from vqalab.data.normalize import normalize_answer

# No subnormal floats: vqalab.runtime flushes them to zero in a process that computes (as this test
# process may, after other tests), and hypothesis refuses to draw them then; no answer is one.
answers = st.one_of(st.text(), st.integers(), st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False))


@given(answers)
@settings(max_examples=300, deadline=None)
def test_normalisation_is_idempotent_and_total(answer):
    once = normalize_answer(answer)
    assert isinstance(once, str)
    assert normalize_answer(once) == once
    assert once == once.strip() and "  " not in once


@given(st.text())
@settings(max_examples=200, deadline=None)
def test_daquar_parser_pairs_lines_or_names_the_problem(text):
    try:
        pairs = parse_qa_file(text, where="qa.txt")
    except ValueError as err:
        assert str(err).startswith("qa.txt:")
        return
    assert len(pairs) == len([line for line in text.splitlines() if line.strip()]) // 2
    for _, question, _ in pairs:
        image_id, cleaned = image_of(question)
        assert image_id is None or image_id.startswith("image")


@given(st.lists(st.dictionaries(st.sampled_from(["image", "question", "answer", "split"]),
                                st.one_of(st.none(), st.text(max_size=8), st.integers())), max_size=4))
@settings(max_examples=100, deadline=None)
def test_folder_reader_accepts_or_rejects_with_a_location(tmp_path_factory, rows):
    from vqalab.data.folder import read_rows

    path = tmp_path_factory.mktemp("folder") / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    parsed = read_rows(path)
    assert [row for _, row in parsed] == [r for r in rows]
    assert all(where.startswith("records.jsonl:") for where, _ in parsed)
