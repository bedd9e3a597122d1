"""The benchmark item: one question of a benchmark set, ready to send to a model.

:class:`Item` is what :func:`~thinkq.measure.load_dataset` returns and what the
graders (:mod:`thinkq.measure.graders`) read. GPQA's authors ask that its questions
not be reposted in plain text: the ``repr`` of an item of :data:`PRIVATE_DATASETS`
hides its prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRIVATE_DATASETS", "Item"]

#: Datasets whose items must never be shown in plain text.
PRIVATE_DATASETS: frozenset[str] = frozenset({"gpqa"})


@dataclass(frozen=True, slots=True, repr=False)
class Item:
    """One benchmark question, ready to send to a model.

    Parameters
    ----------
    dataset:
        The query type: ``"gsm8k"``, ``"aime"``, ``"gpqa"``, ``"cruxeval"``,
        ``"arc_challenge"`` or ``"bbh/<task>"``.
    item_id:
        Stable identifier, unique within ``dataset`` (the source's id where it has
        one, else the 0-based position in the source file).
    prompt:
        The full text sent to the model, with the answer-format instruction.
    answer:
        The reference answer as the grader compares it (a number, an option letter,
        a Python literal, a BBH target).
    choices:
        The option letters of a multiple-choice item, in the order shown; ``()``
        otherwise.
    """

    dataset: str
    item_id: str
    prompt: str
    answer: str
    choices: tuple[str, ...] = ()

    @property
    def private(self) -> bool:
        """Whether the item's text must never be shown (GPQA)."""
        return self.dataset.split("/")[0] in PRIVATE_DATASETS

    def __repr__(self) -> str:
        prompt = f"<{len(self.prompt)} characters hidden>" if self.private else repr(self.prompt)
        return (
            f"Item(dataset={self.dataset!r}, item_id={self.item_id!r}, prompt={prompt}, "
            f"answer={self.answer!r}, choices={self.choices!r})"
        )
