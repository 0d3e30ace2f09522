"""Pure margin math, checked against hand-computed values."""
import json
import math
from pathlib import Path

import pytest

from backtrader_leverage.broker import margin as mm

LONG, SHORT = 1, -1
ENTRY = 100.0
SIZE = 1.0
LEVERAGE = 10.0
MARGIN = ENTRY * SIZE / LEVERAGE  # 10 quote
MMR = 0.005

TIERS_FILE = Path(__file__).resolve().parent.parent / "broker" / "tiers" / "binance_btcusdt_perp.json"


def test_long_liquidation_price_worked_example():
    # LP = (10 - 100) / (0.005 - 1) = 90 / 0.995
    assert mm.liquidation_price(LONG, SIZE, ENTRY, MARGIN, MMR) == pytest.approx(90 / 0.995)
    assert mm.liquidation_price(LONG, SIZE, ENTRY, MARGIN, MMR) == pytest.approx(90.4523, abs=1e-4)


def test_short_liquidation_price_worked_example():
    # LP = (10 + 100) / (0.005 + 1) = 110 / 1.005
    assert mm.liquidation_price(SHORT, SIZE, ENTRY, MARGIN, MMR) == pytest.approx(110 / 1.005)
    assert mm.liquidation_price(SHORT, SIZE, ENTRY, MARGIN, MMR) == pytest.approx(109.4527, abs=1e-4)


def test_bankruptcy_prices():
    # BP = entry - side * margin / size
    assert mm.bankruptcy_price(LONG, SIZE, ENTRY, MARGIN) == pytest.approx(100 - 10)
    assert mm.bankruptcy_price(SHORT, SIZE, ENTRY, MARGIN) == pytest.approx(100 + 10)


def test_liquidation_price_scales_with_size():
    # 2.5 BTC at 100 with 4x: margin 62.5; LP = (62.5 - 250) / (2.5 * 0.005 - 2.5) = 187.5 / 2.4875
    size, leverage = 2.5, 4.0
    margin = size * ENTRY / leverage
    assert mm.liquidation_price(LONG, size, ENTRY, margin, MMR) == pytest.approx(187.5 / 2.4875)


def test_maintenance_amount_enters_the_numerator():
    # long 1 at 100, margin 10, mmr 0.01, cum 0.5: LP = (10 + 0.5 - 100) / (0.01 - 1) = 89.5 / 0.99
    assert mm.liquidation_price(LONG, SIZE, ENTRY, MARGIN, 0.01, 0.5) == pytest.approx(89.5 / 0.99)


def test_long_fully_margined_never_liquidates():
    # 1x with margin 100 + extra 5: LP formula gives (105 - 100) / (0.005 - 1) < 0 -> clipped to 0
    assert mm.liquidation_price(LONG, SIZE, ENTRY, 105.0, MMR) == 0.0
    assert mm.bankruptcy_price(LONG, SIZE, ENTRY, 105.0) == 0.0


def test_liquidation_price_rejects_bad_side_and_size():
    with pytest.raises(ValueError, match="side"):
        mm.liquidation_price(0, SIZE, ENTRY, MARGIN, MMR)
    with pytest.raises(ValueError, match="size"):
        mm.bankruptcy_price(LONG, 0.0, ENTRY, MARGIN)


def test_maintenance_margin_and_pnl():
    # notional 1000 * 0.005 - 0 = 5; pnl of a short of 2 from 100 to 90 = -1 * 2 * (90 - 100) = 20
    assert mm.maintenance_margin(1000.0, MMR) == pytest.approx(5.0)
    assert mm.maintenance_margin(1000.0, 0.01, 2.5) == pytest.approx(7.5)
    assert mm.unrealized_pnl(SHORT, 2.0, 100.0, 90.0) == pytest.approx(20.0)
    assert mm.initial_margin(1000.0, 20.0) == pytest.approx(50.0)


def test_binance_table_is_consistent():
    tiers = mm.load_tiers(TIERS_FILE)
    document = json.loads(TIERS_FILE.read_text())
    assert document["source"] and document["as_of"]
    assert tiers[0].max_leverage == 125 and tiers[0].maintenance_margin_rate == 0.004
    # cum_n = cum_(n-1) + floor_n * (mmr_n - mmr_(n-1)): the deduction keeps MM continuous
    for lower, upper in zip(tiers, tiers[1:]):
        expected = lower.maintenance_amount + upper.notional_floor * (
            upper.maintenance_margin_rate - lower.maintenance_margin_rate)
        assert upper.maintenance_amount == pytest.approx(expected)


def test_tier_lookup_by_notional():
    tiers = mm.load_tiers(TIERS_FILE)
    assert mm.tier_for_notional(tiers, 49_999.0).maintenance_margin_rate == 0.004
    assert mm.tier_for_notional(tiers, 50_000.0).maintenance_margin_rate == 0.005
    assert mm.tier_for_notional(tiers, 1e12) is tiers[-1]
    # MM of 10 BTC at 60,000 (notional 600,000, tier 3): 600000 * 0.01 - 2550 = 3450
    assert mm.position_maintenance_margin(10.0, 60_000.0, tiers) == pytest.approx(3450.0)


def test_tier_is_chosen_at_the_liquidation_price_not_at_entry():
    tiers = (mm.MarginTier(0, 1000, 0.01, 0.0, 50),
             mm.MarginTier(1000, math.inf, 0.05, 40.0, 10))
    # long 10 at 110 (notional 1100 -> tier 2), margin 220 (5x).
    # tier 2: LP = (220 + 40 - 1100) / (10 * 0.05 - 10) = 840 / 9.5 = 88.42 -> notional 884 is tier 1
    # tier 1: LP = (220 - 1100) / (10 * 0.01 - 10) = 880 / 9.9 = 88.89 -> notional 888.9, tier 1: consistent
    price, tier = mm.tiered_liquidation_price(LONG, 10.0, 110.0, 220.0, tiers)
    assert tier is tiers[0]
    assert price == pytest.approx(880 / 9.9)


def test_short_moves_up_the_tiers():
    tiers = (mm.MarginTier(0, 1000, 0.01, 0.0, 50),
             mm.MarginTier(1000, math.inf, 0.05, 40.0, 10))
    # short 10 at 95 (notional 950, tier 1), margin 190 (5x).
    # tier 1: LP = (190 + 950) / (0.1 + 10) = 1140 / 10.1 = 112.87 -> notional 1128.7, tier 2
    # tier 2: LP = (190 + 40 + 950) / (0.5 + 10) = 1180 / 10.5 = 112.38 -> notional 1123.8, tier 2
    price, tier = mm.tiered_liquidation_price(SHORT, 10.0, 95.0, 190.0, tiers)
    assert tier is tiers[1]
    assert price == pytest.approx(1180 / 10.5)


def test_flat_table_max_leverage_is_one_over_mmr():
    (tier,) = mm.flat_tiers(0.005)
    assert tier.max_leverage == pytest.approx(1 / 0.005)
    with pytest.raises(ValueError, match="fraction"):
        mm.flat_tiers(0.0)


def test_bad_tier_tables_are_refused(tmp_path):
    gap = tmp_path / "gap.json"
    gap.write_text(json.dumps({"tiers": [
        {"notional_floor": 0, "notional_cap": 10, "maintenance_margin_rate": 0.01,
         "maintenance_amount": 0, "max_leverage": 20},
        {"notional_floor": 20, "notional_cap": "inf", "maintenance_margin_rate": 0.02,
         "maintenance_amount": 0.1, "max_leverage": 10}]}))
    with pytest.raises(ValueError, match="gap.json: tier 2 starts at 20"):
        mm.load_tiers(gap)
    missing = tmp_path / "missing.csv"
    missing.write_text("notional_floor,notional_cap\n0,10\n")
    with pytest.raises(ValueError, match="missing.csv: tier 1 has no column"):
        mm.load_tiers(missing)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt.json: cannot read"):
        mm.load_tiers(corrupt)


def test_csv_tier_table(tmp_path):
    path = tmp_path / "tiers.csv"
    path.write_text("notional_floor,notional_cap,maintenance_margin_rate,maintenance_amount,max_leverage\n"
                    "0,5000,0.01,0,50\n5000,,0.02,50,20\n")
    tiers = mm.load_tiers(path)
    assert tiers[1].notional_cap == math.inf
    # continuity: 5000 * (0.02 - 0.01) = 50
    assert tiers[1].maintenance_amount == pytest.approx(5000 * (0.02 - 0.01))


def test_exchange_style_liquidation_outcome():
    # long 1 at 100, margin 10, filled at LP 90.4523: remaining = 10 + (90.4523 - 100) = 0.4523
    fill = 90 / 0.995
    outcome = mm.liquidation_outcome(LONG, SIZE, ENTRY, MARGIN, fill, None)
    assert outcome.fee == pytest.approx(MARGIN + (fill - ENTRY))
    assert outcome.returned == 0.0
    assert outcome.margin_lost == pytest.approx(MARGIN)
    assert outcome.deficit == 0.0


def test_fee_rate_liquidation_outcome():
    fill = 90 / 0.995
    remaining = MARGIN + (fill - ENTRY)  # 0.4523
    # x = 0.001: fee = min(0.001 * 90.4523, 0.4523) = 0.0904523; returned = 0.4523 - 0.0905
    outcome = mm.liquidation_outcome(LONG, SIZE, ENTRY, MARGIN, fill, 0.001)
    assert outcome.fee == pytest.approx(0.001 * fill)
    assert outcome.returned == pytest.approx(remaining - 0.001 * fill)
    assert outcome.margin_lost == pytest.approx(MARGIN - (remaining - 0.001 * fill))
    # x = 0.01: 0.01 * 90.45 = 0.9045 > remaining, so the fee is capped at what remains
    capped = mm.liquidation_outcome(LONG, SIZE, ENTRY, MARGIN, fill, 0.01)
    assert capped.fee == pytest.approx(remaining)
    assert capped.returned == 0.0


def test_gap_past_bankruptcy_gives_a_deficit():
    # short 2 at 100, margin 20 (10x), BP = 110; gap fill at 125: deficit = 2 * (125 - 110) = 30
    outcome = mm.liquidation_outcome(SHORT, 2.0, ENTRY, 20.0, 125.0, None)
    assert outcome.deficit == pytest.approx(2 * (125 - 110))
    assert outcome.fee == 0.0 and outcome.returned == 0.0
    assert outcome.margin_lost == pytest.approx(20.0)


@pytest.mark.parametrize("size, lot, expected", [
    (1.235, 0.001, 1.235),      # on the grid: 1.235 / 0.001 = 1234.9999999999998 must not floor
    (1.2359, 0.001, 1.235),
    (0.0004, 0.001, 0.0),
    (-0.7779, 0.001, -0.777),   # toward zero for sells
    (3.0, 0.5, 3.0),
    (0.3, 0.1, 0.3),            # 0.3 / 0.1 = 2.9999999999999996
])
def test_floor_to_lot(size, lot, expected):
    assert mm.floor_to_lot(size, lot) == expected


def test_lot_decimals():
    assert mm.lot_decimals(0.001) == 3
    assert mm.lot_decimals(1.0) == 0
    assert mm.lot_decimals(0.25) == 2
