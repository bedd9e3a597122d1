"""Benchmark loading: the local copies, deterministic samples, GPQA's privacy, errors.

The local copies live outside the repository, in ``../shared/data/benchmarks`` (see its
README); tests that read them skip, saying so, where that folder is absent. GPQA items
are never printed: assertions on them are plain booleans with messages that name ids.
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
import types
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from thinkq.errors import DatasetError, ThinkqError
from thinkq.measure import BBH_TASKS, DATASETS, Item, grade, load_dataset, sample_items

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks"
needs_data = pytest.mark.skipif(
    not BENCHMARKS.is_dir(),
    reason="local benchmark copies not found at ../shared/data/benchmarks (outside the repo)",
)

# item counts of the README of the local copies
COUNTS = {
    "aime": 60,
    "aime24": 30,
    "aime25": 30,
    "arc_challenge": 1172,
    "bbh": 6511,
    "cruxeval": 800,
    "gpqa": 198,
    "gsm8k": 1319,
}


def model_answer(item: Item) -> str:
    """A correct answer to ``item`` written the way its prompt asks for it."""
    family = item.dataset.split("/")[0]
    if family == "gsm8k":
        return f"Adding the two amounts gives the total.\nThe answer is {item.answer}"
    if family == "aime":
        return f"Hence m + n is the result.\n\\boxed{{{item.answer}}}"
    if family in ("gpqa", "arc_challenge"):
        return f"Comparing the options, one fits.\nAnswer: {item.answer}"
    if family == "bbh":
        return f"Let's check each step.\nSo the answer is {item.answer}."
    return f"Running f step by step.\n[ANSWER]\nassert f(x) == {item.answer}\n[/ANSWER]"


@pytest.fixture(scope="module")
def every_item() -> dict[str, list[Item]]:
    if not BENCHMARKS.is_dir():
        pytest.skip("local benchmark copies not found at ../shared/data/benchmarks")
    return {name: load_dataset(name, data_dir=BENCHMARKS) for name in COUNTS}


def _gpqa_rows() -> dict[str, dict[str, str]]:
    with gzip.open(BENCHMARKS / "gpqa" / "gpqa_diamond.csv.gz", "rt", encoding="utf-8") as f:
        return {row["Record ID"]: row for row in csv.DictReader(f)}


# ---------------------------------------------------------------- the local copies


def test_dataset_names_are_the_documented_ones():
    assert set(DATASETS) == set(COUNTS)
    assert len(BBH_TASKS) == 27


@needs_data
@pytest.mark.parametrize("name", sorted(COUNTS))
def test_counts_match_the_readme(every_item, name):
    items = every_item[name]
    assert len(items) == COUNTS[name]
    keys = {(item.dataset, item.item_id) for item in items}
    assert len(keys) == len(items), "item ids are not unique"
    assert all(item.prompt and item.answer for item in items)


@needs_data
def test_bbh_has_every_task_with_its_kind_of_answer(every_item):
    tasks = Counter(item.dataset for item in every_item["bbh"])
    assert set(tasks) == {f"bbh/{task}" for task in BBH_TASKS}
    assert tasks["bbh/penguins_in_a_table"] == 146
    assert tasks["bbh/snarks"] == 178
    for item in every_item["bbh"]:
        kind = BBH_TASKS[item.dataset.removeprefix("bbh/")]
        if kind == "choice" and item.answer.startswith("("):
            assert item.answer[1] in item.choices, item.item_id
        if kind != "choice":
            assert item.choices == ()


@needs_data
def test_bbh_subset_loads_only_the_named_tasks():
    items = load_dataset("bbh", data_dir=BENCHMARKS, subset=["navigate", "word_sorting"])
    assert Counter(item.dataset for item in items) == {
        "bbh/navigate": 250,
        "bbh/word_sorting": 250,
    }


@needs_data
def test_aime_ids_and_answers(every_item):
    items = every_item["aime"]
    ids = [item.item_id for item in items]
    assert "2024-I-1" in ids
    assert "2024-II-15" in ids
    assert "2025-II-15" in ids
    assert all(0 <= int(item.answer) <= 999 for item in items)
    assert any(item.answer.startswith("0") for item in items), "leading zeros kept"
    assert all("\\boxed{}" in item.prompt for item in items)


@needs_data
def test_gsm8k_answer_is_the_number_after_the_hashes(every_item):
    first = every_item["gsm8k"][0]
    assert first.item_id == "0"
    assert first.answer == "18"
    assert "Janet" in first.prompt
    assert "The answer is" in first.prompt


@needs_data
def test_arc_numeric_labels_become_letters(every_item):
    text = (BENCHMARKS / "arc_challenge" / "ARC-Challenge-Test.jsonl").read_text("utf-8")
    raw = [json.loads(line) for line in text.splitlines()]
    by_id = {item.item_id: item for item in every_item["arc_challenge"]}
    numeric = [row for row in raw if row["answerKey"].isdigit()]
    assert len(numeric) == 22
    for row in numeric:
        item = by_id[row["id"]]
        assert item.answer == "ABCDE"[int(row["answerKey"]) - 1]
        assert item.choices == tuple("ABCDE"[: len(row["question"]["choices"])])
        correct = row["question"]["choices"][int(row["answerKey"]) - 1]["text"]
        assert f"\n{item.answer}) {correct.strip()}" in item.prompt
    assert Counter(len(item.choices) for item in by_id.values())[5] == 3


@needs_data
def test_cruxeval_prompt_asks_for_the_output_of_the_given_input(every_item):
    first = every_item["cruxeval"][0]
    assert first.item_id == "sample_0"
    assert "assert f([1, 1, 3, 1, 3, 1]) == ??" in first.prompt
    assert first.answer == "[(4, 1), (4, 1), (4, 1), (4, 1), (2, 3), (2, 3)]"


@needs_data
@pytest.mark.parametrize("name", sorted(COUNTS))
def test_every_reference_passes_its_own_grader(every_item, name):
    failed = [
        item.item_id for item in every_item[name] if not grade(item, model_answer(item)).correct
    ]
    assert failed == []


@needs_data
def test_the_data_dir_may_be_the_benchmark_folder_or_its_file():
    whole = load_dataset("cruxeval", data_dir=BENCHMARKS)
    assert load_dataset("cruxeval", data_dir=BENCHMARKS / "cruxeval") == whole
    assert (
        load_dataset("cruxeval", data_dir=str(BENCHMARKS / "cruxeval" / "cruxeval.jsonl")) == whole
    )
    one_task = load_dataset("bbh", data_dir=BENCHMARKS / "bbh" / "snarks.json", subset=["snarks"])
    assert len(one_task) == 178


# ---------------------------------------------------------------- sampling


@needs_data
def test_sampling_is_deterministic_nested_and_in_source_order(every_item):
    first = load_dataset("gsm8k", data_dir=BENCHMARKS, n=20, seed=7)
    again = load_dataset("gsm8k", data_dir=BENCHMARKS, n=20, seed=7)
    assert first == again
    other = load_dataset("gsm8k", data_dir=BENCHMARKS, n=20, seed=8)
    assert {i.item_id for i in other} != {i.item_id for i in first}
    smaller = load_dataset("gsm8k", data_dir=BENCHMARKS, n=10, seed=7)
    assert {i.item_id for i in smaller} < {i.item_id for i in first}
    positions = [int(item.item_id) for item in first]
    assert positions == sorted(positions)


@needs_data
def test_sampling_is_pinned_across_versions():
    # a change here changes which questions every past run measured
    items = load_dataset("gsm8k", data_dir=BENCHMARKS, n=5, seed=0)
    assert [item.item_id for item in items] == GSM8K_SEED0_N5


GSM8K_SEED0_N5 = ["11", "269", "855", "921", "1185"]


def test_n_larger_than_the_set_gives_every_item():
    items = [Item("gsm8k", str(i), f"q{i}", str(i)) for i in range(5)]
    assert sample_items(items, 5, seed=3) == items
    assert sample_items(items, 50, seed=3) == items
    assert sample_items(items, None) == items
    assert len(sample_items(items, 2, seed=3)) == 2


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_n_must_be_a_positive_integer(n):
    with pytest.raises(DatasetError, match=r"^n: ") as info:
        load_dataset("gsm8k", data_dir="unused", n=n)
    assert info.value.field == "n"


# ---------------------------------------------------------------- GPQA


@needs_data
def test_gpqa_shuffle_is_fixed_per_item_and_tracks_the_correct_answer(every_item):
    items = every_item["gpqa"]
    rows = _gpqa_rows()
    again = {item.item_id: item for item in load_dataset("gpqa", data_dir=BENCHMARKS)}
    sampled = load_dataset("gpqa", data_dir=BENCHMARKS, n=10, seed=5)
    assert all(item == again[item.item_id] for item in items)
    assert all(item == again[item.item_id] for item in sampled), "shuffle depends on the sample"
    tracked = []
    for item in items:
        row = rows[item.item_id]
        options = [row["Correct Answer"]] + [row[f"Incorrect Answer {k}"] for k in (1, 2, 3)]
        lines = [f"\n{letter}) " for letter in item.choices]
        correct_line = f"\n{item.answer}) {options[0].strip()}"
        every_option_once = all(f") {text.strip()}" in item.prompt for text in options)
        tracked.append(correct_line in item.prompt and every_option_once)
        tracked[-1] &= all(line in item.prompt for line in lines)
    bad = [item.item_id for item, ok in zip(items, tracked, strict=True) if not ok]
    assert bad == []
    letters = Counter(item.answer for item in items)
    assert set(letters) == {"A", "B", "C", "D"}
    assert max(letters.values()) < 80


@needs_data
def test_gpqa_items_do_not_show_their_text(every_item):
    rows = _gpqa_rows()
    leaked = []
    for item in every_item["gpqa"]:
        question = rows[item.item_id]["Question"].strip()[:40]
        shown = repr(item) + str(item) + repr([item]) + f"{item}"
        if question in shown or question not in item.prompt:
            leaked.append(item.item_id)
        assert item.private
    assert leaked == []
    assert not every_item["gsm8k"][0].private
    assert "Janet" in repr(every_item["gsm8k"][0])


def test_gpqa_errors_name_the_field_not_the_content(tmp_path):
    secret = "A secret question that must not appear"
    header = ["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2"]
    with gzip.open(tmp_path / "gpqa_diamond.csv.gz", "wt", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*header, "Record ID"])
        writer.writerow([secret, "x", "y", "z", "rec1"])
    with pytest.raises(DatasetError) as info:
        load_dataset("gpqa", data_dir=tmp_path)
    message = str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__, "pydantic's error quotes the row"
    assert "row 1" in message
    assert "incorrect" in message
    assert secret not in message
    assert "\n" not in message


# ---------------------------------------------------------------- errors


def test_dataset_error_is_a_thinkq_error_and_a_value_error():
    assert issubclass(DatasetError, ThinkqError)
    assert issubclass(DatasetError, ValueError)


def test_unknown_names_and_tasks_are_refused():
    with pytest.raises(DatasetError, match=r"^name: unknown dataset 'mmlu'"):
        load_dataset("mmlu")
    with pytest.raises(DatasetError, match=r"^subset: only bbh"):
        load_dataset("gsm8k", subset=["navigate"])
    with pytest.raises(DatasetError, match=r"^subset: unknown BBH task 'chess'"):
        load_dataset("bbh", data_dir="unused", subset=["navigate", "chess"])
    with pytest.raises(DatasetError, match=r"^subset: is empty"):
        load_dataset("bbh", data_dir="unused", subset=[])


def test_a_missing_file_names_data_dir(tmp_path):
    with pytest.raises(DatasetError, match=r"^data_dir: no gsm8k/test.jsonl under") as info:
        load_dataset("gsm8k", data_dir=tmp_path)
    assert info.value.field == "data_dir"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"question": "q"}', "test.jsonl row 1: field 'answer' field required"),
        ('{"question": "q", "answer": "no hashes"}', "field 'answer' value error"),
        ("{not json", "test.jsonl line 1: not JSON"),
        ("[1, 2]", "test.jsonl line 1: not a JSON object"),
    ],
)
def test_malformed_rows_name_line_and_field(tmp_path, line, expected):
    (tmp_path / "test.jsonl").write_text(line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_dataset("gsm8k", data_dir=tmp_path)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_an_aime_answer_outside_0_999_is_refused(tmp_path):
    row = {"id": "2025-I-1", "problem": "p", "answer": 1000}
    (tmp_path / "aime25.jsonl").write_text(json.dumps(row), encoding="utf-8")
    with pytest.raises(DatasetError, match="field 'answer' value error, is not an integer"):
        load_dataset("aime25", data_dir=tmp_path)


# ---------------------------------------------------------------- Hugging Face path


def test_without_the_hf_extra_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(DatasetError, match=r"needs the optional 'hf' extra") as info:
        load_dataset("gsm8k")
    assert "pip install 'thinkq[hf]'" in str(info.value)
    assert info.value.field == "data_dir"


def _fake_hub(monkeypatch: pytest.MonkeyPatch, tables: dict[tuple[str, Any], list[Any]]) -> None:
    """Install a stand-in ``datasets`` module serving ``tables`` (no network)."""

    def fake_load(repo: str, config: str | None = None, *, split: str) -> list[Any]:
        if (repo, config) not in tables:
            raise ConnectionError(f"offline: {repo}")
        return tables[repo, config]

    module = types.ModuleType("datasets")
    module.load_dataset = fake_load  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)


def test_hub_rows_are_adapted_to_the_local_layout(monkeypatch):
    arc_row = {
        "id": "Mercury_1",
        "question": "Which is a planet?",
        "choices": {"text": ["Sun", "Mars", "Moon"], "label": ["1", "2", "3"]},
        "answerKey": "2",
    }
    _fake_hub(
        monkeypatch,
        {
            ("allenai/ai2_arc", "ARC-Challenge"): [arc_row],
            ("openai/gsm8k", "main"): [{"question": "1+1?", "answer": "1+1=2\n#### 2"}],
            ("Maxwell-Jia/AIME_2024", None): [{"ID": "2024-II-4", "Problem": "p", "Answer": 33}],
            ("MathArena/aime_2025", None): [{"problem_idx": 17, "problem": "p", "answer": 7}],
            ("SaylorTwift/bbh", "navigate"): [{"input": "Go left?", "target": "No"}],
        },
    )
    (arc,) = load_dataset("arc_challenge")
    assert (arc.item_id, arc.answer, arc.choices) == ("Mercury_1", "B", ("A", "B", "C"))
    assert "\nB) Mars" in arc.prompt
    assert [(i.item_id, i.answer) for i in load_dataset("gsm8k")] == [("0", "2")]
    assert [(i.item_id, i.answer) for i in load_dataset("aime")] == [
        ("2024-II-4", "33"),
        ("2025-II-2", "7"),
    ]
    (nav,) = load_dataset("bbh", subset=["navigate"])
    assert (nav.dataset, nav.answer) == ("bbh/navigate", "No")


def test_hub_failures_become_one_line_dataset_errors(monkeypatch):
    _fake_hub(monkeypatch, {})
    with pytest.raises(DatasetError, match=r"^gpqa: cannot load Idavidrein/gpqa .*ConnectionError"):
        load_dataset("gpqa")


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_seed_must_be_a_non_negative_integer(seed):
    with pytest.raises(DatasetError, match=r"^seed: ") as info:
        load_dataset("gsm8k", data_dir="unused", n=3, seed=seed)
    assert info.value.field == "seed"


@pytest.mark.parametrize(("name", "subset"), [("aime", None), ("bbh", None), ("bbh", ["a", "b"])])
def test_one_file_cannot_hold_a_set_of_several_files(tmp_path, name, subset):
    path = tmp_path / "one.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"^data_dir: .* spans several files"):
        load_dataset(name, data_dir=path, subset=subset)
