"""The HTML risk report: every section and image, table == metrics.json, offline, escaped."""
import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest

from backtrader_leverage.backtest import BacktestConfig, read_outputs, series_bundle, sweep, write_outputs
from backtrader_leverage.data import load_csv
from backtrader_leverage.report import COLUMNS, format_value, render_report
from backtrader_leverage.report.figures import MAX_PLOT_POINTS, downsample

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LEVERAGES = (1.0, 10.0, 100.0)
BARS = 1000


class ReportParser(HTMLParser):
    """Collects the title, section ids, image sources, external references and table cells."""

    def __init__(self):
        super().__init__()
        self.title, self.sections, self.images, self.external = "", [], [], []
        self.rows, self.headers, self._in_title, self._cell = [], [], False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name) and not attrs[name].startswith(("data:", "#")):
                self.external.append(attrs[name])
        if tag in ("script", "link", "iframe"):
            self.external.append(tag)
        if tag == "title":
            self._in_title = True
        elif tag == "section":
            self.sections.append(attrs.get("id"))
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "th":
            self.headers.append(attrs.get("data-key"))
        elif tag == "tr" and "data-row" in attrs:
            self.rows.append({})
        elif tag == "td":
            self._cell = {"key": attrs["data-key"], "value": attrs["data-value"], "text": ""}

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1][self._cell["key"]] = self._cell
            self._cell = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell["text"] += data


def parse(html):
    parser = ReportParser()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def output_folder(shared_data, tmp_path_factory):
    """A 3-leverage sweep over the last BARS real hourly bars, written like the CLI does."""
    frame = load_csv(shared_data / "binance_BTCUSDT_1h.csv").iloc[-BARS:]
    results = sweep(frame, [BacktestConfig(leverage=leverage) for leverage in LEVERAGES],
                    workers=2, progress=False)
    rows = [result.row for result in results]
    bundle = series_bundle(frame, results)
    out = tmp_path_factory.mktemp("report")
    write_outputs(out, rows, bundle, render_report(rows, bundle))
    return out


def test_every_section_and_image_is_there(output_folder):
    rows = json.loads((output_folder / "metrics.json").read_text())
    page = parse((output_folder / "report.html").read_text())
    assert page.sections == ["data", "summary", "outcome"] + [f"setting-{i}"
                                                               for i in range(len(rows))]
    # leverage-vs-outcome chart + all-equities overlay + one four-panel chart per setting
    assert len(page.images) == 2 + len(rows)
    for source in page.images:
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        assert base64.b64decode(source[len(prefix):], validate=True).startswith(PNG_MAGIC)
    assert page.external == []


def test_title_names_the_data(output_folder):
    rows = json.loads((output_folder / "metrics.json").read_text())
    page = parse((output_folder / "report.html").read_text())
    for part in (rows[0]["symbol"], rows[0]["source"], "real data", rows[0]["strategy"],
                 rows[0]["data_start"][:10], rows[0]["data_end"][:10]):
        assert part in page.title


def test_table_matches_metrics_json(output_folder):
    rows = json.loads((output_folder / "metrics.json").read_text())
    page = parse((output_folder / "report.html").read_text())
    assert page.headers == [column.key for column in COLUMNS]
    assert len(page.rows) == len(rows)
    for cells, row in zip(page.rows, rows):
        for column in COLUMNS:
            cell, expected = cells[column.key], row[column.key]
            if expected is None:
                assert cell["value"] == "" and cell["text"] == "–"
            elif column.kind == "text":
                assert cell["value"] == expected
            else:
                assert json.loads(cell["value"]) == expected
                assert cell["text"] == format_value(expected, column.kind)
    # the table really covers what the issue lists
    for key in ("total_return", "cagr", "max_drawdown", "sharpe", "sortino", "calmar",
                "liquidations", "margin_lost", "deficit", "time_to_first_liquidation"):
        assert key in page.headers


def test_report_is_rebuilt_identically_from_the_folder(output_folder):
    rows, bundle = read_outputs(output_folder)
    assert render_report(rows, bundle) == (output_folder / "report.html").read_text()


def test_user_text_is_escaped_and_synthetic_is_flagged():
    hostile = "<script>alert(1)</script>"
    time = (np.arange(50, dtype=np.int64) * 3_600 + 1_700_000_000) * 1_000_000_000
    equity = np.linspace(10_000, -500, 50)       # ends in debt: symmetric-log axis
    row = dict.fromkeys(c.key for c in COLUMNS)
    row.update(strategy="buy_hold", leverage=20.0, cash=10_000.0, final_value=-500.0,
               total_return=-1.05, max_drawdown=1.0, liquidations=1, error=None, symbol=hostile,
               source="synthetic", synthetic=True, interval="1h", bars=50,
               data_start="2023-11-14T22:00:00+00:00", data_end="2023-11-16T23:00:00+00:00",
               strategy_params="{}", commission=0.0004, maintenance_margin_rate=0.005,
               tiers=None, liquidation_fee_rate=None, negative_balance="carry")
    bundle = {"time": time, "close": np.linspace(100, 50, 50),
              "0/equity": equity, "0/drawdown": (10_000 - equity) / 10_000,
              "0/margin_ratio": np.full(50, np.nan), "0/liquidation_time": time[[30]],
              "0/liquidation_price": np.array([70.0]), "0/liquidation_side": np.array([1])}
    html = render_report([row], bundle)
    assert hostile not in html and "&lt;script&gt;" in html
    page = parse(html)
    assert "SYNTHETIC" in page.title and "SYNTHETIC DATA" in html
    assert len(page.images) == 3 and page.external == []


def test_failed_setting_has_a_section_with_its_error():
    row = dict.fromkeys(c.key for c in COLUMNS)
    row.update(strategy="sma_cross", leverage=200.0, cash=10_000.0, symbol="X", source="csv",
               synthetic=False, interval="1h", bars=3, data_start=None, data_end=None,
               strategy_params="{}", commission=0.0004, maintenance_margin_rate=0.005, tiers=None,
               liquidation_fee_rate=None, negative_balance="absorb",
               error="ValueError: leverage 200 is above the tier table's maximum of 125x")
    bundle = {"time": np.arange(3, dtype=np.int64), "close": np.ones(3)}
    page = parse(render_report([row], bundle))
    assert page.sections[-1] == "setting-0"
    assert len(page.images) == 2                  # only the outcome chart and the (empty) overlay
    assert page.rows[0]["error"]["value"] == row["error"]


def test_format_value_arithmetic():
    assert format_value(0.1234, "percent") == "12.34 %"      # 0.1234 * 100
    assert format_value(-1.05, "percent") == "-105.00 %"
    assert format_value(1234.5, "money") == "1,234.50"
    assert format_value(2 * 86_400 + 5 * 3_600, "duration") == "2d 5h"
    assert format_value(3 * 3_600 + 20 * 60, "duration") == "3h 20m"
    assert format_value(None, "ratio") == "–"
    assert format_value(12.5, "leverage") == "12.5x"


def test_downsample_keeps_the_extremes_and_the_ends():
    x = np.arange(100_000)
    y = np.sin(x / 500.0)
    y[54_321] = -7.0                                          # a one-bar crash
    small_x, small_y = downsample(x, y)
    assert len(small_y) <= MAX_PLOT_POINTS + 2
    assert small_y.min() == -7.0 and small_y.max() == y.max()
    assert small_x[0] == 0 and small_x[-1] == x[-1]
    assert np.all(np.diff(small_x) > 0)
