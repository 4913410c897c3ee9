"""Task rows -> scoring items, with lm-evaluation-harness 0.4's prompt for each published set.

A task named after a published set reads rows in that set's own layout, as the Hugging Face
datasets publish them; any other name reads the generic layout. Each converter mirrors the
harness's task definition (`lm_eval/tasks/<set>/*.yaml` and its `utils.py`) so that the same
row gives the same (context, continuation) strings:

| name | dataset (config, split the harness scores) | prompt |
|---|---|---|
| hellaswag | Rowan/hellaswag (default, validation) | `activity_label: ctx_a Ctx_b` cleaned -> ending |
| arc_easy, arc_challenge | allenai/ai2_arc (ARC-Easy / ARC-Challenge, test) | `Question: q\\nAnswer:` -> choice |
| piqa | baber/piqa (default, validation) | `Question: goal\\nAnswer:` -> sol1 / sol2 |
| winogrande | allenai/winogrande (winogrande_xl, validation) | sentence up to `_` + option -> the rest (partial scoring) |
| boolq | aps/super_glue (boolq, validation) | `passage\\nQuestion: question?\\nAnswer:` -> no / yes |
| lambada | EleutherAI/lambada_openai (default, test) | all words but the last -> ` last` |
| any other | generic `{"context", "choices", "label"}` | context -> choice |

Continuations of multiple-choice sets are the choice after the target delimiter `" "`.
A converter raises `RowError` with what is wrong; `parse_rows` adds the file and row number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from smelt.errors import InputError
from smelt.evaluation.items import ChoiceItem, ClozeItem, Task, TaskKind

TARGET_DELIMITER = " "  # the harness's default between context and choice


class RowError(ValueError):
    """One row does not hold a valid item; the message says what is wrong with it."""


class HubSource(NamedTuple):
    """Where the Hub publishes a set: repository, config and the split the harness scores."""

    repo: str
    config: str
    split: str


@dataclass(frozen=True)
class Layout:
    """A row layout: the keys that identify it, the converter, the kind of task it makes."""

    name: str
    keys: tuple[str, ...]  # keys every row must have (the label is checked per row)
    convert: Callable[[dict[str, Any]], ChoiceItem | ClozeItem]
    kind: TaskKind = "multiple_choice"
    hub: HubSource | None = None


# ---- helpers -------------------------------------------------------------------------------


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        kind = "missing" if value is None else f"a {type(value).__name__}"
        raise RowError(f"field '{key}' is {kind}, not a string")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise RowError(f"{what} must be a list of strings, got {type(value).__name__}")
    return list(value)


def _missing_label(key: str) -> RowError:
    return RowError(
        f"no label (field '{key}' is missing or empty); published test splits carry no "
        "labels: score the split the set publishes labels for"
    )


def _index_label(value: Any, key: str, count: int, offset: int = 0) -> int:
    """A label given as an int or a digit string (`"2"`), checked against `count` choices."""
    if value is None or value == "" or value == -1:
        raise _missing_label(key)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RowError(f"label '{key}' must be an integer, got {type(value).__name__}")
    if isinstance(value, str):
        if not value.strip().lstrip("-").isdigit():
            raise RowError(f"label '{key}' must be an integer, got {value!r}")
        value = int(value)
    gold = value - offset
    if not 0 <= gold < count:
        raise RowError(f"label '{key}' = {value} is out of range for {count} choices")
    return gold


def _fixed_count(choices: list[str], expected: int, what: str) -> None:
    if len(choices) != expected:
        raise RowError(f"{what} has {len(choices)} choices where the set has {expected}")


def multiple_choice(context: str, choices: list[str], gold: int) -> ChoiceItem:
    """The harness's `multiple_choice` request for one row: context -> " " + each choice."""
    return ChoiceItem(
        requests=tuple((context, TARGET_DELIMITER + choice) for choice in choices),
        gold=gold,
        lengths=tuple(len(choice) for choice in choices),
    )


# ---- the published sets --------------------------------------------------------------------


def _hellaswag_clean(text: str) -> str:
    """lm_eval/tasks/hellaswag/utils.py `preprocess`: WikiHow's bracketed artifacts out."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag(row: dict[str, Any]) -> ChoiceItem:
    ctx = _text(row, "ctx_a") + " " + _text(row, "ctx_b").capitalize()
    query = _hellaswag_clean(_text(row, "activity_label") + ": " + ctx)
    endings = _strings(row.get("endings"), "'endings'")
    _fixed_count(endings, 4, "'endings'")
    choices = [_hellaswag_clean(e) for e in endings]
    return multiple_choice(query, choices, _index_label(row.get("label"), "label", 4))


def arc(row: dict[str, Any]) -> ChoiceItem:
    question = _text(row, "question")
    choices = row.get("choices")
    if not isinstance(choices, dict):
        raise RowError("'choices' must be an object with 'text' and 'label' lists")
    texts = _strings(choices.get("text"), "'choices.text'")
    labels = _strings(choices.get("label"), "'choices.label'")
    if len(texts) != len(labels):
        raise RowError(
            f"choices of different counts: {len(texts)} in 'choices.text' but "
            f"{len(labels)} in 'choices.label'"
        )
    key = row.get("answerKey")
    if key in (None, ""):
        raise _missing_label("answerKey")
    if key not in labels:
        raise RowError(f"answerKey {key!r} is not one of the choice labels {labels}")
    return multiple_choice(f"Question: {question}\nAnswer:", texts, labels.index(key))


def piqa(row: dict[str, Any]) -> ChoiceItem:
    choices = [_text(row, "sol1"), _text(row, "sol2")]
    gold = _index_label(row.get("label"), "label", 2)
    return multiple_choice(f"Question: {_text(row, 'goal')}\nAnswer:", choices, gold)


def winogrande(row: dict[str, Any]) -> ChoiceItem:
    """Partial scoring (Trinh & Le 2018, as the harness does it): each option fills the blank
    in its own context, and the same rest of the sentence is scored after each."""
    sentence = _text(row, "sentence")
    blank = sentence.find("_")
    if blank < 0:
        raise RowError("'sentence' has no '_' blank to fill")
    options = [_text(row, "option1"), _text(row, "option2")]
    answer = row.get("answer")
    if answer in (None, ""):
        raise _missing_label("answer")
    if str(answer) not in ("1", "2"):
        raise RowError(f"'answer' must be '1' or '2', got {answer!r}")
    contexts = [sentence[:blank] + option for option in options]
    rest = TARGET_DELIMITER + sentence[blank + 1 :].strip()
    return ChoiceItem(
        requests=tuple((context, rest) for context in contexts),
        gold=int(answer) - 1,
        lengths=tuple(len(context) for context in contexts),
    )


def boolq(row: dict[str, Any]) -> ChoiceItem:
    """SuperGLUE's `label` (0 = no, 1 = yes); google/boolq's boolean `answer` also works."""
    prompt = f"{_text(row, 'passage')}\nQuestion: {_text(row, 'question')}?\nAnswer:"
    if "label" not in row and isinstance(row.get("answer"), bool):
        gold = int(row["answer"])
    else:
        gold = _index_label(row.get("label"), "label", 2)
    return multiple_choice(prompt, ["no", "yes"], gold)


def lambada(row: dict[str, Any]) -> ClozeItem:
    words = _text(row, "text").split(" ")
    if len(words) < 2 or not words[-1]:
        raise RowError("'text' needs at least two words, the last one to predict")
    return ClozeItem(" ".join(words[:-1]), " " + words[-1])


def generic(row: dict[str, Any]) -> ChoiceItem:
    choices = _strings(row.get("choices"), "'choices'")
    if len(choices) < 2:
        raise RowError(f"'choices' has {len(choices)} entries; a question needs at least 2")
    if "label" not in row:
        raise _missing_label("label")
    return multiple_choice(
        _text(row, "context"), choices, _index_label(row.get("label"), "label", len(choices))
    )


LAYOUTS: dict[str, Layout] = {
    "hellaswag": Layout(
        "hellaswag",
        ("activity_label", "ctx_a", "ctx_b", "endings"),
        hellaswag,
        hub=HubSource("Rowan/hellaswag", "default", "validation"),
    ),
    "arc_easy": Layout(
        "arc_easy",
        ("question", "choices"),
        arc,
        hub=HubSource("allenai/ai2_arc", "ARC-Easy", "test"),
    ),
    "arc_challenge": Layout(
        "arc_challenge",
        ("question", "choices"),
        arc,
        hub=HubSource("allenai/ai2_arc", "ARC-Challenge", "test"),
    ),
    "piqa": Layout(
        "piqa",
        ("goal", "sol1", "sol2"),
        piqa,
        hub=HubSource("baber/piqa", "default", "validation"),
    ),
    "winogrande": Layout(
        "winogrande",
        ("sentence", "option1", "option2"),
        winogrande,
        hub=HubSource("allenai/winogrande", "winogrande_xl", "validation"),
    ),
    "boolq": Layout(
        "boolq",
        ("passage", "question"),
        boolq,
        hub=HubSource("aps/super_glue", "boolq", "validation"),
    ),
    "lambada": Layout(
        "lambada",
        ("text",),
        lambada,
        kind="cloze",
        hub=HubSource("EleutherAI/lambada_openai", "default", "test"),
    ),
}
GENERIC = Layout("generic", ("context", "choices"), generic)
NAMED_TASKS = tuple(LAYOUTS)


def layout_for(name: str) -> Layout:
    """The published layout of `name`, or the generic one for any other name."""
    return LAYOUTS.get(name, GENERIC)


def parse_rows(
    name: str, rows: Iterable[tuple[int, Any]], source: str, limit: int | None = None
) -> Task:
    """A task from numbered rows (1-based) of `source`; InputError names the file and row."""
    layout = layout_for(name)
    items: list[ChoiceItem | ClozeItem] = []
    for number, row in rows:
        if limit is not None and len(items) >= limit:
            break
        if not isinstance(row, dict):
            raise InputError(
                f"{source} row {number}: expected a JSON object, got {type(row).__name__}"
            )
        missing = [key for key in layout.keys if key not in row]
        if missing:
            raise InputError(_unknown_layout(name, layout, source, number, row, missing))
        try:
            items.append(layout.convert(row))
        except RowError as exc:
            raise InputError(f"{source} row {number} ({layout.name} layout): {exc}") from None
    if not items:
        raise InputError(f"{source}: no items for task {name!r}; the file has no rows")
    return Task(name, layout.kind, tuple(items), source, layout.name)


def _unknown_layout(
    name: str, layout: Layout, source: str, number: int, row: dict[str, Any], missing: list[str]
) -> str:
    found = ", ".join(sorted(map(str, row))) or "none"
    named = [n for n, other in LAYOUTS.items() if all(k in row for k in other.keys)]
    if layout is GENERIC:
        hint = (
            f"name the task {named[0]!r} to read that set's layout"
            if named
            else 'convert it to {"context": str, "choices": [str, ...], "label": int}'
        )
        what = f"task {name!r} reads the generic layout"
    else:
        hint = "give the file of that set as the Hugging Face datasets publish it"
        what = f"task {name!r} reads the {layout.name} layout"
    return (
        f"{source} row {number}: unknown layout: {what} but the row lacks "
        f"{', '.join(missing)} (it has: {found}); {hint}"
    )
