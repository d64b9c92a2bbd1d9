import pytest

from vqalab.data.normalize import answer_type_from_answer, normalize_answer


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Yes", "yes"),
        ("  No. ", "no"),
        ("two", "2"),
        (2, "2"),
        (3.5, "3.5"),
        ("3.5 cm", "3.5 cm"),
        ("The left lung", "left lung"),
        ("an X-ray", "x-ray"),
        ("chair,table", "chair, table"),
        ("chair ,  the table", "chair, table"),
        ("right\u2019s", "right's"),
        ("(CT)", "ct"),
        ("ten?!", "10"),
        ("fluid-filled", "fluid-filled"),
        ("t1/t2", "t1/t2"),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize("raw", ["Yes", " the  Two  Kidneys. ", "chair,table", "a", "...", "3.5.", "ONE, the two"])
def test_normalize_is_idempotent(raw):
    once = normalize_answer(raw)
    assert normalize_answer(once) == once


@pytest.mark.parametrize("bad", [None, True, ["yes"], {"a": 1}])
def test_normalize_rejects_non_scalars(bad):
    with pytest.raises(TypeError, match="answer must be text or a number"):
        normalize_answer(bad)


def test_answer_type_rule():
    assert answer_type_from_answer("yes") == "closed"
    assert answer_type_from_answer("no") == "closed"
    assert answer_type_from_answer("left lung") == "open"
