"""The demo's bundled real data: Binance USDⓈ-M BTCUSDT perpetual, 2021-01-01 to 2023-01-01.

Three gzip CSV files in ``data/samples/`` (package data, found with
``importlib.resources``; provenance in ``samples/PROVENANCE.md``): 1h trade klines,
1h mark-price klines and the 8-hourly funding rates.
"""
from __future__ import annotations

import importlib.resources

import pandas as pd

from .csvfile import load_csv
from .funding import load_funding_csv, load_mark_csv, with_perpetual_data

SAMPLE_SYMBOL = "BTCUSDT-PERP"
SAMPLE_FILES = {
    "trade": "binance_um_BTCUSDT_1h_2021-2022.csv.gz",
    "mark": "binance_um_BTCUSDT_mark_1h_2021-2022.csv.gz",
    "funding": "binance_um_BTCUSDT_funding_8h_2021-2022.csv.gz",
}


def sample_path(kind: str):
    """Traversable of one bundled file: ``'trade'``, ``'mark'`` or ``'funding'``."""
    return importlib.resources.files(__package__) / "samples" / SAMPLE_FILES[kind]


def load_perpetual_sample(*, funding: bool = True, mark: bool = True) -> pd.DataFrame:
    """The bundled BTCUSDT perpetual 1h frame, carrying its funding and mark price.

    The frame is the standard OHLCV frame (``attrs['symbol'] == 'BTCUSDT-PERP'``)
    made by :func:`data.with_perpetual_data`, so a backtest of it pays the real
    funding and liquidates on the real mark price; ``funding=False`` /
    ``mark=False`` leave either out.
    """
    with importlib.resources.as_file(sample_path("trade")) as path:
        frame = load_csv(path, symbol=SAMPLE_SYMBOL)
    mark_frame = funding_series = None
    if mark:
        with importlib.resources.as_file(sample_path("mark")) as path:
            mark_frame = load_mark_csv(path, symbol=f"{SAMPLE_SYMBOL} mark")
    if funding:
        with importlib.resources.as_file(sample_path("funding")) as path:
            funding_series = load_funding_csv(path)
    return with_perpetual_data(frame, mark=mark_frame, funding=funding_series)
