"""Options shared by the commands that take a profile and an operating point."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "OBJECTIVES",
    "AlphaOption",
    "JsonOption",
    "MaxTokensOption",
    "ProfileArgument",
    "RateOption",
    "Tau0Option",
    "Tau1Option",
    "slo_option",
]

ProfileArgument = Annotated[
    Path | None,
    typer.Argument(
        metavar="PROFILE",
        help="Profile file (.toml or .json). Default: the paper's Table I.",
        show_default=False,
    ),
]
RateOption = Annotated[
    float | None, typer.Option("--rate", help="Override the arrival rate lambda (1/s).")
]
AlphaOption = Annotated[
    float | None, typer.Option("--alpha", help="Override alpha (weight of accuracy).")
]
MaxTokensOption = Annotated[
    int | None, typer.Option("--max-tokens", help="Override l_max (tokens).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
Tau0Option = Annotated[
    float | None,
    typer.Option("--tau0", help="Step time tau0 (s) of the server (default: the profile's)."),
]
Tau1Option = Annotated[
    float | None,
    typer.Option("--tau1", help="Step time tau1 (s per sequence in the batch) of the server."),
]


#: The objectives ``--slo`` takes, for its help.
OBJECTIVES = "A latency objective ('p95<=8s', 'mean<=2s', 'gsm8k:p99<=15s'; repeatable)"


def slo_option(purpose: str) -> Any:
    """``--slo OBJECTIVE`` (repeatable), its help the objectives and then ``purpose``."""
    return typer.Option("--slo", metavar="OBJECTIVE", help=f"{OBJECTIVES}: {purpose}")
