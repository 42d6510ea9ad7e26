"""What a command shows on stderr while it works, and the third-party output it hides.

Results go to stdout, progress to stderr: each phase of a run is announced, either on a
line that gets its duration when the phase ends (``loading data: svamp … 3.9 s``) or with
a bar (the judge's pre-training, training, validation and test decoding).  Nothing here
imports a heavy library, so the CLI can call ``quiet_third_party`` before any command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Callable, Iterable, Iterator

LONG_SEQUENCE = "Token indices sequence length is longer than the specified maximum"


@contextlib.contextmanager
def phase(text: str, show: bool = True) -> Iterator[None]:
    """Announce a phase on stderr and end its line with how long it took.  On a terminal
    the line shows while the phase runs and is erased if it fails, so that an error stays
    one line; in a log the line is written when the phase ends."""
    if not show:
        yield
        return
    live = sys.stderr.isatty()
    if live:
        print(f"{text} …", end="", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        if live:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
        raise
    took = f" {time.perf_counter() - started:.1f} s"
    print(took if live else f"{text} …{took}", file=sys.stderr, flush=True)


def progress(text: str, leave: bool = True, unit: str = "batch") -> Callable[[Iterable], Iterable]:
    """A bar over an iterable, on stderr: ``progress("decoding the test set")(chunks)``.
    ``leave=False`` for a bar shown inside another one (validation inside training)."""
    from tqdm.auto import tqdm

    return lambda items: tqdm(items, desc=text, leave=leave, unit=unit, file=sys.stderr)


def bar(text: str, total: int, unit: str = "step"):
    """A bar advanced by hand (``update``), for work that reports its own steps."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=text, unit=unit, file=sys.stderr)


class _DropLongSequenceWarning(logging.Filter):
    """transformers warns when a text tokenized without truncation is longer than the
    model takes.  Every text qcrd-bench feeds a model is truncated explicitly; the only
    untruncated calls measure lengths (the judge clips each rationale to the tokens the
    student learns, on purpose; runs log the share cut as data/rationale_truncated)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(LONG_SEQUENCE)


def quiet_third_party() -> None:
    """Hide library output that is not the user's concern: MLflow's INFO lines (creating
    a store's tables, a new experiment), the "View run … at" links it writes to stdout for
    a tracking server (in the middle of `run --json`; qcrd-bench prints its own link, to
    the runs table with its columns) and the long-sequence warning above.  Warnings and
    errors still show."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if "mlflow" in sys.modules:
        logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"])
    tokenizer_log = logging.getLogger("transformers.tokenization_utils_base")
    if not any(isinstance(f, _DropLongSequenceWarning) for f in tokenizer_log.filters):
        tokenizer_log.addFilter(_DropLongSequenceWarning())
