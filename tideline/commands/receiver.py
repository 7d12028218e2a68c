"""`tideline receiver`: the engagement receiver (clicks, opens, unsubscribes, provider webhooks)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from tideline.settings import Settings


def cmd_receiver(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation import tokens
    from activation.receiver import WEBHOOK_SECRET_ENV, serve

    landing = Path(args.landing_dir).resolve() if args.landing_dir else Settings.from_env(env).raw_dir
    print(f"engagement receiver on http://{args.host}:{args.port}, writing under {landing}", flush=True)
    tracking = env.get(tokens.TRACKING_SECRET_ENV)
    serve(
        landing,
        host=args.host,
        port=args.port,
        tracking_secret=tracking.encode() if tracking is not None else b"",
        webhook_secret=env.get(WEBHOOK_SECRET_ENV) or "",
    )
    return 0
