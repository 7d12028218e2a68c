"""`tideline send-test ACTIVATION --to LIST [--customers N] [--synthetic]`: an activation's message,
rendered with its real content for a few customers of its segment, sent to internal test accounts.

    tideline send-test win_back_dormant__email --to internal          # 3 real customers' versions
    tideline send-test win_back_dormant --to internal --synthetic      # made-up customers

ACTIVATION is a sync key (segment__destination) or a segment with one message activation, from
the dbt manifest (parsed first; `--manifest FILE` reads another). LIST names a `test_accounts:` list
of the activation config. Each account gets one message per sample customer and variant, with the
sample customer's fields and the account's own address, through the real destination; the ledger
marks them campaign `test:<campaign>`, left out of performance and experiments, and no customer's
frequency cap counts them (activation/testsend.py). Quiet hours do not hold a test send: a person
asked for it now. Printed: counts and ids, never the sample customers' personal data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from tideline.commands.run import activation_config_of, connect_warehouse, settings_from, sync_limits_of

if TYPE_CHECKING:
    from activation.config import ActivationConfig, SyncBinding


def add_parser(sub: argparse._SubParsersAction, home_help: str, warehouse_help: str) -> None:
    p = sub.add_parser(
        "send-test",
        help="send an activation's message, rendered for sample customers, to internal test accounts",
    )
    p.add_argument("activation", help="sync key (segment__destination) or segment of a message activation")
    p.add_argument("--to", required=True, help="a list of the activation config's test_accounts")
    p.add_argument("--customers", type=int, default=3, help="sample customers to render for (default 3)")
    p.add_argument("--synthetic", action="store_true", help="made-up sample customers instead of real ones")
    p.add_argument("--manifest", default=None, help="dbt manifest to read (default: parse the dbt project)")
    p.add_argument("--warehouse", default=None, help=warehouse_help)
    p.add_argument("--home", default=None, help=home_help)
    p.add_argument("--raw-dir", default=None, help="landing zone (default: $TIDELINE_RAW_DIR)")
    p.set_defaults(func=cmd_send_test)


def find_binding(bindings: list[SyncBinding], name: str) -> SyncBinding:
    """The message activation named `name` (a sync key, or a segment with one message activation);
    ValueError listing the candidates otherwise."""
    messages = [b for b in bindings if b.mode == "message" and b.channel is not None]
    exact = [b for b in bindings if b.sync_key == name]
    if exact:
        return exact[0]
    of_segment = [b for b in messages if b.segment == name]
    if len(of_segment) == 1:
        return of_segment[0]
    if of_segment:
        keys = ", ".join(b.sync_key for b in of_segment)
        raise ValueError(f"segment {name} has several message activations ({keys}): name one by its sync key")
    known = ", ".join(b.sync_key for b in messages) or "none"
    raise ValueError(f"no activation named {name} in the dbt manifest (message activations: {known})")


def accounts_list_known(config: ActivationConfig, name: str) -> bool:
    """Whether the activation config has the test_accounts list `name`; if not, says so on stderr."""
    if name in config.test_accounts:
        return True
    known = ", ".join(sorted(config.test_accounts)) or "none"
    print(
        f"tideline: no test_accounts list {name!r} in the activation config (lists: {known})", file=sys.stderr
    )
    return False


def _bindings(manifest: str | None) -> list[SyncBinding]:
    from activation.config import bindings_from_manifest
    from tideline.dbt_manifest import parse_dbt_project

    path = Path(manifest) if manifest else parse_dbt_project()
    if not path.exists():
        raise ValueError(f"dbt manifest {path} does not exist")
    return bindings_from_manifest(path)


def cmd_send_test(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.activate import activate
    from activation.testsend import send_activation_test

    settings = settings_from(args, env)
    config = activation_config_of(settings, env)
    if not accounts_list_known(config, args.to):
        return 2
    binding = find_binding(_bindings(args.manifest), args.activation)
    if not settings.warehouse.is_file():
        print(f"tideline: no warehouse at {settings.warehouse}: run `tideline run` first", file=sys.stderr)
        return 1
    # a test send is a person asking now: quiet hours do not hold it (caps and holdout are off too)
    test_config = replace(config, policies=replace(config.policies, quiet_hours_start=0, quiet_hours_end=0))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    limits = sync_limits_of(settings)
    con = connect_warehouse(settings)
    try:

        def run(test: SyncBinding, customers: str):  # noqa: ANN202 - SyncResult
            return activate(
                con, test, test_config, Path(settings.raw_dir), limits=limits, now=now, customers=customers
            ).result

        result = send_activation_test(
            con,
            binding,
            config.test_accounts[args.to],
            run,
            list_name=args.to,
            customers=args.customers,
            synthetic=args.synthetic,
            now=now,
        )
    finally:
        con.close()
    print(json.dumps({"activation": binding.sync_key, **result.as_dict()}, sort_keys=True))
    return 0
