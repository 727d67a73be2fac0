"""Host threads: the helpers, and a run whose results do not depend on the thread count."""

import itertools
import threading
import time

import numba
import pandas as pd
import pytest

from gpucdp import standardize as standardize_module
from gpucdp import synth
from gpucdp.errors import SettingsError
from gpucdp.parallel import available_cores, numba_threads, resolve_threads, thread_map
from gpucdp.pipeline import resolve
from gpucdp.standardize import row_parts, standardize


def test_thread_map_keeps_the_order_of_items_and_uses_several_threads():
    seen = set()

    def work(x):
        seen.add(threading.current_thread().name)
        time.sleep(0.02 * (5 - x))  # later items finish first
        return x * x

    assert thread_map(work, range(5), threads=3) == [0, 1, 4, 9, 16]
    assert len(seen) > 1


def test_thread_map_with_one_thread_runs_in_the_caller():
    names = thread_map(lambda _: threading.current_thread().name, range(3), threads=1)
    assert names == [threading.current_thread().name] * 3


def test_thread_map_raises_the_first_failure_in_item_order():
    def work(x):
        if x in (1, 3):
            time.sleep(0.05 if x == 1 else 0.0)  # item 3 fails first in time, item 1 first in order
            raise ValueError(f"item {x}")
        return x

    with pytest.raises(ValueError, match="item 1"):
        thread_map(work, range(4), threads=4)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "4", True])
def test_resolve_threads_refuses_what_is_not_a_positive_whole_number(bad):
    with pytest.raises(SettingsError, match="--threads"):
        resolve_threads(bad)


def test_resolve_threads_defaults_to_the_available_cores():
    assert resolve_threads(None) == available_cores() >= 1
    assert resolve_threads(3) == 3


def test_numba_threads_sets_and_restores_the_kernel_pool():
    before = numba.get_num_threads()
    with numba_threads(1) as count:
        assert count == 1 and numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with numba_threads(10_000) as count:  # capped at the pool Numba started with
        assert count == numba.config.NUMBA_NUM_THREADS


@pytest.fixture(scope="module")
def records():
    return synth.generate_frame(3_000, seed=11, difficulty=0.5)[0]


@pytest.mark.parametrize("min_part_rows", [standardize_module.MIN_PART_ROWS, 700])
def test_standardize_gives_the_same_frame_and_stats_on_any_thread_count(records, min_part_rows, monkeypatch):
    # with 700 rows at the least, four threads cut each field of 3,000 rows into four parts of 750
    monkeypatch.setattr(standardize_module, "MIN_PART_ROWS", min_part_rows)
    assert len(row_parts(len(records), 4)) == (1 if min_part_rows > len(records) else 4)
    records = records.assign(spend=[None, "12.5", "n/a", " 7 "] * (len(records) // 4))
    records.loc[:799, ["dob", "city"]] = None  # a part with no value at all keeps the column's type
    fields = [("first_name", "name"), ("last_name", "name"), ("dob", "date"), ("email", "email"),
              ("phone", "phone"), ("address_line", "address"), ("city", "text"), ("postcode", "postcode"),
              ("spend", "numeric")]
    one, stats_one = standardize(records, fields, threads=1)
    many, stats_many = standardize(records, fields, threads=4)
    pd.testing.assert_frame_equal(one, many)
    assert list(one.columns) == list(many.columns)
    assert stats_one == stats_many and list(stats_one) == list(stats_many)
    assert stats_one["spend"] == {"missing": 750, "unparseable": 750}


def test_row_parts_cover_the_rows_once_in_order():
    assert row_parts(0, 4) == [(0, 0)]
    assert row_parts(10, 4) == [(0, 10)]  # fewer rows than a part's least: one part
    parts = row_parts(1_000_001, 3)
    assert len(parts) == 3 and parts[0][0] == 0 and parts[-1][1] == 1_000_001
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))


def test_a_run_gives_the_same_results_on_any_thread_count(records):
    one = resolve(records, backend="cpu", threads=1, write_pairs=True)
    many = resolve(records, backend="cpu", threads=3, write_pairs=True)
    pd.testing.assert_frame_equal(one.profiles, many.profiles)
    pd.testing.assert_frame_equal(one.membership, many.membership)
    pd.testing.assert_frame_equal(one.pairs, many.pairs)
    assert one.model.to_dict() == many.model.to_dict()  # EM's parallel steps sum in one order
    assert (one.manifest["threads"], many.manifest["threads"]) == (1, 3)
