"""A local tokenizer: the model's ``tokenizer.json``, for servers without a tokenize endpoint.

Budget forcing needs the ids of the tokens that end thinking. Servers of the four
common families tokenize on request (:class:`thinkq.measure.server.Server`); for any
other, :class:`LocalTokenizer` reads the Hugging Face ``tokenizer.json`` of the served
model with the ``tokenizers`` package (``pip install 'thinkq[tokenizer]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thinkq.errors import ServerError

__all__ = ["LocalTokenizer"]


class LocalTokenizer:
    """The tokenizer in a ``tokenizer.json`` file.

    Raises
    ------
    ServerError
        With ``field="tokenizer"``: the ``tokenizers`` package is missing, or the
        file is missing or not a tokenizer.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ServerError(
                "tokenizer: reading tokenizer.json needs the 'tokenizers' package "
                "(pip install 'thinkq[tokenizer]')",
                field="tokenizer",
            ) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise ServerError(f"tokenizer: {self.path}: no such file", field="tokenizer")
        try:
            self._tokenizer: Any = Tokenizer.from_file(str(self.path))
        except Exception as exc:  # the Rust library raises plain Exceptions
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ServerError(
                f"tokenizer: {self.path}: not a tokenizer.json ({first})", field="tokenizer"
            ) from exc

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``, special tokens recognised, none added."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)
