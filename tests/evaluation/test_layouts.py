"""Task rows in the published layouts -> the harness's prompts; bad rows -> errors naming the
file and the row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smelt.errors import InputError
from smelt.evaluation.layouts import NAMED_TASKS
from smelt.evaluation.sources import hub_source, load_task, load_texts, split_files
from tests.evaluation.task_factory import write_jsonl, write_parquet

HELLASWAG = {
    "ind": 4,
    "activity_label": "Removing ice from car",
    "ctx_a": "Then, the man writes over the snow covering the window of a car, and a woman "
    "wearing winter clothes smiles.",
    "ctx_b": "then",
    "endings": [
        ", the man adds wax to the windshield and cuts it.",
        ", a person board a ski lift, while two men supporting the head of the person.",
        ", the man puts on a christmas coat, knitted with netting.",
        ", the man continues removing the snow on his car.",
    ],
    "label": "3",
}


def _task(tmp_path: Path, name: str, *rows: dict, suffix: str = ".jsonl"):
    path = tmp_path / f"{name}{suffix}"
    (write_parquet if suffix == ".parquet" else write_jsonl)(path, list(rows))
    return load_task(name, str(path))


def test_hellaswag_prompt_is_the_harness_preprocessing(tmp_path: Path) -> None:
    row = {**HELLASWAG, "endings": [*HELLASWAG["endings"][:3], "Scrape it [title] Done [step]"]}
    [item] = _task(tmp_path, "hellaswag", row).items
    context = (
        "Removing ice from car: Then, the man writes over the snow covering the window of a "
        "car, and a woman wearing winter clothes smiles. Then"
    )
    assert [c for c, _ in item.requests] == [context] * 4
    assert item.requests[3][1] == " Scrape it. Done "  # " [title]" -> ". ", [step] removed
    assert item.gold == 3
    assert item.lengths == tuple(len(cont) - 1 for _, cont in item.requests)


def test_arc_uses_the_label_of_the_answer_key_and_any_choice_count(tmp_path: Path) -> None:
    rows = [
        {
            "question": "Which is a gas?",
            "choices": {"text": ["ice", "steam", "rock"], "label": ["A", "B", "C"]},
            "answerKey": "B",
        },
        {
            "question": "Pick four",
            "choices": {"text": list("abcde"), "label": list("12345")},
            "answerKey": "4",
        },
    ]
    task = _task(tmp_path, "arc_challenge", *rows, suffix=".parquet")
    first, second = task.items
    assert first.requests[1] == ("Question: Which is a gas?\nAnswer:", " steam")
    assert (first.gold, second.gold, len(second.requests)) == (1, 3, 5)


def test_winogrande_scores_the_same_rest_after_each_option(tmp_path: Path) -> None:
    row = {
        "sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
        "option1": "Sarah",
        "option2": "Maria",
        "answer": "1",
    }
    [item] = _task(tmp_path, "winogrande", row).items
    assert item.requests == (
        ("Sarah was a much better surgeon than Maria so Sarah", " always got the harder cases."),
        ("Sarah was a much better surgeon than Maria so Maria", " always got the harder cases."),
    )
    assert item.gold == 0 and item.lengths == (51, 51)


def test_piqa_boolq_and_lambada_prompts(tmp_path: Path) -> None:
    [piqa] = _task(
        tmp_path, "piqa", {"goal": "Open a jar", "sol1": "twist", "sol2": "shout", "label": 0}
    ).items
    assert piqa.requests == (
        ("Question: Open a jar\nAnswer:", " twist"),
        ("Question: Open a jar\nAnswer:", " shout"),
    )
    [boolq] = _task(
        tmp_path,
        "boolq",
        {"question": "is the sky blue", "passage": "It is.", "idx": 0, "label": 1},
    ).items
    assert boolq.requests[1] == ("It is.\nQuestion: is the sky blue?\nAnswer:", " yes")
    assert boolq.gold == 1
    [google] = _task(tmp_path, "boolq", {"question": "q", "passage": "p", "answer": False}).items
    assert google.gold == 0
    [cloze] = _task(tmp_path, "lambada", {"text": "he picked up the glass and drank"}).items
    assert (cloze.context, cloze.continuation) == ("he picked up the glass and", " drank")


def test_any_other_name_reads_the_generic_layout(tmp_path: Path) -> None:
    task = _task(tmp_path, "my_quiz", {"context": "2 + 2 =", "choices": ["4", "5"], "label": 0})
    assert task.layout == "generic" and task.items[0].requests[0] == ("2 + 2 =", " 4")
    assert set(NAMED_TASKS) == {
        "hellaswag",
        "arc_easy",
        "arc_challenge",
        "piqa",
        "winogrande",
        "boolq",
        "lambada",
    }


# ---- bad input -----------------------------------------------------------------------------


def _bad(tmp_path: Path, name: str, rows: list[dict], *expected: str) -> None:
    path = write_jsonl(tmp_path / f"{name}.jsonl", rows)
    with pytest.raises(InputError) as caught:
        load_task(name, str(path))
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    for part in expected:
        assert part in message, message


GOOD = {"context": "c", "choices": ["a", "b"], "label": 1}


def test_unknown_layout_names_the_file_row_and_the_fix(tmp_path: Path) -> None:
    _bad(
        tmp_path,
        "quiz",
        [GOOD, {"question": "q", "answers": ["a"]}],
        "row 2",
        "unknown layout",
        "context, choices",
    )
    # a published set's rows under another name: the message says which name reads them
    _bad(tmp_path, "my_set", [HELLASWAG], "row 1", "unknown layout", "'hellaswag'")
    _bad(tmp_path, "piqa", [GOOD], "row 1", "piqa layout", "goal")


def test_missing_label_names_the_row(tmp_path: Path) -> None:
    _bad(tmp_path, "quiz", [GOOD, {"context": "c", "choices": ["a", "b"]}], "row 2", "no label")
    _bad(tmp_path, "hellaswag", [HELLASWAG, {**HELLASWAG, "label": ""}], "row 2", "no label")
    _bad(
        tmp_path,
        "winogrande",
        [{"sentence": "a _ b", "option1": "x", "option2": "y", "answer": ""}],
        "row 1",
        "no label",
    )


def test_choices_of_different_counts_are_refused(tmp_path: Path) -> None:
    arc = {
        "question": "q",
        "choices": {"text": ["a", "b", "c"], "label": ["A", "B"]},
        "answerKey": "A",
    }
    _bad(tmp_path, "arc_easy", [arc], "row 1", "different counts", "3", "2")
    three = {**HELLASWAG, "endings": HELLASWAG["endings"][:3]}
    _bad(tmp_path, "hellaswag", [HELLASWAG, three], "row 2", "3 choices", "has 4")
    _bad(tmp_path, "quiz", [{**GOOD, "label": 2}], "row 1", "out of range for 2 choices")


def test_jsonl_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "quiz.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(InputError, match=r"quiz.jsonl line 2: invalid JSON"):
        load_task("quiz", str(path))


def test_empty_files_are_refused(tmp_path: Path) -> None:
    empty_text = tmp_path / "held.txt"
    empty_text.write_text(" \n\n")
    with pytest.raises(InputError, match=r"held.txt: empty text file"):
        load_texts("held", str(empty_text))
    empty_jsonl = write_jsonl(tmp_path / "held.jsonl", [{"text": ""}, {"text": "  "}])
    with pytest.raises(InputError, match=r"held.jsonl: empty text file"):
        load_texts("held", str(empty_jsonl))
    (tmp_path / "quiz.jsonl").write_text("\n")
    with pytest.raises(InputError, match=r"quiz.jsonl: no items"):
        load_task("quiz", str(tmp_path / "quiz.jsonl"))


def test_texts_from_plain_text_jsonl_and_parquet(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("One document.\n\nStill the same one.\n")
    assert [d.text for d in load_texts("a", str(tmp_path / "a.txt")).docs] == [
        "One document.\n\nStill the same one.\n"
    ]
    rows = [{"text": "first"}, {"text": ""}, {"text": "third"}]
    assert len(load_texts("b", str(write_jsonl(tmp_path / "b.jsonl", rows))).docs) == 2
    parquet = write_parquet(tmp_path / "part-00000.parquet", rows)
    assert [d.text for d in load_texts("c", str(parquet), limit=1).docs] == ["first"]


# ---- where rows come from ------------------------------------------------------------------


def test_a_folder_in_the_hub_layout_reads_the_scored_split(tmp_path: Path) -> None:
    """As the Hub publishes ARC: ARC-Easy/{train,validation,test}-00000-of-00001.parquet."""
    folder = tmp_path / "ai2_arc" / "ARC-Easy"
    folder.mkdir(parents=True)
    row = {"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}}
    write_parquet(folder / "train-00000-of-00001.parquet", [{**row, "answerKey": "A"}] * 5)
    write_parquet(folder / "test-00000-of-00001.parquet", [{**row, "answerKey": "B"}] * 3)
    write_parquet(folder / "validation-00000-of-00001.parquet", [{**row, "answerKey": "A"}])
    task = load_task("arc_easy", str(tmp_path / "ai2_arc"))
    assert len(task.items) == 3 and {i.gold for i in task.items} == {1}  # the test split
    hellaswag = tmp_path / "hellaswag" / "default" / "validation"
    hellaswag.mkdir(parents=True)
    write_parquet(hellaswag / "0000.parquet", [HELLASWAG, HELLASWAG])
    (hellaswag.parent / "train").mkdir()
    write_parquet(hellaswag.parent / "train" / "0000.parquet", [HELLASWAG])
    assert split_files(str(tmp_path / "hellaswag"), "validation") == [
        str(hellaswag / "0000.parquet")
    ]
    with pytest.raises(InputError, match="no 'test' split"):
        split_files(str(tmp_path / "hellaswag"), "test")


def test_hub_names_resolve_to_the_sets_the_harness_scores() -> None:
    assert hub_source("hellaswag", "hub") == ("Rowan/hellaswag", "default", "validation")
    assert hub_source("arc_challenge", "hub").config == "ARC-Challenge"
    assert hub_source("arc_easy", "hf://datasets/allenai/ai2_arc/ARC-Easy/validation") == (
        "allenai/ai2_arc",
        "ARC-Easy",
        "validation",
    )
    with pytest.raises(InputError, match="not a published set"):
        hub_source("my_quiz", "hub")


def test_tasks_on_s3(s3_bucket: str, tmp_path: Path) -> None:
    from smelt import storage

    path = write_jsonl(tmp_path / "quiz.jsonl", [GOOD, GOOD])
    storage.put_file(str(path), f"{s3_bucket}/tasks/quiz.jsonl")
    assert len(load_task("quiz", f"{s3_bucket}/tasks/quiz.jsonl").items) == 2
    with pytest.raises(InputError, match="input not found"):
        load_task("quiz", f"{s3_bucket}/tasks/missing.jsonl")
