"""The one number formatter and the one LRU cache class."""

from __future__ import annotations

import numpy as np
import pytest

from embscope.formatting import format_number
from embscope.tasks.lru import LruCache


@pytest.mark.parametrize(
    ("value", "kwargs", "text"),
    [
        (None, {}, "—"),
        (float("nan"), {"missing": "–"}, "–"),
        (True, {}, "yes"),
        (np.bool_(False), {}, "no"),
        (12345, {}, "12345"),
        (np.int64(12345), {"thousands": True}, "12,345"),
        (0.0, {}, "0"),
        (0.123456, {}, "0.1235"),
        (np.float32(0.5), {}, "0.5"),
        (123456.0, {}, "1.235e+05"),
        (0.000123456, {}, "1.235e-04"),
        (1.61234, {"digits": 3, "fixed_below": 1e4}, "1.61"),
        (12345.0, {"digits": 3, "fixed_below": 1e4}, "1.23e+04"),
        (float("inf"), {}, "inf"),
        ("n/a", {}, "n/a"),
    ],
)
def test_format_number(value, kwargs, text):
    # Expected strings follow Python's own format spec: .{digits}g plainly, .{digits-1}e outside.
    assert format_number(value, **kwargs) == text


def test_lru_cache_evicts_the_least_recently_used_and_counts_hits():
    cache: LruCache[str, int] = LruCache(max_items=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2 and cache.hits == 3
    cache.clear()
    assert len(cache) == 0 and cache.get("a") is None
    with pytest.raises(ValueError, match="max_items must be at least 1"):
        LruCache(0)
