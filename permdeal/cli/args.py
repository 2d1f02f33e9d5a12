"""Argument types of the command line: each turns a flag's text into a value or an argparse
error with the one wording the API uses (:class:`~permdeal.errors.PermdealError`)."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from permdeal.api.settings import GEN_SETTINGS, parse_int, user_format
from permdeal import checks
from permdeal.errors import PermdealError
from permdeal.golden.formats import MAX_BITS, Fixed


def arg(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a parser that raises :class:`PermdealError`."""
    def convert(text):
        try:
            return parse(text)
        except PermdealError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = parse.__name__
    return convert


@arg
def positive(text: str) -> int:
    return parse_int(text, 1)


@arg
def groups(text: str) -> int | str | tuple[int, ...]:
    """``auto``, a whole number of at least 1, or one per layer separated by commas
    (``--groups``)."""
    return GEN_SETTINGS["groups"][0](text)


@arg
def seed(text: str) -> int:
    """An integer in ``[0, MAX_SEED]`` (32 bits: every generator the flow seeds takes that)."""
    try:
        value = int(text)
    except ValueError:
        raise PermdealError(f"expected an integer, got {text!r}") from None
    return checks.seed(value, "seed")


@arg
def int_list(text: str) -> list[int]:
    """``A,B,C``: a list of integers >= 1."""
    return [parse_int(v, 1) for v in text.split(",")]


@arg
def block_sizes(text: str) -> int | list[int]:
    """``P`` (every layer) or ``P1,P2,...`` (one per layer)."""
    values = [parse_int(v, 1) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


@arg
def bits(text: str) -> int:
    value = parse_int(text, 2)
    if value > MAX_BITS:
        raise PermdealError(f"bit width must be at most {MAX_BITS}, not {value}")
    return value


@arg
def number_format(text: str) -> Fixed:
    return user_format(text)
