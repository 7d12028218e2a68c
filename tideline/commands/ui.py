"""`tideline ui` (what `make ui` calls): the Dagster UI (webserver and daemon) on a warehouse's
instance, its runs, assets and schedules.

The UI's runs use the warehouse's last CLI raw dir and as-of date (its state folder's
last_run.json) unless TIDELINE_RAW_DIR / --raw-dir or TIDELINE_AS_OF say otherwise. With the
default activation config (no TIDELINE_ACTIVATION_CONFIG) the local destinations run while the UI
does, as for `tideline run`: their addresses go to the UI's environment, and its code location
reads the sandbox secrets from the state folder, so sends launched from the UI work.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path

from tideline.commands.run import prepare_dagster_home, settings_from
from tideline.dbt_manifest import generate_models, parse_dbt_project
from tideline.settings import REPO_ROOT


def cmd_ui(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from tideline.commands.demo import with_local_destinations

    settings = settings_from(args, env)
    if not args.raw_dir and not env.get("TIDELINE_RAW_DIR"):
        settings = settings.remembered()
    instance_dir = prepare_dagster_home(settings)
    generate_models()
    parse_dbt_project()
    local = args.local_destinations if args.local_destinations is not None else not settings.activation_config
    with (
        with_local_destinations(settings, env) if local else nullcontext((settings, {})) as (settings, values)
    ):
        child_env = {
            **env,
            **settings.environment(),
            **values,  # the local destinations' addresses: the UI's runs send to them
            "DAGSTER_HOME": str(instance_dir),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
        command = [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-m",
            "orchestration.definitions",
            "-h",
            args.host,
            "-p",
            str(args.port),
        ]
        print(
            f"Dagster UI on http://{args.host}:{args.port} for {settings.warehouse} "
            f"(runs in {instance_dir}; raw dir {settings.raw_dir})",
            flush=True,
        )
        try:
            return subprocess.call(command, env=child_env, cwd=REPO_ROOT)
        except KeyboardInterrupt:  # Ctrl-C stops `dagster dev` too (same process group)
            return 130
