"""Worker processes that never outlive the command that started them, and commands that stop cleanly on SIGTERM.

Two ways a command can end early, and what each leaves behind without care:

- SIGTERM (a scheduler, ``kill``) ends the process at once: no ``finally`` runs, so its run stays ``running`` and its
  pool's workers keep reading files. :func:`terminate_gracefully` turns SIGTERM into :class:`Terminated`, an exception
  that unwinds like Ctrl-C does (transactions roll back, runs are marked ``interrupted``, pools are torn down).
- SIGKILL, or the parent dying any other way, runs no code at all in the parent. Every worker of :func:`worker_pool`
  watches the process that owns the pool and exits within :data:`OWNER_POLL_SECONDS` once it is gone (a zombie counts
  as gone: its parent may never reap it).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import psutil

OWNER_POLL_SECONDS = 0.5


class Terminated(BaseException):
    """The process received SIGTERM. A BaseException, like KeyboardInterrupt, so ``except Exception`` lets it pass."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(f"terminated by signal {signum}")


def terminate_gracefully() -> None:
    """From now on, SIGTERM raises :class:`Terminated` in the main thread (call it from the main thread)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def process_alive(pid: int, started_at: float | None = None) -> bool:
    """Whether process ``pid`` runs (not a zombie) and, when ``started_at`` is given, is the one started then.

    The start time tells a reused pid from the original process (``psutil.Process.create_time``, seconds since 1970).
    """
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started_at is None or abs(process.create_time() - started_at) < 1.0
    except psutil.Error:  # gone, or not ours to inspect (then it is not the process we are asking about either)
        return False


def process_started_at(pid: int | None = None) -> float:
    """The start time of process ``pid`` (default: this one), as :func:`process_alive` compares it."""
    return psutil.Process(pid).create_time()


def _exit_when_gone(owner_pid: int, owner_started_at: float) -> None:
    while process_alive(owner_pid, owner_started_at):
        time.sleep(OWNER_POLL_SECONDS)
    os._exit(1)  # the owner is gone: nobody reads this worker's results, stop at once


def _start_worker(owner_pid: int, owner_started_at: float, initializer: Callable[..., Any] | None, initargs: tuple):
    # Ctrl-C reaches the whole process group: the owner handles it and tears the pool down; a worker that also raised
    # KeyboardInterrupt would only print a second traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_gone, args=(owner_pid, owner_started_at), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def worker_pool(
    workers: int,
    *,
    start_method: str = "forkserver",
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers exit when this process is gone, and are stopped at once if the block raises.

    ``forkserver`` (the default) is safe with the threads and SQLite connections of the calling process. On normal
    exit the pool is shut down and waited for; on any exception (Ctrl-C and :class:`Terminated` included) queued work
    is cancelled and running workers are terminated, so nothing keeps working for a command that has ended.
    """
    owner = os.getpid()
    executor = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(start_method),
        initializer=_start_worker,
        initargs=(owner, process_started_at(owner), initializer, initargs),
    )
    try:
        yield executor
    except BaseException:
        # concurrent.futures has no public way to stop a running call; its worker processes are listed here. Waiting
        # for the pool after terminating them lets a worker that is still starting up finish before the pool's queues
        # are torn down (it would print a traceback otherwise).
        for process in list((executor._processes or {}).values()):
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def ordered_results(submit: Callable[[Any], Any], items: Iterable[Any], *, ahead: int) -> Iterator[Any]:
    """``submit(item)`` for each item (it returns a future: anything with ``.result()``, from a process pool or a
    Prefect task runner), results in order, with at most ``ahead`` submitted and not yet consumed: unlike
    ``executor.map``, which submits everything at once, memory stays bounded by ``ahead`` results when the consumer (a
    single SQLite writer, say) is slower than the workers."""
    pending: deque = deque()
    for item in items:
        pending.append(submit(item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
