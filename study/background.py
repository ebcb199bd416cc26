"""Work in a daemon thread whose result (or exception) is collected later; it never keeps the process alive."""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

Result = TypeVar("Result")


class BackgroundWork(Generic[Result]):
    """Start `work` now in a daemon thread; `result()` waits for it and re-raises what it raised.

    A daemon thread, not an executor: when the main thread stops on an error or Ctrl-C, exiting must not wait for
    this work to finish.
    """

    def __init__(self, work: Callable[[], Result], name: str = "study-work") -> None:
        self._outcome: list = []
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], Result]) -> None:
        try:
            self._outcome.append((True, work()))
        except BaseException as error:  # handed to the caller of result()
            self._outcome.append((False, error))

    def result(self) -> Result:
        self._thread.join()
        succeeded, value = self._outcome[0]
        if not succeeded:
            raise value
        return value
