"""The HTML risk report, checked from its HTML: every section, the headline, the tables against
metrics.json and the CSV files, n/a reasons, refused rows, offline charts, escaping."""
import base64
import csv
import json
from html.parser import HTMLParser

import numpy as np
import pytest

from backtrader_leverage.backtest import (BacktestConfig, event_records, read_outputs,
                                          read_report_inputs, safe_leverage_summary,
                                          series_bundle, sweep, write_outputs)
from backtrader_leverage.backtest.metrics import ROW_KEYS
from backtrader_leverage.data import load_csv
from backtrader_leverage.report import COLUMNS, format_value, render_report, report_title
from backtrader_leverage.report.charts import MAX_PLOT_POINTS, downsample
from backtrader_leverage.report.interactive import plotly_js
from backtrader_leverage.report.format import (COLUMN_GROUPS, LIQUIDATION_COLUMNS, TRADE_COLUMNS,
                                               na_text)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LEVERAGES = (1.0, 10.0, 100.0)
BARS = 1000


class ReportParser(HTMLParser):
    """Sections with their headings, paragraphs, tables (cells by key) and charts."""

    def __init__(self):
        super().__init__()
        self.title, self.sections, self.external, self.scripts = "", [], [], []
        self.images, self.charts = [], []
        self._in, self._cell, self._table, self._paragraph = None, None, None, None

    @property
    def section(self):
        return self.sections[-1]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name) and not attrs[name].startswith(("data:", "#")):
                self.external.append(attrs[name])
        if tag in ("link", "iframe", "object", "embed"):
            self.external.append(tag)
        if tag == "script":
            self.scripts.append(attrs)
        if tag == "title":
            self._in = "title"
        elif tag == "section":
            self.sections.append({"id": attrs.get("id"), "attrs": attrs, "h2": "",
                                  "paragraphs": [], "tables": [], "charts": [], "images": []})
        elif tag == "h2":
            self._in = "h2"
        elif tag == "p" and self.sections:
            self._paragraph = {"css": attrs.get("class", ""), "text": ""}
        elif tag == "table":
            self._table = {"css": attrs.get("class", ""), "headers": [], "rows": [], "caption": ""}
        elif tag == "caption":
            self._in = "caption"
        elif tag == "th" and self._table is not None:
            self._table["headers"].append(attrs.get("data-key"))
        elif tag == "tr" and self._table is not None and "data-key" not in attrs:
            self._row = {"css": attrs.get("class", ""), "attrs": attrs, "cells": {}}
        elif tag == "td":
            self._cell = {"key": attrs["data-key"], "value": attrs["data-value"], "text": "",
                          "css": attrs.get("class", ""), "title": attrs.get("title", "")}
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
            if self.sections:
                self.section["images"].append(attrs.get("src", ""))
        elif tag == "div" and "data-chart" in attrs:
            self.charts.append(attrs["data-chart"])
            self.section["charts"].append(attrs["data-chart"])

    def handle_endtag(self, tag):
        if tag in ("title", "h2", "caption"):
            self._in = None
        elif tag == "p" and self._paragraph is not None:
            self.section["paragraphs"].append(self._paragraph)
            self._paragraph = None
        elif tag == "td" and self._cell is not None:
            self._row["cells"][self._cell["key"]] = self._cell
            self._cell = None
        elif tag == "tr" and self._table is not None and getattr(self, "_row", None):
            if self._row["cells"]:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table" and self._table is not None:
            self.section["tables"].append(self._table)
            self._table = None

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in == "h2":
            self.section["h2"] += data
        elif self._in == "caption":
            self._table["caption"] += data
        if self._cell is not None:
            self._cell["text"] += data
        if self._paragraph is not None:
            self._paragraph["text"] += data

    def by_id(self, section_id):
        return next(section for section in self.sections if section["id"] == section_id)


def parse(html):
    parser = ReportParser()
    parser.feed(html)
    return parser


def write_folder(out, frame, configs, *, static=False, refine=False):
    """Run ``configs`` and write the output folder the way the command line does."""
    results = sweep(frame, configs, workers=1, progress=False)
    rows = [result.row for result in results]
    bundle = series_bundle(frame, results)
    summary = safe_leverage_summary(rows)
    liquidations, trades = event_records(rows, results)
    html = render_report(rows, bundle, summary, liquidations, trades, static=static)
    write_outputs(out, rows, bundle, html, summary=summary, liquidations=liquidations,
                  trades=trades)
    return out


@pytest.fixture(scope="module")
def real_frame(shared_data):
    return load_csv(shared_data / "binance_BTCUSDT_1h.csv").iloc[-BARS:]


@pytest.fixture(scope="module")
def output_folder(real_frame, tmp_path_factory):
    """A 3-leverage sma_cross sweep over the last BARS real hourly bars, plus a tier-refused
    125x (its first order of 0.9 x 10,000 x 125 = 1,125,000 notional is in the 50x bracket)."""
    configs = [BacktestConfig(leverage=leverage) for leverage in LEVERAGES]
    configs.append(BacktestConfig(leverage=125.0, tiers="binance_btcusdt_perp"))
    return write_folder(tmp_path_factory.mktemp("report"), real_frame, configs)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_section_in_order(output_folder):
    rows = json.loads((output_folder / "metrics.json").read_text())
    page = parse((output_folder / "report.html").read_text())
    assert [section["id"] for section in page.sections] == [
        "headline", "summary", "data", "funding", "outcome", "equity"] + [
        f"setting-{i}" for i in range(len(rows))]
    assert [section["h2"] for section in page.sections[:6]] == [
        "In one minute", "Summary by leverage", "Data and settings", "Funding by leverage",
        "Leverage vs outcome", "Equity of every leverage"]
    for number, row in enumerate(rows):
        section = page.by_id(f"setting-{number}")
        assert section["h2"] == f"Leverage {format_value(row['leverage'], 'leverage')}"
        assert json.loads(section["attrs"]["data-leverage"]) == row["leverage"]


def test_headline_is_the_summary_sentence(output_folder):
    summary = json.loads((output_folder / "summary.json").read_text())
    page = parse((output_folder / "report.html").read_text())
    headline = page.by_id("headline")["paragraphs"][0]
    assert headline["css"] == "headline" and headline["text"] == summary["headline"]
    for key in ("max_safe_leverage", "first_liquidated_leverage", "best_cagr_leverage",
                "best_calmar_leverage", "bisection"):
        assert key in summary
    assert "125x" in summary["headline"] and "every order refused" in summary["headline"]


def test_charts_are_embedded_plotly_and_nothing_is_fetched(output_folder):
    html = (output_folder / "report.html").read_text()
    page = parse(html)
    assert page.external == [] and page.images == []
    assert all("src" not in script for script in page.scripts)      # inline only: no CDN
    # plotly.js is inlined once; besides it (whose map styles name tile servers that a chart
    # without maps never loads) the page names no address at all
    bundle = plotly_js()
    assert html.count(bundle) == 1
    assert "://" not in html.replace(bundle, "")
    rows = json.loads((output_folder / "metrics.json").read_text())
    assert page.by_id("outcome")["charts"] == ["chart-outcome"]
    assert page.by_id("equity")["charts"] == ["chart-equity"]
    for number in range(len(rows)):
        assert page.by_id(f"setting-{number}")["charts"] == [f"chart-setting-{number}"]
    for chart in page.charts:
        assert f'<div id="{chart}" class="plotly-graph-div"' in html
    assert html.count("Plotly.newPlot(") == len(page.charts)
    assert len([script for script in page.scripts]) >= 1 + len(page.charts)


def test_summary_tables_match_metrics_json(output_folder):
    rows = json.loads((output_folder / "metrics.json").read_text())
    tables = parse((output_folder / "report.html").read_text()).by_id("summary")["tables"]
    assert [table["caption"] for table in tables] == [caption for _, caption, _ in COLUMN_GROUPS]
    for table, (_, _, columns) in zip(tables, COLUMN_GROUPS):
        several_feeds = len(json.loads(rows[0]["liquidations_by_feed"])) > 1
        shown = [column for column in columns if (not column.optional or
                 any(row.get(column.key) not in (None, 0, 0.0) for row in rows))
                 and (column.key != "liquidations_by_feed" or several_feeds)]
        assert table["headers"] == [column.key for column in shown]
        assert len(table["rows"]) == len(rows)
        for line, row in zip(table["rows"], rows):
            for column in shown:
                cell, expected = line["cells"][column.key], row[column.key]
                reason = row.get(f"{column.key}_reason")
                if expected is None:
                    assert cell["value"] == ""
                    assert cell["text"] == (na_text(reason) if reason else "–")
                    assert cell["title"] == (reason or "")
                elif column.kind == "text":
                    assert cell["value"] == expected
                else:
                    assert json.loads(cell["value"]) == expected
                    if column.key != "leverage":
                        assert cell["text"] == format_value(expected, column.kind)
    shown = tables[1]["headers"] + tables[2]["headers"]
    for key in ("worst_margin_ratio", "closest_distance", "margin_calls", "ruined",
                "orders_rejected", "trades", "liquidations", "margin_lost", "deficit"):
        assert key in shown


def test_ruined_ratios_are_na_with_the_reason(output_folder):
    rows = json.loads((output_folder / "metrics.json").read_text())
    returns = parse((output_folder / "report.html").read_text()).by_id("summary")["tables"][0]
    for line, row in zip(returns["rows"], rows):
        if row["ruined"] and not row["all_orders_rejected"]:
            assert row["sharpe"] is None and row["sharpe_reason"] == "ruined"
            assert line["cells"]["sharpe"]["text"] == "n/a (ruined)"
            assert line["cells"]["var_95"]["title"] == "ruined"


def test_refused_row_is_marked_and_never_best(output_folder):
    rows = json.loads((output_folder / "metrics.json").read_text())
    summary = json.loads((output_folder / "summary.json").read_text())
    refused = rows[-1]
    assert refused["all_orders_rejected"] is True and refused["trades"] == 0
    assert refused["orders_rejected"] > 0 and json.loads(refused["rejections"]) == {
        "tier": refused["orders_rejected"]}
    assert 125.0 not in (summary["best_cagr_leverage"], summary["best_calmar_leverage"],
                         summary["best_return_leverage"])
    page = parse((output_folder / "report.html").read_text())
    line = page.by_id("summary")["tables"][0]["rows"][-1]
    assert line["css"] == "rejected" and line["cells"]["leverage"]["text"] == "125x (never traded)"
    warnings = [p for p in page.by_id(f"setting-{len(rows) - 1}")["paragraphs"]
                if p["css"] == "warning"]
    assert warnings and "Never traded" in warnings[0]["text"]


def test_liquidation_and_trade_tables_match_the_csv_files(output_folder):
    rows = json.loads((output_folder / "metrics.json").read_text())
    liquidations = read_csv(output_folder / "liquidations.csv")
    trades = read_csv(output_folder / "trades.csv")
    if liquidations:
        assert list(liquidations[0])[:2] == ["leverage", "setting"]
    assert list(trades[0])[:2] == ["leverage", "setting"]
    page = parse((output_folder / "report.html").read_text())
    for number, row in enumerate(rows):
        section = page.by_id(f"setting-{number}")
        mine = [line for line in liquidations if int(line["setting"]) == number]
        assert len(mine) == row["liquidations"]
        assert all(float(line["leverage"]) == row["leverage"] for line in mine)
        mine_trades = [line for line in trades if int(line["setting"]) == number]
        assert len(mine_trades) == row["trades"]
        tables = {table["css"].split()[-1]: table for table in section["tables"]}
        if mine:
            table = tables["liquidations"]
            assert table["headers"] == [column.key for column in LIQUIDATION_COLUMNS]
            assert len(table["rows"]) == min(len(mine), 100)
            first = table["rows"][0]["cells"]
            assert first["fill_price"]["text"] == format_value(float(mine[0]["fill_price"]), "price")
            # margin lost includes the fee: never fee > margin lost
            assert all(float(line["fee"]) <= float(line["margin_lost"]) + 1e-9 for line in mine)
        else:
            assert "liquidations" not in tables
        if mine_trades:
            assert tables["trades"]["headers"] == [column.key for column in TRADE_COLUMNS]
            assert len(tables["trades"]["rows"]) == min(len(mine_trades), 100)
    # the 100x run on this slice is liquidated, so the liquidation table is exercised
    assert any(row["liquidations"] for row in rows)


def test_report_is_rebuilt_identically_from_the_folder(output_folder):
    inputs = read_report_inputs(output_folder)
    html = render_report(inputs["rows"], inputs["bundle"], inputs["summary"],
                         inputs["liquidations"], inputs["trades"])
    assert html == (output_folder / "report.html").read_text()


def test_one_setting_run_has_no_sweep_charts_and_one_equity_chart(real_frame, tmp_path):
    out = write_folder(tmp_path, real_frame, [BacktestConfig(leverage=3.0)], static=True)
    page = parse((out / "report.html").read_text())
    assert [section["id"] for section in page.sections] == ["headline", "summary", "data",
                                                            "funding", "setting-0"]
    assert page.scripts == [] and page.external == []            # --static: no script at all
    (image,) = page.images
    prefix = "data:image/png;base64,"
    assert image.startswith(prefix)
    assert base64.b64decode(image[len(prefix):], validate=True).startswith(PNG_MAGIC)
    assert page.by_id("headline")["paragraphs"][0]["text"].startswith("At 3x:")


def synthetic_row(**values):
    row = dict.fromkeys(ROW_KEYS)
    row.update(strategy="buy_hold", leverage=20.0, cash=10_000.0, final_value=-500.0,
               total_return=-1.05, max_drawdown=1.0, liquidations=1, error=None,
               source="synthetic", synthetic=True, interval="1h", bars=50, trades=1,
               data_start="2023-11-14T22:00:00+00:00", data_end="2023-11-16T23:00:00+00:00",
               strategy_params="{}", commission=0.0004, maintenance_margin_rate=0.005,
               tiers=None, liquidation_fee_rate=None, negative_balance="carry", ruined=True,
               symbol="BTC-USD")
    row.update(values)
    return row


def test_user_text_is_escaped_and_synthetic_is_flagged_once():
    hostile = "<script>alert(1)</script>"
    time = (np.arange(50, dtype=np.int64) * 3_600 + 1_700_000_000) * 1_000_000_000
    equity = np.linspace(10_000, -500, 50)       # ends in debt: a linear equity axis
    row = synthetic_row(symbol=hostile)
    bundle = {"time": time, "close": np.linspace(100, 50, 50),
              "0/equity": equity, "0/drawdown": (10_000 - equity) / 10_000,
              "0/margin_ratio": np.full(50, np.nan), "0/liquidation_time": time[[30]],
              "0/liquidation_price": np.array([70.0]), "0/liquidation_side": np.array([1])}
    for static in (False, True):
        html = render_report([row], bundle, static=static)
        assert hostile not in html and "&lt;script&gt;" in html
        page = parse(html)
        assert "SYNTHETIC" in page.title and "SYNTHETIC DATA" in html
        assert page.title.count("ynthetic") + page.title.count("YNTHETIC") == 1
        assert page.external == []


def test_title_says_synthetic_once_and_real_data_with_its_source():
    assert report_title([synthetic_row()]) == (
        "buy_hold on BTC-USD 1h · SYNTHETIC data · 2023-11-14 22:00 → 2023-11-16 23:00")
    real = report_title([synthetic_row(synthetic=False, source="csv")])
    assert " · csv, real data · " in real


def test_failed_setting_has_a_section_with_its_error():
    row = synthetic_row(leverage=200.0, synthetic=False, source="csv", final_value=None,
                        total_return=None, max_drawdown=None, liquidations=None, trades=None,
                        ruined=None, error="leverage 200 is above the tier table's maximum")
    bundle = {"time": np.arange(3, dtype=np.int64), "close": np.ones(3)}
    page = parse(render_report([row], bundle))
    section = page.by_id("setting-0")
    assert section["paragraphs"][0]["css"] == "error"
    assert row["error"] in section["paragraphs"][0]["text"]
    assert page.by_id("summary")["tables"][2]["rows"][0]["cells"]["error"]["value"] == row["error"]


def test_carry_without_deficit_says_why():
    rows = [synthetic_row(final_value=900.0, total_return=-0.91, deficit=0.0, ruined=False)]
    summary = safe_leverage_summary(rows)
    (note,) = summary["notes"]
    assert "no deficit occurred" in note and "bankruptcy price" in note
    bundle = {"time": np.arange(3, dtype=np.int64) * 3_600 * 10**9, "close": np.ones(3),
              "0/equity": np.full(3, 900.0), "0/drawdown": np.zeros(3),
              "0/margin_ratio": np.full(3, np.nan),
              "0/liquidation_time": np.array([], dtype=np.int64),
              "0/liquidation_price": np.array([]), "0/liquidation_side": np.array([], np.int8)}
    paragraphs = parse(render_report(rows, bundle, summary)).by_id("headline")["paragraphs"]
    assert [p["text"] for p in paragraphs if p["css"] == "note"] == [note]


def test_format_value_arithmetic():
    assert format_value(0.1234, "percent") == "12.34 %"      # 0.1234 * 100
    assert format_value(-1.05, "percent") == "-105.00 %"
    assert format_value(1234.5, "money") == "1,234.50"
    assert format_value(2 * 86_400 + 5 * 3_600, "duration") == "2d 5h"
    assert format_value(3 * 3_600 + 20 * 60, "duration") == "3h 20m"
    assert format_value(None, "ratio") == "–"
    assert format_value(12.5, "leverage") == "12.5x"
    assert len({column.key for column in COLUMNS}) == len(COLUMNS)


def test_downsample_keeps_the_extremes_and_the_ends():
    x = np.arange(100_000)
    y = np.sin(x / 500.0)
    y[54_321] = -7.0                                          # a one-bar crash
    small_x, small_y = downsample(x, y)
    assert len(small_y) <= MAX_PLOT_POINTS + 2
    assert small_y.min() == -7.0 and small_y.max() == y.max()
    assert small_x[0] == 0 and small_x[-1] == x[-1]
    assert np.all(np.diff(small_x) > 0)


def test_folder_without_the_new_files_still_renders(output_folder, tmp_path):
    rows, bundle = read_outputs(output_folder)
    write_outputs(tmp_path, rows, bundle, None)               # an older folder: no summary/CSVs
    inputs = read_report_inputs(tmp_path)
    assert inputs["summary"] is None and inputs["liquidations"] == [] and inputs["trades"] == []
    page = parse(render_report(inputs["rows"], inputs["bundle"], inputs["summary"]))
    assert page.by_id("headline")["paragraphs"][0]["text"]


def test_funding_off_says_so_in_the_settings_and_the_funding_section(output_folder):
    page_text = (output_folder / "report.html").read_text()
    page = parse(page_text)
    section = page.by_id("funding")
    assert any("Funding was not modelled" in p["text"] for p in section["paragraphs"])
    assert section["charts"] == [] and "funding not modelled" in page_text
    assert "trade price" in page_text


def test_funding_section_shows_cumulative_funding_per_leverage(shared_data, tmp_path):
    from backtrader_leverage.data import load_funding_csv, load_mark_csv, with_perpetual_data
    window = slice("2021-03-01", "2021-03-31")
    trade = load_csv(shared_data / "binance_um_BTCUSDT_1h.csv").loc[window]
    mark = load_mark_csv(shared_data / "binance_um_BTCUSDT_mark_1h.csv").loc[window]
    funding = load_funding_csv(shared_data / "binance_um_BTCUSDT_funding_8h.csv")
    frame = with_perpetual_data(trade, mark=mark, funding=funding)
    configs = [BacktestConfig(strategy="buy_hold", leverage=leverage) for leverage in (1.0, 3.0)]
    out = write_folder(tmp_path / "perp", frame, configs)
    rows = json.loads((out / "metrics.json").read_text())
    page_text = (out / "report.html").read_text()
    section = parse(page_text).by_id("funding")
    assert section["charts"] == ["chart-funding"]
    # the 3x position is three times the notional: three times the funding (same entry, same rates)
    assert rows[1]["funding_paid"] == pytest.approx(3 * rows[0]["funding_paid"], rel=0.01)
    assert rows[0]["funding_payments"] == rows[1]["funding_payments"] > 80
    assert format_value(rows[1]["funding_paid"], "money") in page_text
    assert "mark price (binance_um_BTCUSDT_mark_1h.csv)" in page_text
    _rows, bundle = read_outputs(out)
    assert bundle["1/funding"][-1] == pytest.approx(rows[1]["funding_paid"], rel=1e-5)
