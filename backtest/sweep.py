"""The sweep engine: many settings over one price frame, in parallel.

:func:`sweep` always returns one shape: a list of :class:`~backtest.single.BacktestResult`,
one per config, in the order of the configs, whatever the backend and whatever failed.
A setting that fails (in its backtest, or because its worker died) keeps its row with
``error`` set.

Backends, all calling the same task function :func:`backtest.single.run_task`:

* in-process, one after another (``workers=1`` or a single config);
* ``concurrent.futures.ProcessPoolExecutor`` (default, ``workers`` = cores): the frame is
  handed to each worker once, by the pool initializer, not once per task. A worker that
  dies (killed, out of memory, a crash in native code) breaks the whole pool: the settings
  that were never started run again on a new pool, and each setting that was running when
  the pool broke is run once more alone in its own process, so only a setting that kills
  its process again fails, with the reason (signal or exit code);
* ``dask.distributed`` when ``scheduler`` is given (an address such as
  ``tcp://host:8786``, or a ``LocalCluster``/``Client``): the frame is scattered to every
  worker once. Workers must be able to import this project (see the README).
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import signal
import socket
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from .config import BacktestConfig
from .metrics import error_row
from .single import BacktestResult, run_task

DASK_INSTALL_HINT = "pip install 'distributed==2026.8.0'"
SCHEDULER_CONNECT_TIMEOUT = "10s"
SCHEDULER_PROBE_SECONDS = 10.0


class SchedulerError(RuntimeError):
    """The dask backend is missing or its scheduler cannot be reached (one-line message)."""


def default_workers() -> int:
    """Number of worker processes when none is asked for: the machine's cores."""
    return os.cpu_count() or 1


def sweep(frame, configs: list[BacktestConfig], *, workers: int | None = None,
          scheduler=None, progress: bool | None = None) -> list[BacktestResult]:
    """Run every config on ``frame``; one result per config, in config order.

    Parameters
    ----------
    frame : pandas.DataFrame
        Validated OHLCV frame (``data.load_csv`` / ``data.load_ohlcv``), loaded once.
    configs : list of BacktestConfig
        The settings; an empty list gives an empty list.
    workers : int or None
        Worker processes for the local pool; None = :func:`default_workers`.
        1 runs everything in this process.
    scheduler : str, dask Client or cluster, or None
        Use dask.distributed instead of the local pool.
    progress : bool or None
        Show a tqdm bar over completed settings; None = only when stderr is a terminal.
    """
    configs = list(configs)
    if not configs:
        return []
    bar = _progress_bar(len(configs), progress)
    try:
        if scheduler is not None:
            return _sweep_dask(frame, configs, scheduler, bar)
        workers = default_workers() if workers is None else int(workers)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if workers == 1 or len(configs) == 1:
            return _sweep_in_process(frame, configs, bar)
        return _sweep_process_pool(frame, configs, min(workers, len(configs)), bar)
    finally:
        bar.close()


def _sweep_in_process(frame, configs, bar) -> list[BacktestResult]:
    results = []
    for config in configs:
        results.append(run_task(frame, config))
        bar.update(1)
    return results


# -- local process pool ---------------------------------------------------------------------
_WORKER_FRAME = None    # the frame, set once per worker process by the pool initializer
_WORKER_STARTED = None  # SimpleQueue: each task puts its index when it starts


def _install_frame(frame, started=None) -> None:
    global _WORKER_FRAME, _WORKER_STARTED
    _WORKER_FRAME, _WORKER_STARTED = frame, started
    # The worker lives only for the sweep: what it has now (the modules, the frame; with
    # fork, the whole parent heap) stays. gc.freeze() takes those objects out of the
    # cyclic collector, so its full collections during a backtest walk only the
    # backtest's own objects (they were 250-390 ms each in a forked worker, ~7 % of
    # the workers' CPU in the 8-leverage sweep of bench/perf_bench.py).
    gc.freeze()


def _run_on_installed_frame(index: int, config: BacktestConfig) -> BacktestResult:
    if _WORKER_STARTED is not None:
        _WORKER_STARTED.put(index)  # synchronous write: seen even if the process dies next
    return run_task(_WORKER_FRAME, config)


def _sweep_process_pool(frame, configs, workers, bar) -> list[BacktestResult]:
    """Pool rounds until every setting has a result (see the module docstring)."""
    context = multiprocessing.get_context()
    results: list[BacktestResult | None] = [None] * len(configs)
    todo = list(range(len(configs)))
    while todo:
        started = context.SimpleQueue()
        lost = _pool_round(frame, configs, todo, workers, bar, results, started)
        running = _drained(started) & set(lost)
        for index, result in _run_alone(frame, configs, sorted(running), context).items():
            results[index] = result
            bar.update(1)
        never_started = [index for index in lost if index not in running]
        if never_started and len(never_started) == len(todo):
            # nothing ran at all: the pool cannot start a task, a new one would not either
            for index in never_started:
                results[index] = _failed(frame, configs[index], "the worker processes died "
                                         "before this setting started")
                bar.update(1)
            never_started = []
        todo = never_started
    return results


def _pool_round(frame, configs, indices, workers, bar, results, started) -> list[int]:
    """Run ``indices`` on one pool, filling ``results``; return those lost to a broken pool."""
    lost = []
    with ProcessPoolExecutor(max_workers=min(workers, len(indices)), initializer=_install_frame,
                             initargs=(frame, started)) as pool:
        futures = {pool.submit(_run_on_installed_frame, index, configs[index]): index
                   for index in indices}
        for future in as_completed(futures):
            index = futures[future]
            try:
                results[index] = future.result()
            except BrokenProcessPool:
                lost.append(index)
                continue
            except Exception as error:  # noqa: BLE001 - e.g. a result that cannot be pickled
                results[index] = _failed(frame, configs[index], f"{type(error).__name__}: {error}")
            bar.update(1)
    return sorted(lost)


def _drained(queue) -> set[int]:
    items = set()
    while not queue.empty():
        items.add(queue.get())
    return items


def _send_result(connection, frame, config) -> None:
    """Child of :func:`_run_alone`: run one setting and send its result back."""
    connection.send(run_task(frame, config))
    connection.close()


def _run_alone(frame, configs, indices, context) -> dict[int, BacktestResult]:
    """Run each setting in its own process, all at once; a death fails that setting only."""
    children = {}
    for index in indices:
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_send_result, args=(sender, frame, configs[index]),
                                daemon=True)
        child.start()
        sender.close()
        children[index] = (child, receiver)
    results = {}
    for index, (child, receiver) in children.items():
        try:
            results[index] = receiver.recv()
        except EOFError:
            child.join()
            results[index] = _failed(frame, configs[index], "worker process died while running "
                                     f"this setting ({_death(child.exitcode)}); it died again "
                                     "when run alone")
        finally:
            receiver.close()
        child.join()
    return results


def _death(exitcode) -> str:
    """'killed by SIGKILL' / 'exit code 3' for a dead child's ``exitcode``."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


# -- dask.distributed -----------------------------------------------------------------------
def check_scheduler(scheduler) -> None:
    """Raise :class:`SchedulerError` unless ``scheduler`` (an address) answers as a scheduler.

    Checks the address form, opens a plain TCP connection (a refused port fails at once),
    then asks the scheduler for its identity over dask's protocol, and closes everything it
    opened. A ``Client`` or cluster object is not checked. Creates no dask ``Client``: a
    failed ``Client()`` leaves an object whose finaliser waits 20 s on exit.
    """
    if scheduler is None or not isinstance(scheduler, str):
        return
    try:
        from distributed.comm import connect
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError:
        raise SchedulerError("--scheduler needs dask.distributed, which is not installed: "
                             f"{DASK_INSTALL_HINT}") from None

    def unreachable(reason):
        return SchedulerError(f"cannot reach the dask scheduler {scheduler}: "
                              f"{' '.join(str(reason).split())}")

    try:
        scheme, location = parse_address(scheduler)
        if scheme in ("tcp", "tls"):
            host, port = parse_host_port(location)
            socket.create_connection((host, port), timeout=SCHEDULER_PROBE_SECONDS).close()
    except (OSError, ValueError, TypeError) as error:
        raise unreachable(error) from None

    async def identity():
        comm = await connect(scheduler, timeout=SCHEDULER_PROBE_SECONDS)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await asyncio.wait_for(comm.read(), SCHEDULER_PROBE_SECONDS)
        finally:
            await comm.close()

    try:
        answer = asyncio.run(identity())
    except Exception as error:  # noqa: BLE001 - any failure of the handshake means unreachable
        raise unreachable(error or type(error).__name__) from None
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        raise unreachable("the address answers, but not as a dask scheduler")


@contextlib.contextmanager
def dask_client(scheduler):
    """A dask ``Client`` for ``scheduler`` (an address or a Client), closed after if we opened it.

    The address is checked first (``check_scheduler``): a half-built Client's finaliser hangs.
    A bad or unreachable scheduler is a ``SchedulerError``.
    """
    try:
        from dask.distributed import Client
    except ImportError:
        raise SchedulerError("--scheduler needs dask.distributed, which is not installed: "
                             f"{DASK_INSTALL_HINT}") from None
    check_scheduler(scheduler)
    try:
        client = scheduler if isinstance(scheduler, Client) else Client(
            scheduler, timeout=SCHEDULER_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as error:
        raise SchedulerError(f"cannot reach the dask scheduler {scheduler}: "
                             f"{' '.join(str(error).split())}") from None
    try:
        yield client
    finally:
        if client is not scheduler:
            client.close()


def _sweep_dask(frame, configs, scheduler, bar) -> list[BacktestResult]:
    with dask_client(scheduler) as client:
        from dask.distributed import as_completed as dask_as_completed

        # attrs travel with the frame (data identity), so the frame is scattered pickled whole.
        frame_future = client.scatter(frame, broadcast=True, hash=False)
        futures = {client.submit(run_task, frame_future, config, pure=False): index
                   for index, config in enumerate(configs)}
        results: list[BacktestResult | None] = [None] * len(configs)
        for future in dask_as_completed(futures, loop=client.loop):
            index = futures[future]
            try:
                results[index] = future.result()
            except Exception as error:  # noqa: BLE001 - a lost worker fails one setting only
                results[index] = _failed(frame, configs[index], f"{type(error).__name__}: {error}")
            bar.update(1)
        return results


def _failed(frame, config, message) -> BacktestResult:
    return BacktestResult(row=error_row(config, frame, message))


def _progress_bar(total: int, progress: bool | None):
    from tqdm import tqdm
    if progress is None:
        progress = sys.stderr.isatty()
    return tqdm(total=total, desc="sweep", unit="run", disable=not progress, file=sys.stderr)
