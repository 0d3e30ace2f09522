"""Property-based accounting invariants of ``MarginBroker`` (hypothesis).

Random hourly price paths (with occasional big gaps at the open) on one or two
feeds, random market-order streams on the 0.001 lot grid, random leverage
1–50 per feed, both ``negative_balance`` policies, with and without a
``liquidation_fee_rate``, fees 0 or 0.0004 of notional, in both margin modes,
funding off or on (rates of either sign, every 8 h or every hour).

The strategy keeps its own model of every position (size, average entry,
isolated margin) from the fills it is notified of — the broker's state is
checked against it, not against itself. On every bar:

* value identity: getvalue() = getcash() + Σ margin + Σ side·size·(close − entry)
  (cross: no margins, getvalue() = getcash() + Σ uPnL);
* the model matches the broker (size, margin); each funding payment is
  -size · open · rate of the position the model holds, and (isolated) the
  model's isolated margin bears it;
* an open position has lost less than its margin (it would have been liquidated);
  cross: the account's margin balance is above Σ maintenance margin;
* a liquidation lost at most margin + its recorded deficit, and
  margin_lost + returned-to-wallet = the position's margin (isolated; margin_lost
  >= 0 unless funding took that margin below zero); a cross
  liquidation closes every position at once and leaves nothing open;
* under 'absorb' the wallet never goes below zero (cross: the account, wallet + Σ uPnL,
  never does; the wallet may, while another position's profit covers a realized loss).

At the end: start cash + Σ ledger = final cash (to the cent); Σ deficit of the
liquidation events = Σ |'deficit' flows| under 'carry' (isolated; cross
deficits reach the wallet through the closes), and the insurance fund = Σ fee −
Σ deficit under 'absorb' (Σ fee under 'carry'); the funding recorded
(``funding_payments``) = Σ ledger 'funding' flows, to the cent.
"""
from __future__ import annotations

import math

import backtrader as bt
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from _bars import bars_feed
from backtrader_leverage.broker import MarginBroker

START_CASH = 1_000.0      # quote
LOT = 0.001               # base units
RELATIVE = 1e-6           # relative tolerance of the per-bar identities
CENT = 0.01               # tolerance of the wallet history


# ----------------------------------------------------------------------
# generators
# ----------------------------------------------------------------------
def cents(price: float) -> float:
    return max(0.01, round(price, 2))


@st.composite
def price_paths(draw, bars):
    """``bars`` valid OHLC tuples: high ≥ max(open, close), low ≤ min(open, close), > 0."""
    close = draw(st.floats(20.0, 2_000.0))
    path = []
    for _ in range(bars):
        gap = draw(st.one_of(st.just(0.0), st.just(0.0), st.floats(-0.7, 0.7)))
        open_ = cents(close * (1 + gap))
        close = cents(open_ * (1 + draw(st.floats(-0.12, 0.12))))
        high = cents(max(open_, close) * (1 + draw(st.floats(0.0, 0.1))))
        low = cents(min(open_, close) * (1 - draw(st.floats(0.0, 0.35))))
        path.append((open_, max(high, open_, close), min(low, open_, close), close))
    return path


# (action, fraction, exectype, offset): buy/sell ``fraction`` of what the wallet
# could margin at the close (above 1 is refused for want of margin), as a
# market order or a stop/limit at close·(1 + offset); close the position; or
# add ``fraction`` of the wallet to the position's isolated margin.
ORDER = st.one_of(
    st.none(), st.none(),
    st.tuples(st.sampled_from(["buy", "sell"]), st.floats(0.0, 1.1),
              st.sampled_from(["Market", "Market", "Stop", "Limit"]), st.floats(-0.2, 0.2)),
    st.tuples(st.just("close"), st.just(0.0), st.just("Market"), st.just(0.0)),
    st.tuples(st.just("add_margin"), st.floats(0.01, 0.5), st.just("Market"), st.just(0.0)),
)


@st.composite
def scenarios(draw):
    feeds = draw(st.integers(1, 2))
    bars = draw(st.integers(4, 24))
    return {
        "paths": [draw(price_paths(bars)) for _ in range(feeds)],
        "orders": [[draw(ORDER) for _ in range(feeds)] for _ in range(bars)],
        "leverages": [draw(st.sampled_from([1, 2, 3, 5, 10, 20, 25, 33.3, 50])) for _ in range(feeds)],
        "negative_balance": draw(st.sampled_from(["absorb", "carry"])),
        "liquidation_fee_rate": draw(st.sampled_from([None, 0.005])),
        "commission": draw(st.sampled_from([0.0, 0.0004])),
        "margin_mode": draw(st.sampled_from(["isolated", "cross"])),
        "funding_rate": draw(st.sampled_from([None, 0.0001, -0.0003, 0.002, 0.01])),
        "funding_interval_hours": draw(st.sampled_from([1, 8])),
    }


# ----------------------------------------------------------------------
# the checking strategy
# ----------------------------------------------------------------------
def close_to(a, b, scale=1.0):
    return abs(a - b) <= RELATIVE * max(1.0, abs(a), abs(b), scale)


class Checker(bt.Strategy):
    params = (("orders", None), ("leverages", None), ("negative_balance", "absorb"),
              ("margin_mode", "isolated"), ("funding_rate", None))

    def __init__(self):
        # model of each feed's position: [signed size, average entry, isolated margin]
        self.model = {data: [0.0, 0.0, 0.0] for data in self.datas}
        self.liquidation_fills = 0
        self.checked_bars = 0
        self.funding_taken = set()      # indices of broker.funding_payments checked

    def feed_index(self, data):
        """Position of ``data`` in self.datas (by identity: lines overload ==)."""
        return next(index for index, feed in enumerate(self.datas) if feed is data)

    # -- the model, fed by fills -----------------------------------------
    def notify_order(self, order):
        if order.status != order.Completed:
            return
        data = order.data
        size, price = order.executed.size, order.executed.price
        liquidation = order.info.get("liquidation", False)
        if liquidation or order.exectype != bt.Order.Market:
            # funding is paid after the open's market fills, before the path's fills
            self.take_funding(data)
        if liquidation:
            self.check_liquidation(data, size, price)
            self.model[data] = [0.0, 0.0, 0.0]
            return
        leverage = self.p.leverages[self.feed_index(data)]
        position, entry, margin = self.model[data]
        if not position or (position > 0) == (size > 0):
            new = position + size
            entry = (abs(position) * entry + abs(size) * price) / abs(new)
            margin += abs(size) * price / leverage          # notional / leverage
        else:
            closed = min(abs(size), abs(position))
            margin -= margin * closed / abs(position)        # released pro rata
            new = position + size
            if abs(size) > abs(position):                    # reversal: a fresh position
                entry, margin = price, abs(new) * price / leverage
        new = round(new, 3)
        self.model[data] = [new, entry if new else 0.0, margin if new else 0.0]

    def check_liquidation(self, data, size, price):
        position, entry, margin = self.model[data]
        event = self.broker.liquidations[self.liquidation_fills]
        self.liquidation_fills += 1
        side = 1 if position > 0 else -1
        name = data._name or f"data{self.feed_index(data)}"
        assert event.data == name and math.isclose(event.size, abs(position))
        assert size == pytest.approx(-position) and price == pytest.approx(event.fill_price)
        assert event.entry_price == pytest.approx(entry, rel=RELATIVE)
        assert event.margin_mode == self.p.margin_mode
        if self.p.margin_mode == "cross":
            return  # the account's money is checked per bar and at the end
        loss = -side * abs(position) * (price - entry)
        assert loss <= margin + event.deficit + RELATIVE * max(1.0, margin), \
            "a liquidation lost more than its margin plus the recorded deficit"
        returned = sum(flow.amount for flow in self.broker.ledger
                       if flow.reason == "liquidation_return" and flow.dt == event.dt
                       and flow.data == name)
        assert close_to(event.margin_lost + returned, margin), \
            f"margin_lost {event.margin_lost} + returned {returned} != margin {margin}"
        # funding may have taken the isolated margin below zero while the position was in
        # profit (Bybit's "Position margin" help page describes that state); then margin_lost,
        # that margin minus what returned, is below zero too
        if margin >= 0:
            assert event.margin_lost >= -CENT

    def take_funding(self, only=None):
        """Check this bar's funding payments against the model; its isolated margin bears them.

        ``only``: a feed whose pending payments are due now (those of the size held).
        """
        for number, payment in enumerate(self.broker.funding_payments):
            if number in self.funding_taken:
                continue
            data = next(feed for feed in self.datas
                        if (feed._name or f"data{self.feed_index(feed)}") == payment.data)
            if only is not None and (data is not only or payment.size != self.model[data][0]):
                continue
            self.funding_taken.add(number)
            size = self.model[data][0]
            assert size and payment.size == pytest.approx(size)
            assert payment.rate == self.p.funding_rate and payment.mark_price == data.open[0]
            assert close_to(payment.amount, -size * data.open[0] * payment.rate)
            if self.p.margin_mode == "isolated":
                self.model[data][2] += payment.amount

    # -- every bar --------------------------------------------------------
    def next(self):
        broker = self.broker
        self.take_funding()
        equity = broker.getcash()
        cross = self.p.margin_mode == "cross"
        maintenance = 0.0
        for data in self.datas:
            size, entry, margin = self.model[data]
            assert broker.getposition(data).size == pytest.approx(size, abs=LOT / 10)
            if cross:
                margin = 0.0  # nothing is locked: the wallet backs every position
            else:
                assert close_to(broker.position_margin(data), margin)
            if size:
                side = 1 if size > 0 else -1
                unrealized = side * abs(size) * (data.close[0] - entry)
                assert cross or -unrealized <= margin * (1 + RELATIVE), \
                    "an open position has lost more than its margin"
                equity += margin + unrealized
                maintenance += broker.maintenance_margin(data)
        if cross and maintenance:
            assert equity > maintenance - RELATIVE * START_CASH, \
                "a cross account at or below maintenance at the close was not liquidated"
        if cross and self.broker.liquidations and \
                self.broker.liquidations[-1].dt == self.datetime.datetime(0):
            assert not any(broker.getposition(data).size for data in self.datas), \
                "a cross liquidation left a position open"
        assert close_to(broker.getvalue(), equity, scale=START_CASH), \
            f"getvalue {broker.getvalue()} != wallet + margins + uPnL {equity}"
        if self.p.negative_balance == "absorb" and cross:
            # a cross wallet may go below zero when a realized loss is covered by another
            # position's unrealized profit; the account (wallet + Σ uPnL) never does
            assert equity >= -RELATIVE * START_CASH
        elif self.p.negative_balance == "absorb":
            assert broker.getcash() >= -RELATIVE * START_CASH
        elif broker.getcash() < 0:
            episode = broker.negative_balance_episodes[-1]
            assert episode.end is None and episode.lowest_balance <= broker.getcash()
        self.checked_bars += 1
        self.place_orders(len(self) - 1)

    def place_orders(self, bar):
        for data, order in zip(self.datas, self.p.orders[bar]):
            if order is None:
                continue
            action, fraction, exectype, offset = order
            if action == "close":
                self.close(data=data)
                continue
            if action == "add_margin":
                if self.p.margin_mode == "cross":
                    continue  # no isolated margin to add to
                amount = round(fraction * self.broker.getcash(), 2)
                if self.getposition(data).size and amount > 0:
                    self.broker.add_margin(data, amount)
                    self.model[data][2] += amount
                continue
            leverage = self.p.leverages[self.feed_index(data)]
            lots = math.floor(fraction * max(self.broker.getcash(), 0.0) * leverage
                              / data.close[0] / LOT)
            getattr(self, action)(data=data, size=max(lots, 1) * LOT,
                                  exectype=getattr(bt.Order, exectype),
                                  price=data.close[0] * (1 + offset))


# ----------------------------------------------------------------------
# the property
# ----------------------------------------------------------------------
@settings(max_examples=200)
@given(scenarios())
def test_accounting_invariants_hold_on_every_bar(scenario):
    broker = MarginBroker(cash=START_CASH, negative_balance=scenario["negative_balance"],
                          liquidation_fee_rate=scenario["liquidation_fee_rate"],
                          margin_mode=scenario["margin_mode"],
                          funding_rates=scenario["funding_rate"],
                          funding_interval_hours=scenario["funding_interval_hours"])
    broker.setcommission(commission=scenario["commission"])
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker
    for index, path in enumerate(scenario["paths"]):
        feed = bars_feed(path)
        cerebro.adddata(feed)
        broker.set_leverage(feed, scenario["leverages"][index])
    cerebro.addstrategy(Checker, orders=scenario["orders"], leverages=scenario["leverages"],
                        negative_balance=scenario["negative_balance"],
                        margin_mode=scenario["margin_mode"],
                        funding_rate=scenario["funding_rate"])
    strategy = cerebro.run()[0]

    assert strategy.checked_bars == len(scenario["orders"])
    assert strategy.liquidation_fills == len(broker.liquidations)
    # the wallet's history adds up to the cent
    assert abs(START_CASH + sum(flow.amount for flow in broker.ledger) - broker.getcash()) <= CENT
    total_deficit = sum(event.deficit for event in broker.liquidations)
    total_fee = sum(event.fee for event in broker.liquidations)
    charged_deficit = sum(abs(flow.amount) for flow in broker.ledger if flow.reason == "deficit")
    if scenario["margin_mode"] == "cross":
        assert charged_deficit == 0.0  # cross deficits reach the wallet through the closes
        assert all(record.margin_mode == "cross" for record in broker.liquidations)
    if scenario["negative_balance"] == "carry":
        if scenario["margin_mode"] == "isolated":
            assert abs(total_deficit - charged_deficit) <= CENT
        assert abs(broker.insurance_fund - total_fee) <= CENT
    else:
        assert charged_deficit == 0.0
        assert abs(broker.insurance_fund - (total_fee - total_deficit)) <= CENT
    funding_recorded = sum(payment.amount for payment in broker.funding_payments)
    funding_ledger = sum(flow.amount for flow in broker.ledger if flow.reason == "funding")
    assert abs(funding_recorded - funding_ledger) <= CENT
    assert len(strategy.funding_taken) == len(broker.funding_payments)
    if scenario["funding_rate"] is None:
        assert not broker.funding_payments
    for record in broker.liquidations:
        assert record.fee >= 0 and record.deficit >= 0   # margin_lost: check_liquidation
    # what the examples covered (pytest --hypothesis-show-statistics)
    event(f"liquidations: {min(len(broker.liquidations), 2)}")
    event(f"deficit: {total_deficit > 0}")
    event(f"negative wallet episodes: {bool(broker.negative_balance_episodes)}")
    event(f"mode: {scenario['margin_mode']}")
    event(f"funding payments: {min(len(broker.funding_payments), 3)}")
