"""Cross-margin math (broker.margin), checked against hand-computed values."""
import math

import pytest

from backtrader_leverage.broker import margin as mm

LONG, SHORT = 1, -1
MMR = 0.005
FLAT = mm.flat_tiers(MMR)


def test_one_feed_cross_liquidation_price_worked_example():
    # the only position: WB 50, long 1 at 100, mmr 0.5 %: LP = (50 - 100) / (0.005 - 1) = 50.2513
    price = mm.cross_liquidation_price(LONG, 1.0, 100.0, 50.0, 0.0, 0.0, MMR)
    assert price == pytest.approx(50 / 0.995)
    assert price == pytest.approx(50.2513, abs=1e-4)
    tiered, tier = mm.tiered_cross_liquidation_price(LONG, 1.0, 100.0, 50.0, 0.0, 0.0, FLAT)
    assert tiered == pytest.approx(price) and tier is FLAT[0]
    # bankruptcy: WB + uPnL = 0 at 100 - 50 = 50
    assert mm.cross_bankruptcy_price(LONG, 1.0, 100.0, 50.0, 0.0) == pytest.approx(50.0)


def test_cross_liquidation_price_counts_the_other_positions():
    # A long 1 at 100; B short 2 at 50 now at 55: uPnL_B = -2 * 5 = -10, MM_B = 0.005 * 110 = 0.55
    # LP_A = (30 - 0.55 - 10 - 100) / (0.005 - 1) = 80.55 / 0.995 = 80.9548
    price = mm.cross_liquidation_price(LONG, 1.0, 100.0, 30.0, 0.55, -10.0, MMR)
    assert price == pytest.approx(80.55 / 0.995)
    assert price == pytest.approx(80.9548, abs=1e-4)
    # a short mirror: short 1 at 100, WB 30, B gains +10 with MM 0.55:
    # LP = (30 - 0.55 + 10 + 100) / (0.005 + 1) = 139.45 / 1.005 = 138.7562
    short = mm.cross_liquidation_price(SHORT, 1.0, 100.0, 30.0, 0.55, 10.0, MMR)
    assert short == pytest.approx(139.45 / 1.005)


def test_cross_is_isolated_with_the_available_balance():
    # WB - TMM1 + UPNL1 plays the isolated margin: 40 - 2 + 7 = 45 of margin
    assert mm.cross_liquidation_price(SHORT, 2.0, 80.0, 40.0, 2.0, 7.0, 0.01, 0.5) == \
        pytest.approx(mm.liquidation_price(SHORT, 2.0, 80.0, 45.0, 0.01, 0.5))


def test_theta_one_feed_is_the_liquidation_price():
    # WB 50, long 1 at 100, bar open 100 low 40: surplus = 50 - 60θ - 0.005(100 - 60θ) = 49.5 - 59.7θ
    leg = mm.CrossLeg(LONG, 1.0, 100.0, 100.0, 40.0, FLAT)
    theta = mm.cross_liquidation_theta(50.0, [leg])
    assert theta == pytest.approx(49.5 / 59.7)
    assert leg.price(theta) == pytest.approx(50 / 0.995)  # 50.2513, the LP above


def test_theta_rule_two_feeds_fills_checked_by_hand():
    # WB 30; A long 1 at 100, open 100 -> low 80; B short 2 at 50, open 50 -> high 60; mmr 0.5 %.
    # surplus(θ) = 30 + (-20θ) + (-2)(10θ) - 0.005(100 - 20θ) - 0.005 * 2 (50 + 10θ)
    #            = 30 - 40θ - 0.5 + 0.1θ - 0.5 - 0.1θ = 29 - 40θ  ->  θ = 29/40 = 0.725
    # fills: A at 100 - 20 * 0.725 = 85.5, B at 50 + 10 * 0.725 = 57.25
    # check: margin balance 30 - 14.5 - 14.5 = 1.0 = MM 0.4275 + 0.5725
    legs = [mm.CrossLeg(LONG, 1.0, 100.0, 100.0, 80.0, FLAT),
            mm.CrossLeg(SHORT, 2.0, 50.0, 50.0, 60.0, FLAT)]
    theta = mm.cross_liquidation_theta(30.0, legs)
    assert theta == pytest.approx(0.725)
    assert legs[0].price(theta) == pytest.approx(85.5)
    assert legs[1].price(theta) == pytest.approx(57.25)
    assert mm.cross_margin_surplus(30.0, legs, theta) == pytest.approx(0.0, abs=1e-12)


def test_theta_none_when_the_bar_stays_above_maintenance():
    # same book with WB 50: surplus(1) = 49 - 40 = 9 > 0
    legs = [mm.CrossLeg(LONG, 1.0, 100.0, 100.0, 80.0, FLAT),
            mm.CrossLeg(SHORT, 2.0, 50.0, 50.0, 60.0, FLAT)]
    assert mm.cross_liquidation_theta(50.0, legs) is None


def test_theta_gap_is_zero_and_start_is_respected():
    # WB 0.5: surplus(0) = 0.5 - 0.5 - 0.5 = -0.5 <= 0: liquidated at the opens
    legs = [mm.CrossLeg(LONG, 1.0, 100.0, 100.0, 80.0, FLAT),
            mm.CrossLeg(SHORT, 2.0, 50.0, 50.0, 60.0, FLAT)]
    assert mm.cross_liquidation_theta(0.5, legs) == 0.0
    # from θ 0.8 (past the root 0.725 of the WB-30 book) the answer is the start itself
    assert mm.cross_liquidation_theta(30.0, legs, start=0.8) == 0.8


def test_theta_steps_brackets():
    # tiers: notional < 90 at mmr 1 %, >= 90 at 2 % with cum 90 * 0.01 = 0.9 (MM continuous)
    tiers = mm.validate_tiers([mm.MarginTier(0, 90, 0.01, 0.0, 50),
                               mm.MarginTier(90, math.inf, 0.02, 0.9, 25)])
    # WB 50, long 1 at 100, open 100 -> low 40. Entry bracket (2 %): 48.9 - 58.8θ, still 39.1 at
    # the edge θ = 1/6 (price 90); below it (1 %): 50 - 60θ - 0.01(100 - 60θ) = 49 - 59.4θ,
    # root θ = 49/59.4 -> price 100 - 60 * 49/59.4 = 50.5051 = 50 / 0.99 (isolated LP, margin 50)
    leg = mm.CrossLeg(LONG, 1.0, 100.0, 100.0, 40.0, tiers)
    theta = mm.cross_liquidation_theta(50.0, [leg])
    assert theta == pytest.approx(49 / 59.4)
    assert leg.price(theta) == pytest.approx(50 / 0.99)
    price, tier = mm.tiered_cross_liquidation_price(LONG, 1.0, 100.0, 50.0, 0.0, 0.0, tiers)
    assert price == pytest.approx(50 / 0.99) and tier is tiers[0]


def test_cross_liquidation_split_exchange_style():
    # WB 100, pnls -80 and +30: remaining 50 is the fee; MM 1 and 3 -> shares 1/4 and 3/4
    shares = mm.cross_liquidation_split(100.0, [-80.0, 30.0], [1.0, 3.0], [100.0, 300.0], None)
    assert [s.fee for s in shares] == pytest.approx([12.5, 37.5])
    assert [s.margin_lost for s in shares] == pytest.approx([25.0, 75.0])  # the whole wallet
    assert [s.deficit for s in shares] == [0.0, 0.0]


def test_cross_liquidation_split_with_rate_and_deficit():
    # rate 1 % of notional 400 = 4 <= remaining 50: fee 4, wallet lost 100 - (50 - 4) = 54
    shares = mm.cross_liquidation_split(100.0, [-80.0, 30.0], [1.0, 3.0], [100.0, 300.0], 0.01)
    assert sum(s.fee for s in shares) == pytest.approx(4.0)
    assert sum(s.margin_lost for s in shares) == pytest.approx(54.0)
    # WB 10, pnls -25 and +5: remaining -10 -> no fee, the whole wallet lost, deficit 10
    shares = mm.cross_liquidation_split(10.0, [-25.0, 5.0], [1.0, 1.0], [100.0, 100.0], None)
    assert [s.deficit for s in shares] == pytest.approx([5.0, 5.0])
    assert sum(s.margin_lost for s in shares) == pytest.approx(10.0)
    assert sum(s.fee for s in shares) == 0.0


def test_binance_ethusdt_table_ships_beside_btcusdt():
    import json
    from pathlib import Path
    folder = Path(mm.__file__).resolve().parent / "tiers"
    document = json.loads((folder / "binance_ethusdt_perp.json").read_text())
    assert "ETHUSDT" in document["source"] and "2026-12-01" in document["as_of"]
    tiers = mm.load_tiers(folder / "binance_ethusdt_perp.json")
    assert len(tiers) == 12 and tiers[0].max_leverage == 125
    # bracket 3 (600k to 3M notional): 0.65 %, cum 950 = 50 + 600000 * (0.0065 - 0.005)
    assert mm.tier_for_notional(tiers, 1_000_000.0).maintenance_margin_rate == 0.0065
    for lower, upper in zip(tiers, tiers[1:]):
        assert upper.maintenance_amount == pytest.approx(lower.maintenance_amount + upper.notional_floor * (
            upper.maintenance_margin_rate - lower.maintenance_margin_rate))
