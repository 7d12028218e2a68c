"""Audiences as files: one YAML file per audience in the condition language, generated into dbt models.

    build_all(project_dir) -> list[Path]          # write models/marts/audiences/ (checked in)
    preview(con, audience_file, ...) -> dict      # size, reachable per channel, overlap, sample ids
    format_preview(result) -> str

files.py loads and checks the files, generate.py writes the models (and the membership history
model), preview.py answers "who is in it" against a live warehouse. Entry point:
`tideline audience build|preview` (tideline/commands/audience.py). Documented in docs/audiences.md.
"""

from .files import AudienceFile, load_audience, load_audiences
from .generate import build_all, refresh, render_all, stale_files
from .preview import format_preview, preview

__all__ = [
    "AudienceFile",
    "build_all",
    "format_preview",
    "load_audience",
    "load_audiences",
    "preview",
    "refresh",
    "render_all",
    "stale_files",
]
