"""Measure a real LLM: benchmark items, prompts, graders, budget forcing and the run.

:func:`load_dataset` gives the items of one of the paper's six benchmark sets (from
local copies or Hugging Face), each with the prompt a model is sent; :func:`grade`
reads a model's output and says whether its final answer matches the reference.
:class:`Server` talks to an OpenAI-compatible server; :class:`Forcer` makes its model
think for exactly ``l`` tokens and then answer (section IV-A), :class:`Capper` uses
the server's native budget field instead; :func:`plan` and :func:`run` measure a
grid of items, budgets and runs into a ``.jsonl`` file that ``thinkq fit`` reads.
"""

from thinkq.measure.cap import Capper
from thinkq.measure.datasets import DATASETS, load_dataset, sample_items
from thinkq.measure.forcing import Forcer
from thinkq.measure.generation import Generation, Generator, Piece, Sampling
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
from thinkq.measure.items import PRIVATE_DATASETS, Item
from thinkq.measure.prompts import Cue, answer_cue
from thinkq.measure.runner import Query, Tally, plan, run
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES, Template, Thinking, get_template

__all__ = [
    "BBH_TASKS",
    "DATASETS",
    "PRIVATE_DATASETS",
    "TEMPLATES",
    "Capper",
    "Cue",
    "Forcer",
    "Generation",
    "Generator",
    "Grade",
    "Item",
    "Piece",
    "Query",
    "Sampling",
    "Server",
    "Tally",
    "Template",
    "Thinking",
    "answer_cue",
    "get_template",
    "grade",
    "grade_aime",
    "grade_bbh",
    "grade_choice",
    "grade_cruxeval",
    "grade_gsm8k",
    "load_dataset",
    "plan",
    "run",
    "sample_items",
]
