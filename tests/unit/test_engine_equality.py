"""The mart-equality check's normalisation: equal values from two engines compare equal, others not."""

import datetime as dt
import decimal

from tests.engine_equality import compare, digest, normalise


def test_the_same_number_in_another_type_is_equal():
    assert normalise(3) == normalise(3.0) == normalise(decimal.Decimal("3.00"))
    assert normalise(0.1 + 0.2) == normalise(decimal.Decimal("0.3"))
    # a parallel float sum that lands just below a whole number equals it
    assert normalise(3284.9999999999995) == normalise(3285.0) == normalise(decimal.Decimal("3285"))
    assert normalise(1.5) != normalise(1.6)
    assert normalise(True) != normalise(1)
    assert normalise(None) != normalise("None")


def test_timestamps_compare_in_utc():
    aware = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert normalise(aware) == normalise(dt.datetime(2026, 1, 1, 8, 0))


def test_row_and_column_order_do_not_matter_but_values_do():
    a = digest(["b", "A"], [(1, "x"), (2, "y")])
    b = digest(["a", "b"], [("y", 2.0), ("x", decimal.Decimal(1))])
    assert compare({"t": a}, {"t": b}) == []
    c = digest(["a", "b"], [("y", 2), ("x", 7)])
    (problem,) = compare({"t": a}, {"t": c})
    assert "only in the reference: [('x', '1')]" in problem and "('x', '7')" in problem


def test_a_missing_table_or_column_is_reported():
    a = digest(["a"], [(1,)])
    assert compare({"t": a}, {}) == ["t: only in the reference build"]
    assert "missing ['a']" in compare({"t": a}, {"t": digest(["b"], [(1,)])})[0]
