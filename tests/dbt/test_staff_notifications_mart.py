"""marts.fct_staff_notifications over a hand-written tideline_staff.notifications table and the
engagement marts' landing zone (tests/dbt/test_engagement_marts.py), every value worked out by hand.

Orders there (completed unless said): c1 o5 03-02 09:00, o1 03-05 10:00; c2 o2 03-09 09:00,
o3 03-10 09:01; c3 o6 03-04 (cancelled); c4 o4 03-04 09:00. With staff_conversion_days 14:

    n1  c1 made 03-04 12:00   first completed order after it: o1 03-05 10:00   converted
    n2  c3 made 03-01         only a cancelled order                          not converted
    n3  c2 made 03-09 10:00   o2 is before it; o3 03-10 09:01                  converted
    n4  c4 made 02-01         o4 31 days later, past 14                        not converted
    d1  a digest (rule digest): not a row of the mart
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from activation.staff.store import SCHEMA, ensure_schema
from tests.dbt.test_engagement_marts import AS_OF, write_landing_zone
from tests.helpers import Warehouse, build_warehouse

pytestmark = pytest.mark.slow  # a warehouse built by dbt


def write_notifications(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        ensure_schema(con)
        for nid, rule, kind, customer, staff, created in (
            ("n1", "lead_mql", "lead_mql", "c1", "s_a", datetime(2025, 3, 4, 12)),
            ("n2", "order_above", "order_above", "c3", None, datetime(2025, 3, 1)),
            ("n3", "lead_mql", "lead_mql", "c2", "s_b", datetime(2025, 3, 9, 10)),
            ("n4", "form_submitted", "form_submitted", "c4", "s_a", datetime(2025, 2, 1)),
            ("d1", "digest", "digest", None, "s_a", datetime(2025, 3, 5)),
        ):
            con.execute(
                f"""insert into {SCHEMA}.notifications (notification_id, rule, rule_kind, customer_id, event_key,
                        staff_id, recipient, route, fell_back, fallback_reason, destination, handle_kind, message,
                        via_digest, created_at, due_at, status, updated_at, sent_at)
                    values (?, ?, ?, ?, 'e', ?, coalesce('staff:' || ?, 'team'), 'owner', ? is null,
                            case when ? is null then 'no employee is linked to the customer' end,
                            'staff_team', 'webhook', 'm', false, ?, ?, 'sent', ?, ?)""",
                [nid, rule, kind, customer, staff, staff, staff, staff, created, created, created, created],
            )
    finally:
        con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    root = tmp_path_factory.mktemp("staff")
    write_landing_zone(root / "raw")
    write_notifications(root / "warehouse.duckdb")
    return build_warehouse(root / "raw", root / "warehouse.duckdb", AS_OF)


def test_conversion_within_the_window_after_each_notification(warehouse: Warehouse) -> None:
    rows = warehouse.query(
        "select notification_id, converted, converted_at, staff_id, fell_back, fallback_reason "
        "from marts.fct_staff_notifications order by 1"
    )
    assert rows == [
        ("n1", True, datetime(2025, 3, 5, 10), "s_a", False, None),
        ("n2", False, None, None, True, "no employee is linked to the customer"),
        ("n3", True, datetime(2025, 3, 10, 9, 1), "s_b", False, None),
        ("n4", False, None, "s_a", False, None),
    ]
