"""MarginBroker params: any real number type is accepted; NaN, negative and out-of-range
values are a ValueError naming the param and its allowed range.

numpy scalars used to be refused ("must be a number > 0, got np.int64(5)"),
``lot_size=nan`` raised a TypeError about ``str``, and NaN or negative
``commission``, a ``liquidation_fee_rate`` of NaN or 2.0 and a ``cash`` of -5 or
NaN were accepted (a NaN fee rate became a fee of 0).
"""
from fractions import Fraction

import numpy as np
import pytest

from _bars import Recorder, bars_feed, flat
from backtrader_leverage.broker import MarginBroker
import backtrader as bt

NAN = float("nan")


@pytest.mark.parametrize("leverage", [np.int64(5), np.int32(5), np.float32(5.0), np.float64(5.0),
                                      Fraction(5, 1), 5, 5.0])
def test_any_real_number_type_is_a_leverage(leverage):
    broker = MarginBroker(leverage=leverage)
    broker.setcommission(commission=np.float32(0.0004), leverage=leverage)
    assert float(broker.p.leverage) == 5.0


class BuyOnce(Recorder):
    def act(self, bar):
        if bar == 0:
            self.buy(size=1.0)


@pytest.mark.parametrize("leverage", [np.int64(5), np.int32(5)])
def test_numpy_leverage_trades_like_a_float(leverage):
    # margin = notional / leverage = 1 × 100 / 5 = 20
    broker = MarginBroker(cash=np.int64(1_000), leverage=leverage,
                          lot_size=np.float64(0.001))
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker
    feed = bars_feed([flat(100.0)] * 3)
    cerebro.adddata(feed)
    broker.set_leverage(feed, leverage)
    cerebro.addstrategy(BuyOnce)
    cerebro.run()
    assert broker.get_leverage(feed) == 5.0
    assert broker.position_margin(feed) == pytest.approx(1 * 100.0 / 5)
    assert broker.getcash() == pytest.approx(1_000 - 20)


@pytest.mark.parametrize("kwargs, message", [
    ({"leverage": NAN}, r"leverage param must be a real number > 0 .*got nan"),
    ({"leverage": -1}, r"leverage param must be a real number > 0 .*got -1"),
    ({"leverage": "5"}, r"leverage param must be a real number > 0 .*got '5'"),
    ({"leverage": True}, r"leverage param must be a real number > 0 .*got True"),
    ({"lot_size": NAN}, r"lot_size must be a real number > 0 \(base units\), got nan"),
    ({"lot_size": 0}, r"lot_size must be a real number > 0 \(base units\), got 0"),
    ({"liquidation_fee_rate": NAN}, r"liquidation_fee_rate must be None or a real number in "
                                    r"\[0, 1\) \(fraction of notional\), got nan"),
    ({"liquidation_fee_rate": 2.0}, r"liquidation_fee_rate must be None or a real number in "
                                    r"\[0, 1\).*got 2\.0"),
    ({"liquidation_fee_rate": -0.1}, r"liquidation_fee_rate .*\[0, 1\).*got -0\.1"),
    ({"maintenance_margin_rate": NAN}, r"maintenance_margin_rate must be a real number in "
                                       r"\(0, 1\) \(fraction of notional\), got nan"),
    ({"maintenance_margin_rate": 0}, r"maintenance_margin_rate .*\(0, 1\).*got 0"),
    ({"cash": -5}, r"cash must be a real number >= 0 \(quote currency\), got -5"),
    ({"cash": NAN}, r"cash must be a real number >= 0 \(quote currency\), got nan"),
    ({"cash": float("inf")}, r"cash must be a real number >= 0 .*got inf"),
])
def test_bad_params_are_a_value_error_naming_the_param_and_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MarginBroker(**kwargs)


@pytest.mark.parametrize("commission", [NAN, -0.001, 1.0, "0.1"])
def test_bad_commission_is_a_value_error(commission):
    broker = MarginBroker()
    with pytest.raises(ValueError, match=r"commission must be a real number in \[0, 1\) "
                                         r"\(fraction of notional\), got "):
        broker.setcommission(commission=commission)


@pytest.mark.parametrize("leverage", [NAN, 0, -2, "5"])
def test_bad_setcommission_leverage_is_a_value_error(leverage):
    with pytest.raises(ValueError, match=r"setcommission leverage must be a real number > 0"):
        MarginBroker().setcommission(commission=0.0, leverage=leverage)


@pytest.mark.parametrize("cash", [-5, NAN])
@pytest.mark.parametrize("setter", ["setcash", "set_cash"])
def test_bad_cash_setter_is_a_value_error(setter, cash):
    broker = MarginBroker()
    with pytest.raises(ValueError, match=r"cash must be a real number >= 0"):
        getattr(broker, setter)(cash)
    assert broker.getcash() == 10_000.0  # unchanged
