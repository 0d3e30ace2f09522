"""A sweep whose worker process is killed loses at most the setting that worker ran.

The strategy below kills its own process (SIGKILL, as the OOM killer would)
when it runs at ``kill_at`` leverage. On ``--workers 2`` the pool breaks; the
settings the other worker was running, and those never started, must still run
(a new pool is fine) and match an undisturbed run; only the killed setting has
an ``error``, naming the worker's death and the signal.
"""
import os
import signal

import pytest

from backtrader_leverage.backtest import BacktestConfig, sweep
from backtrader_leverage.data import load_csv
from backtrader_leverage.strategies import STRATEGIES, BuyHold

BARS = 400
KILL_AT = 5.0
LEVERAGES = tuple(float(leverage) for leverage in range(1, 17))  # 16 settings


class KillOwnProcessAt(BuyHold):
    """Buy and hold; at bar 50 of a run at ``kill_at`` leverage, SIGKILL its own process.

    With ``once_marker`` (a file path) only the first such run dies: a one-off kill.
    """
    params = (("kill_at", None), ("once_marker", None))

    @staticmethod
    def _check(p) -> None:
        pass

    def next(self):
        if len(self.data) == 50 and self.broker.get_leverage(self.data) == self.p.kill_at:
            marker = self.p.once_marker
            if marker is None or not os.path.exists(marker):
                if marker is not None:
                    open(marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
        super().next()


@pytest.fixture
def frame(shared_data):
    return load_csv(shared_data / "binance_BTCUSDT_1h.csv").iloc[-BARS:]


@pytest.fixture
def killer(monkeypatch):
    # the pool forks this process, so the workers see the registered strategy
    monkeypatch.setitem(STRATEGIES, "kill_own_process_at", KillOwnProcessAt)
    return "kill_own_process_at"


def configs(strategy, kill_at, once_marker=None):
    return [BacktestConfig(strategy=strategy, leverage=leverage,
                           strategy_params=(("kill_at", kill_at), ("once_marker", once_marker)))
            for leverage in LEVERAGES]


def without_timing(row):
    return {key: value for key, value in row.items() if key != "seconds"}


def test_killed_worker_fails_only_its_own_setting(frame, killer):
    results = sweep(frame, configs(killer, KILL_AT), workers=2, progress=False)
    assert [result.row["leverage"] for result in results] == list(LEVERAGES)
    failed = [result.row for result in results if result.row["error"]]
    assert [row["leverage"] for row in failed] == [KILL_AT]
    assert "worker process died while running this setting" in failed[0]["error"]
    assert "SIGKILL" in failed[0]["error"]
    # the others are exactly what an undisturbed in-process run gives
    undisturbed = sweep(frame, [c for c in configs(killer, None) if c.leverage != KILL_AT],
                        workers=1, progress=False)
    survivors = [result for result in results if result.row["leverage"] != KILL_AT]
    assert [without_timing(r.row) | {"strategy_params": None} for r in survivors] == \
        [without_timing(r.row) | {"strategy_params": None} for r in undisturbed]
    assert all(len(r.series["equity"]) == BARS for r in survivors)


def test_a_one_off_kill_loses_nothing(frame, killer, tmp_path):
    marker = str(tmp_path / "killed-once")
    results = sweep(frame, configs(killer, KILL_AT, marker), workers=2, progress=False)
    assert os.path.exists(marker)  # the worker did die once
    assert [result.row["error"] for result in results] == [None] * len(LEVERAGES)
    assert [result.row["leverage"] for result in results] == list(LEVERAGES)
