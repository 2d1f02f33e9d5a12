"""Where a sweep's independent tasks run: this machine (``-j N`` processes) or a Dask cluster.

Every sweep-like command (``synth --sweep``, ``verify`` and ``verify --random-configs``,
``bench``'s rtl and flow parts, ``bench-engine``, ``compare``) describes its work as :class:`Task` s and hands them to
an :class:`Executor`: :class:`Local` (in this process, or a pool of ``jobs`` processes) or
:class:`Dask` (``--dask tcp://HOST:PORT``, or the variable :data:`ENV`).

A task is self-contained: a module-level function, its arguments (configuration and seed) and
the folder, relative to the command's output folder, that it writes into. Locally it writes
there directly. On a Dask worker it runs in a scratch folder of its own and returns that
folder's files as data (a tar archive) with its result; the client unpacks them, so the output
folder is written by the command alone, atomically as always. Paths to the scratch folder in the
result are rewritten to the output folder's, so results are the same whichever executor ran
them. A worker that dies mid-task has the task rerun elsewhere by the scheduler (at most its
``distributed.scheduler.allowed-failures`` times; the dead worker's scratch folder stays in its
temporary folder); an exception the task raises (a real failure)
is raised here as it would be locally; Ctrl-C cancels what has not finished.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PermdealError, ToolMissing

#: The environment variable that names the Dask scheduler when ``--dask`` is not given.
ENV = "PERMDEAL_DASK_SCHEDULER"
#: Seconds to wait for the scheduler to answer before giving up.
CONNECT_TIMEOUT = 10
_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class Task:
    """``fn(folder, *args)`` (or ``fn(*args)`` when ``folder`` is None); ``folder`` is relative
    to the output folder. ``keep(result)``, when given, says whether the folder's files are
    wanted (a remote task does not send back what would be deleted); ``name`` is for messages."""

    fn: Callable[..., Any]
    args: tuple = ()
    folder: str | None = None
    name: str = ""
    keep: Callable[[Any], bool] | None = None


def _call(task: Task, root: Path | None) -> Any:
    if task.folder is None:
        return task.fn(*task.args)
    return task.fn(Path(root) / task.folder, *task.args)


def _relocate(value: Any, old: str, new: str) -> Any:
    """``value`` with every string that starts with the path ``old`` moved under ``new``."""
    if isinstance(value, str):
        return new + value[len(old):] if value == old or value.startswith(old + os.sep) else value
    if isinstance(value, dict):
        return {k: _relocate(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_relocate(v, old, new) for v in value)
    return value


def run_remote(fn: Callable[..., Any], *args: Any, folder: str | None = None,
               keep: Callable[[Any], bool] | None = None) -> tuple[Any, str, bytes | None]:
    """On a worker: the task ``fn(*args)`` (with its ``folder`` and ``keep``, as
    :class:`Task`'s) in a scratch folder of its own; returns ``(result, the folder's path, its
    files as a gzipped tar or None)``. The scratch folder is removed."""
    task = Task(fn, args, folder, keep=keep)
    scratch = Path(tempfile.mkdtemp(prefix="permdeal-task-"))
    try:
        result = _call(task, scratch)
        data = None
        where = scratch / folder if folder is not None else scratch
        if folder is not None and where.is_dir() and (keep is None or keep(result)):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
                tar.add(where, arcname=".")
            data = buf.getvalue()
        return result, str(where), data
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _unpack(task: Task, root: Path, remote: tuple[Any, str, bytes | None]) -> Any:
    result, where, data = remote
    if task.folder is None:
        return result
    folder = Path(root) / task.folder
    if data is not None:
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(folder, filter="data")  # nothing outside the folder
    return _relocate(result, where, str(folder))


class Executor:
    """Runs :class:`Task` s; :meth:`run` returns their results in task order."""

    #: How many tasks run at once (at most).
    workers: int = 1
    #: What the executor is, for messages (``"2 processes"``, ``"Dask at tcp://..."``).
    label: str = ""

    def _completed(self, tasks: Sequence[Task], root: Path | None) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def run(self, tasks: Sequence[Task], root: str | Path | None = None, desc: str = "tasks",
            each: Callable[[int, Any], None] | None = None) -> list:
        """Every task's result, in the order of ``tasks``; ``root`` is the folder their
        ``folder`` s are under. A progress bar counts the finished tasks (on a terminal);
        ``each(index, result)`` hears of each as it finishes."""
        from tqdm import tqdm
        root = None if root is None else Path(root)
        results: list = [None] * len(tasks)
        done = self._completed(tasks, root)
        try:
            with tqdm(total=len(tasks), desc=desc, unit="task", dynamic_ncols=True,
                      disable=None) as bar:  # no bar when stderr is not a terminal
                for i, result in done:
                    results[i] = result
                    bar.update(1)
                    if each is not None:
                        each(i, result)
        finally:
            done.close()  # on Ctrl-C or an error: the tasks not finished are cancelled now
        return results

    def close(self) -> None:
        """Let go of the workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def process_pool(jobs: int) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A pool of ``jobs`` worker processes that, when the block is left by an exception (Ctrl-C,
    SIGTERM, an error), cancels what has not started and stops the workers at once instead of
    waiting for their runs; their simulators die with them."""
    pool = concurrent.futures.ProcessPoolExecutor(jobs)
    try:
        yield pool
    except BaseException:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class Local(Executor):
    """This machine: in this process (``jobs`` 1) or a pool of ``jobs`` processes (at most one
    a core: more only thrash)."""

    def __init__(self, jobs: int = 1):
        self.workers = max(1, min(int(jobs), os.cpu_count() or 1))
        self.label = "1 process" if self.workers == 1 else f"{self.workers} processes"

    def _completed(self, tasks, root):
        if self.workers == 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                yield i, _call(task, root)
            return
        with process_pool(self.workers) as pool:
            futures = {pool.submit(_call, task, root): i for i, task in enumerate(tasks)}
            for f in concurrent.futures.as_completed(futures):
                yield futures[f], f.result()


def check_address(address: str, flag: str = "--dask") -> str:
    """``address`` if it is a scheduler address ``tcp://HOST:PORT`` (or ``tls://``); ``flag``
    is where it came from, for the message."""
    m = _ADDRESS.match(str(address).strip())
    if not m or not 0 < int(m.group(3)) < 65536:
        raise PermdealError(f"{flag} {address!r}: not a scheduler address; give "
                            "tcp://HOST:PORT (as `dask scheduler` prints)")
    return str(address).strip()


class Dask(Executor):
    """A Dask distributed cluster through its scheduler at ``address`` (``tcp://HOST:PORT``),
    or an existing ``distributed.Client`` (``client``). The workers need permdeal and the tools
    installed."""

    def __init__(self, address: str | None = None, client: Any = None, flag: str = "--dask"):
        if client is None:
            address = check_address(address or "", flag)
            try:
                import distributed
            except ImportError:
                raise ToolMissing(f"{flag}: Dask is not installed; install permdeal[dask] (PyPI "
                                  "dask and distributed)") from None
            try:
                client = distributed.Client(address, timeout=CONNECT_TIMEOUT,
                                            set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise PermdealError(f"{flag} {address}: no Dask scheduler answers there "
                                    f"({_one_line(e)})") from None
            self._own = True
        else:
            self._own = False
        self.client = client
        self.address = client.scheduler.address
        threads = sum(w.get("nthreads", 1) for w in
                      client.scheduler_info(n_workers=-1).get("workers", {}).values())
        self.workers = max(1, threads)
        self.label = f"Dask at {self.address} ({threads} worker threads)"

    def _completed(self, tasks, root):
        from distributed import as_completed
        from distributed.scheduler import KilledWorker
        futures = {}
        try:
            shared = self._scatter(tasks)
            for i, task in enumerate(tasks):
                args = [shared.get(id(a), a) for a in task.args]
                futures[self.client.submit(run_remote, task.fn, *args, folder=task.folder,
                                           keep=task.keep, pure=False)] = i
            for f in as_completed(list(futures), loop=self.client.loop):
                i = futures[f]
                try:
                    remote = f.result()
                except KilledWorker as e:
                    raise PermdealError(f"Dask: task {tasks[i].name or i} killed every worker "
                                        "that ran it, up to the scheduler's "
                                        f"allowed-failures ({_one_line(e)})") from None
                except concurrent.futures.CancelledError as e:  # the scheduler went away
                    raise PermdealError(f"Dask: task {tasks[i].name or i} was cancelled by "
                                        f"the cluster at {self.address} "
                                        f"({_one_line(e)})") from None
                yield i, _unpack(tasks[i], root, remote)
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.cancel(list(futures), force=True)
            raise

    def _scatter(self, tasks: Sequence[Task]) -> dict[int, Any]:
        """The arguments that several tasks share (a model, a workload), sent to the cluster
        once: ``{id(argument): its future}``. Each is the result of a task of its own rather
        than scattered data, so that the scheduler can make it again when the worker that held
        it dies."""
        seen: dict[int, list] = {}
        for task in tasks:
            for a in task.args:
                if not isinstance(a, int | float | str | bool | type(None)):
                    seen.setdefault(id(a), [a, 0])[1] += 1
        with warnings.catch_warnings():  # sent once, so a large one is no waste
            warnings.filterwarnings("ignore", "Sending large graph")
            return {key: self.client.submit(_same, a, pure=False)
                    for key, (a, n) in seen.items() if n > 1}

    def close(self) -> None:
        if self._own:
            with contextlib.suppress(Exception):
                self.client.close()


def _same(value: Any) -> Any:
    return value


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def using(given: Executor | None, jobs: int = 1) -> contextlib.AbstractContextManager[Executor]:
    """``with using(given, jobs) as ex``: the caller's executor ``given`` (left open for its
    next use), else a :class:`Local` one of ``jobs`` processes."""
    return contextlib.nullcontext(given) if given is not None else Local(jobs)


def executor(jobs: int = 1, dask: str | None = None) -> Executor:
    """The executor of ``-j jobs`` and ``--dask ADDRESS`` (or :data:`ENV` when ``dask`` is
    None): Dask when an address is given, else :class:`Local`."""
    flag, address = ("--dask", dask) if dask is not None else \
        (f"${ENV}", os.environ.get(ENV) or None)
    if address is None:
        return Local(jobs)
    if jobs != 1:
        raise PermdealError(f"-j {jobs} runs the tasks on this machine and {flag} on a Dask "
                            "cluster; give one of them")
    return Dask(address, flag=flag)


__all__ = ["ENV", "Dask", "Executor", "Local", "Task", "check_address", "executor",
           "process_pool", "run_remote", "using"]
