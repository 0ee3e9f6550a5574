"""Exercises with automatic checks, in the style of Kaggle's learntools: ``q1.check(answer)``, ``q1.hint()``, ``q1.solution()``.

Each lesson has a module (``exercises.lesson01`` … ``lesson09``) with its questions ``q1``, ``q2``, …; a learner's
untouched starter code returns the placeholder ``____`` and is reported as "not attempted", so the notebooks still
run from top to bottom. Solutions live here, outside the learner notebooks. Introduced in notebook 01.
"""
from __future__ import annotations

import importlib
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["____", "Placeholder", "Exercise", "FunctionExercise", "ValueExercise", "compare", "lesson", "Verdict", "CORRECT", "INCORRECT",
           "NOT_ATTEMPTED"]

class Verdict(str):
    """What ``check`` returns: a plain string ("correct", …) that Jupyter does not echo (the message is printed)."""

    def _ipython_display_(self) -> None:
        pass


CORRECT, INCORRECT, NOT_ATTEMPTED = Verdict("correct"), Verdict("incorrect"), Verdict("not attempted")


class Placeholder:
    """The blank in starter code; returning it (or leaving it in an answer) means "not attempted yet"."""

    def __repr__(self) -> str:
        return "____"

    def __bool__(self) -> bool:
        return False


____ = Placeholder()


def _contains_placeholder(value: Any) -> bool:
    if isinstance(value, Placeholder):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains_placeholder(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_placeholder(v) for v in value.values())
    return False


class _Mismatch(Exception):
    """Raised by a comparison with the message a learner should read."""


def _short(value: Any) -> str:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return np.array2string(value, precision=4, separator=", ")
        return f"array of shape {value.shape}, mean {float(np.mean(value)):.4g}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def compare(name: str, got: Any, expected: Any, rtol: float = 1e-4, atol: float = 1e-6) -> None:
    """Raise _Mismatch naming ``name`` unless ``got`` matches ``expected`` in type, shape and value (within tolerance)."""
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    if hasattr(expected, "detach"):
        expected = expected.detach().cpu().numpy()
    if isinstance(expected, (list, tuple)) and not isinstance(got, (list, tuple, np.ndarray)):
        raise _Mismatch(f"{name}: expected a list, got {type(got).__name__} ({_short(got)})")
    if got is None:
        raise _Mismatch(f"{name}: got None — did you forget `return`?")
    try:
        g, e = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    except (TypeError, ValueError):
        raise _Mismatch(f"{name}: expected a number or array, got {type(got).__name__} ({_short(got)})") from None
    if g.shape != e.shape:
        raise _Mismatch(f"{name}: wrong shape {g.shape}, expected {e.shape}")
    if not np.all(np.isfinite(g)):
        raise _Mismatch(f"{name}: contains NaN or inf")
    if not np.allclose(g, e, rtol=rtol, atol=atol):
        raise _Mismatch(f"{name}: yours is {_short(g)}, expected {_short(e)}")


@dataclass
class Exercise:
    """One question: ``check`` prints ✓ or what is wrong and returns "correct" / "incorrect" / "not attempted"."""

    title: str
    hints: list[str] = field(default_factory=list)
    solution_code: str = ""
    _hints_shown: int = 0

    def _judge(self, *answers) -> None:  # raise _Mismatch with a message, or return for "correct"
        raise NotImplementedError

    def check(self, *answers) -> str:
        """Check the learner's answer(s); print the verdict and return it."""
        if not answers or any(_contains_placeholder(a) for a in answers):
            print(f"○ {self.title}: not attempted yet — replace ____ with your code, then run the cell again.")
            return NOT_ATTEMPTED
        try:
            self._judge(*answers)
        except _Mismatch as err:
            if str(err) == NOT_ATTEMPTED:
                print(f"○ {self.title}: not attempted yet — your function still returns ____.")
                return NOT_ATTEMPTED
            print(f"✗ {self.title}: {err}")
            return INCORRECT
        print(f"✓ {self.title}: correct!")
        return CORRECT

    def hint(self, level: int | None = None) -> str:
        """Print hint ``level`` (1-based; default: the next one) and return it."""
        if not self.hints:
            text = "No hint for this one; try solution()."
        else:
            if level is None:
                self._hints_shown = min(self._hints_shown + 1, len(self.hints))
                level = self._hints_shown
            if not isinstance(level, int) or not 1 <= level <= len(self.hints):
                raise ValueError(f"hint: `level` must be an int in [1, {len(self.hints)}], got {level!r}")
            text = f"Hint {level}/{len(self.hints)}: {self.hints[level - 1]}"
        print(text)
        return text

    def solution(self) -> str:
        """Print and return a solution."""
        text = textwrap.dedent(self.solution_code).strip()
        print(text)
        return text


@dataclass
class FunctionExercise(Exercise):
    """Implement-it-yourself: the learner's function is called on test cases and compared with the reference."""

    reference: Callable | None = None
    cases: Callable[[], list] | None = None  # -> list of (args tuple, description)
    rtol: float = 1e-4
    atol: float = 1e-6
    # more checks once the values match: ``also(func)`` returns a message saying what is still wrong, or None
    also: Callable[[Callable], str | None] | None = None

    def _judge(self, func) -> None:
        if not callable(func):
            raise _Mismatch(f"expected your function, got {type(func).__name__}")
        self._judge_values(func)
        if self.also is not None:
            try:
                problem = self.also(func)
            except Exception as err:  # the learner's code failed in the extra check
                raise _Mismatch(f"your function raised {type(err).__name__}: {err}") from None
            if problem:
                raise _Mismatch(problem)

    def _judge_values(self, func) -> None:
        if self.cases is None:  # an exercise checked by ``also`` alone (its answer is not a value to compare)
            return
        for args, description in self.cases():
            expected = self.reference(*args)
            try:
                got = func(*args)
            except Exception as err:  # the learner's code failed: say where, not a traceback
                raise _Mismatch(f"your function raised {type(err).__name__}: {err} (for {description})") from None
            if _contains_placeholder(got):
                raise _Mismatch(NOT_ATTEMPTED)
            if isinstance(expected, tuple):  # a list or a 1-D array of the right length is a right answer too
                if isinstance(got, np.ndarray) and got.ndim >= 1:
                    got = tuple(got)
                if not isinstance(got, (tuple, list)) or len(got) != len(expected):
                    raise _Mismatch(f"for {description}: expected a tuple of {len(expected)} values, got {_short(got)}")
                for i, (g, e) in enumerate(zip(got, expected)):
                    compare(f"for {description}, value {i + 1}", g, e, self.rtol, self.atol)
            else:
                compare(f"for {description}", got, expected, self.rtol, self.atol)


@dataclass
class ValueExercise(Exercise):
    """A number (or a few) to compute; the expected value is computed, not stored, and not revealed by ``check``."""

    expected: Callable[[], Any] | None = None
    rtol: float = 1e-3
    atol: float = 1e-6

    def _judge(self, value) -> None:
        try:
            compare("your value", value, self.expected(), self.rtol, self.atol)
        except _Mismatch as err:
            message = str(err).split(", expected")[0]  # keep the expected value for solution()
            raise _Mismatch(message + " — not quite; try hint()") from None


def lesson(number: int):
    """The exercises module of lesson ``number`` (1–9): ``ex = lesson(3); ex.q1.check(...)``. Introduced in notebook 01."""
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 9:
        raise ValueError(f"lesson: `number` must be an int in [1, 9], got {number!r}")
    return importlib.import_module(f"{__name__}.lesson{number:02d}")
