"""Example strategies: registry, leverage-aware sizing, protective exits, long/short signals.

Hand-made hourly price paths; every expected number is written as its arithmetic.
"""
import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.data import ArrayFeed
from backtrader_leverage.strategies import STRATEGIES, BuyHold, DonchianBreakout, RsiReversion, SmaCross, \
    get_strategy, strategy_params

CASH = 10_000.0
PRICE = 100.0


def frame_from_closes(closes, spread=0.5, opens=None, lows=None, highs=None):
    """Hourly OHLCV frame: open = previous close (or ``opens``), high/low = max/min +- spread."""
    closes = np.asarray(closes, dtype=float)
    if opens is None:
        opens = np.concatenate([[closes[0]], closes[:-1]])
    opens = np.asarray(opens, dtype=float)
    highs = np.maximum(opens, closes) + spread if highs is None else np.asarray(highs, float)
    lows = np.minimum(opens, closes) - spread if lows is None else np.asarray(lows, float)
    index = pd.date_range("2024-01-01", periods=len(closes), freq="1h", tz="UTC")
    frame = pd.DataFrame({"open": opens, "high": highs, "low": lows, "close": closes,
                          "volume": 1.0}, index=index)
    frame.attrs.update(symbol="TEST", source="csv", synthetic=False, interval="1h")
    return frame


class Recorder(bt.Analyzer):
    """Signed position size after every bar, and every completed order's (size, price)."""

    def start(self):
        self.sizes, self.fills = [], []

    def prenext(self):
        self.next()

    def next(self):
        self.sizes.append(self.strategy.position.size)

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append((order.executed.size, order.executed.price))

    def get_analysis(self):
        return {"sizes": self.sizes, "fills": self.fills}


def run(strategy, frame, broker=None, **params):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ArrayFeed(dataname=frame))
    cerebro.broker = broker if broker is not None else MarginBroker(cash=CASH, leverage=1.0)
    cerebro.addstrategy(strategy, **params)
    cerebro.addanalyzer(Recorder, _name="recorder")
    result = cerebro.run()[0]
    return result.analyzers.recorder.get_analysis(), cerebro.broker


def test_registry_names_the_four_cli_strategies():
    assert set(STRATEGIES) == {"sma_cross", "rsi_reversion", "donchian_breakout", "buy_hold"}
    for name, cls in STRATEGIES.items():
        assert issubclass(cls, bt.Strategy)
        assert get_strategy(name) is cls
        # every param is documented in the class or base docstring
        documented = (cls.__doc__ or "") + (cls.__mro__[1].__doc__ or "")
        for param in strategy_params(name):
            assert param in documented, (name, param)
    with pytest.raises(KeyError, match="sma_cross"):
        get_strategy("nope")


@pytest.mark.parametrize("leverage", [1.0, 5.0, 20.0])
def test_buy_hold_sizes_fraction_of_equity_times_leverage(leverage):
    fraction = 0.5
    frame = frame_from_closes([PRICE] * 10, spread=0.0)
    broker = MarginBroker(cash=CASH, leverage=leverage)
    seen, _ = run(BuyHold, frame, broker, fraction=fraction)
    # order on bar 0 at close 100, fills at bar 1's open 100:
    # size = fraction * equity * leverage / price = 0.5 * 10000 * L / 100 = 50 * L
    expected = fraction * CASH * leverage / PRICE
    assert seen["sizes"][0] == 0
    assert seen["sizes"][1] == pytest.approx(expected)
    assert seen["fills"] == [(pytest.approx(expected), PRICE)]


def test_plain_backbroker_means_leverage_one():
    frame = frame_from_closes([PRICE] * 5, spread=0.0)
    broker = bt.brokers.BackBroker(cash=CASH)
    seen, _ = run(BuyHold, frame, broker, fraction=0.5)
    assert seen["sizes"][-1] == pytest.approx(0.5 * CASH / PRICE)      # 50 units, 1x


def test_stop_loss_closes_at_the_stop_price():
    stop_loss = 0.05
    # flat at 100, then a bar trades down to 90: the stop at 100 * (1 - 0.05) = 95 fills at 95
    closes = [PRICE] * 4 + [92.0, 92.0]
    lows = [PRICE - 0.5] * 4 + [90.0, 91.5]
    frame = frame_from_closes(closes, lows=lows)
    seen, _ = run(BuyHold, frame, MarginBroker(cash=CASH, leverage=2.0), fraction=0.5,
                  stop_loss=stop_loss)
    size = 0.5 * CASH * 2.0 / PRICE                                      # 100 units
    assert seen["fills"][0] == (pytest.approx(size), PRICE)
    assert seen["fills"][1] == (pytest.approx(-size), pytest.approx(PRICE * (1 - stop_loss)))
    assert seen["sizes"][-1] == 0                                        # no re-entry


def test_take_profit_closes_at_the_target_and_cancels_the_stop():
    take_profit, stop_loss = 0.10, 0.05
    closes = [PRICE] * 4 + [108.0, 112.0, 112.0]
    highs = [PRICE + 0.5] * 4 + [108.5, 115.0, 112.5]
    frame = frame_from_closes(closes, highs=highs)
    seen, _ = run(BuyHold, frame, MarginBroker(cash=CASH, leverage=1.0), fraction=0.5,
                  stop_loss=stop_loss, take_profit=take_profit)
    size = 0.5 * CASH / PRICE                                            # 50 units
    assert seen["fills"][1] == (pytest.approx(-size), pytest.approx(PRICE * (1 + take_profit)))
    assert len(seen["fills"]) == 2                                       # the OCO stop never fills
    assert seen["sizes"][-1] == 0


def test_sma_cross_goes_long_then_short_and_respects_allow_short():
    dip = list(np.linspace(100, 95, 15))
    up = list(np.linspace(95, 130, 30))
    down = list(np.linspace(130, 90, 40))
    frame = frame_from_closes(dip + up + down)
    seen, _ = run(SmaCross, frame, fast=3, slow=8)
    assert max(seen["sizes"]) > 0 and min(seen["sizes"]) < 0
    seen_long_only, _ = run(SmaCross, frame, fast=3, slow=8, allow_short=False)
    assert max(seen_long_only["sizes"]) > 0 and min(seen_long_only["sizes"]) == 0


def test_sma_cross_rejects_fast_not_below_slow():
    with pytest.raises(ValueError, match="fast < slow"):
        run(SmaCross, frame_from_closes([PRICE] * 60), fast=50, slow=20)


@pytest.mark.parametrize("cls, params, message", [
    (SmaCross, {"fast": 30, "slow": 30}, "fast < slow"),
    (SmaCross, {"fast": "ten"}, "fast must be a whole number"),
    (SmaCross, {"fast": 2.5}, "fast must be a whole number"),
    (SmaCross, {"fraction": 1.5}, "fraction must be <= 1"),
    (SmaCross, {"fraction": 0}, "fraction must be > 0"),
    (BuyHold, {"stop_loss": 1.0}, "stop_loss must be < 1"),
    (BuyHold, {"reenter": "yes"}, "reenter must be true or false"),
    (RsiReversion, {"oversold": 60}, "oversold < exit_level"),
    (RsiReversion, {"overbought": 101}, "overbought must be <= 100"),
    (DonchianBreakout, {"exit_period": 0}, "exit_period must be >= 1"),
    (DonchianBreakout, {"nope": 1}, "has no param 'nope'"),
])
def test_check_params_rejects_bad_values_without_a_cerebro(cls, params, message):
    with pytest.raises(ValueError, match=message):
        cls.check_params(**params)


def test_check_params_accepts_the_defaults_and_documented_overrides():
    for cls in STRATEGIES.values():
        cls.check_params()
    SmaCross.check_params(fast=5, slow=20, stop_loss=0.05, take_profit=None, allow_short=False)


def test_rsi_reversion_buys_oversold_and_exits_at_the_middle():
    # a steady fall drives RSI to ~0 (< 30): long; a rebound lifts it past 50: flat
    closes = [PRICE] * 5 + list(np.linspace(100, 80, 20)) + list(np.linspace(80, 100, 20))
    seen, _ = run(RsiReversion, frame_from_closes(closes), period=5, allow_short=False)
    sizes = np.array(seen["sizes"])
    first_long = int(np.argmax(sizes > 0))
    assert sizes[first_long] > 0
    assert sizes[-1] == 0 and np.any(sizes[first_long:] == 0)


def test_donchian_breakout_follows_a_new_high_and_a_new_low():
    closes = [PRICE] * 25 + list(np.linspace(101, 120, 10)) + list(np.linspace(119, 80, 30))
    seen, _ = run(DonchianBreakout, frame_from_closes(closes, spread=0.2), entry_period=20,
                  exit_period=10)
    sizes = np.array(seen["sizes"])
    assert np.all(sizes[:26] == 0)          # no breakout inside the flat range
    assert sizes.max() > 0 and sizes.min() < 0


def test_leverage_changes_pnl_on_the_same_orders():
    closes = [PRICE] * 3 + [110.0] * 3
    frame = frame_from_closes(closes, spread=0.0)
    finals = {}
    for leverage in (1.0, 3.0):
        _, broker = run(BuyHold, frame, MarginBroker(cash=CASH, leverage=leverage), fraction=0.5)
        finals[leverage] = broker.getvalue()
    # size = 0.5 * 10000 * L / 100 = 50 L units; PnL = 50 L * (110 - 100) = 500 L (no fees)
    assert finals[1.0] == pytest.approx(CASH + 500.0)
    assert finals[3.0] == pytest.approx(CASH + 1500.0)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_runs_on_real_data_at_10x(name, shared_data):
    from backtrader_leverage.data import load_csv
    frame = load_csv(shared_data / "binance_BTCUSDT_1h.csv").iloc[-1500:]
    broker = MarginBroker(cash=CASH, leverage=10.0)
    broker.setcommission(commission=0.0004)
    seen, broker = run(get_strategy(name), frame, broker)
    assert len(seen["sizes"]) == len(frame)
    assert seen["fills"], "the strategy never traded"
    for size, _ in seen["fills"]:
        assert abs(size * 1000 - round(size * 1000)) < 1e-6           # on the 0.001 lot grid


def test_min_bars_is_the_longest_look_back_plus_one():
    assert SmaCross.min_bars(fast=5, slow=30) == 30 + 1 + 1
    assert RsiReversion.min_bars(period=14) == 14 + 1 + 1
    assert DonchianBreakout.min_bars(entry_period=20, exit_period=55) == 55 + 1 + 1
    assert BuyHold.min_bars() == 1 + 1


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_runs_on_exactly_min_bars(name):
    cls = get_strategy(name)
    frame = frame_from_closes(np.linspace(100, 110, cls.min_bars()))
    seen, _ = run(cls, frame)
    assert len(seen["sizes"]) == cls.min_bars()


def test_buy_hold_liquidated_on_its_entry_bar_stays_out():
    leverage = 10.0
    # entry fills at bar 1's open 100; the same bar's low 80 is below the 10x long's
    # liquidation price (about 100 * (1 - 1/10) / (1 - 0.005) = 90.45): liquidated at once
    closes = [PRICE, 95.0, 95.0, 95.0, 95.0]
    lows = [PRICE - 0.5, 80.0, 94.5, 94.5, 94.5]
    frame = frame_from_closes(closes, lows=lows)
    broker = MarginBroker(cash=CASH, leverage=leverage)
    seen, broker = run(BuyHold, frame, broker, fraction=0.5)
    assert len(broker.liquidations) == 1
    assert seen["sizes"][1:] == [0, 0, 0, 0]
    seen, broker = run(BuyHold, frame, MarginBroker(cash=CASH, leverage=leverage), fraction=0.5,
                       reenter=True)
    assert seen["sizes"][-1] > 0                         # with reenter it buys again
