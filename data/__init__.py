"""Historical OHLCV data for leveraged-crypto backtests (work in progress)."""
from .errors import DataError, DataUnavailable
from .feed import ArrayFeed, bt_date_numbers
from .intervals import interval_to_timeframe
