"""Measure a real LLM: benchmark items, prompts and graders (groundwork of issue 6).

:func:`load_dataset` gives the items of one of the paper's six benchmark sets (from
local copies or Hugging Face), each with the prompt a model is sent; :func:`grade`
reads a model's output and says whether its final answer matches the reference.
"""

from thinkq.measure.datasets import DATASETS, PRIVATE_DATASETS, Item, load_dataset, sample_items
from thinkq.measure.graders import (
    BBH_TASKS,
    Grade,
    grade,
    grade_aime,
    grade_bbh,
    grade_choice,
    grade_cruxeval,
    grade_gsm8k,
)

__all__ = [
    "BBH_TASKS",
    "DATASETS",
    "PRIVATE_DATASETS",
    "Grade",
    "Item",
    "grade",
    "grade_aime",
    "grade_bbh",
    "grade_choice",
    "grade_cruxeval",
    "grade_gsm8k",
    "load_dataset",
    "sample_items",
]
