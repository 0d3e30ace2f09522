"""The sweep engine: many settings over one price frame, in parallel.

:func:`sweep` always returns one shape: a list of :class:`~backtest.single.BacktestResult`,
one per config, in the order of the configs, whatever the backend and whatever failed.
A setting that fails (in its backtest, or because its worker died) keeps its row with
``error`` set.

Backends, all calling the same task function :func:`backtest.single.run_task`:

* in-process, one after another (``workers=1`` or a single config);
* ``concurrent.futures.ProcessPoolExecutor`` (default, ``workers`` = cores): the frame is
  handed to each worker once, by the pool initializer, not once per task;
* ``dask.distributed`` when ``scheduler`` is given (an address such as
  ``tcp://host:8786``, or a ``LocalCluster``/``Client``): the frame is scattered to every
  worker once. Workers must be able to import this project (see the README).
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from .config import BacktestConfig
from .metrics import error_row
from .single import BacktestResult, run_task

DASK_INSTALL_HINT = "pip install 'distributed==2026.8.0'"
SCHEDULER_CONNECT_TIMEOUT = "10s"


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
_WORKER_FRAME = None  # the frame, set once per worker process by the pool initializer


def _install_frame(frame) -> None:
    global _WORKER_FRAME
    _WORKER_FRAME = frame


def _run_on_installed_frame(config: BacktestConfig) -> BacktestResult:
    return run_task(_WORKER_FRAME, config)


def _sweep_process_pool(frame, configs, workers, bar) -> list[BacktestResult]:
    results: list[BacktestResult | None] = [None] * len(configs)
    with ProcessPoolExecutor(max_workers=workers, initializer=_install_frame,
                             initargs=(frame,)) as pool:
        futures = {pool.submit(_run_on_installed_frame, config): index
                   for index, config in enumerate(configs)}
        for future in as_completed(futures):
            index = futures[future]
            try:
                results[index] = future.result()
            except BrokenProcessPool as error:
                results[index] = _failed(frame, configs[index],
                                         f"worker process died: {error or 'killed'}")
            except Exception as error:  # noqa: BLE001 - e.g. a result that cannot be pickled
                results[index] = _failed(frame, configs[index], f"{type(error).__name__}: {error}")
            bar.update(1)
    return results


# -- dask.distributed -----------------------------------------------------------------------
def _sweep_dask(frame, configs, scheduler, bar) -> list[BacktestResult]:
    try:
        from dask.distributed import Client, as_completed as dask_as_completed
    except ImportError:
        raise SchedulerError("--scheduler needs dask.distributed, which is not installed: "
                             f"{DASK_INSTALL_HINT}") from None
    try:
        client = scheduler if isinstance(scheduler, Client) else Client(
            scheduler, timeout=SCHEDULER_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as error:
        raise SchedulerError(f"cannot reach the dask scheduler {scheduler}: "
                             f"{' '.join(str(error).split())}") from None
    owns_client = client is not scheduler
    try:
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
    finally:
        if owns_client:
            client.close()


def _failed(frame, config, message) -> BacktestResult:
    return BacktestResult(row=error_row(config, frame, message))


def _progress_bar(total: int, progress: bool | None):
    from tqdm import tqdm
    if progress is None:
        progress = sys.stderr.isatty()
    return tqdm(total=total, desc="sweep", unit="run", disable=not progress, file=sys.stderr)
