"""Text encodings of landing files: UTF-8 by default, anything else declared or detected.

DuckDB reads CSV and JSON Lines as UTF-8 only: a Latin-1 export fails with "CSV Error on
Line: 2", and a JSON Lines file would stop the load. So before a text file is read the loader
asks this module which encoding it is in:

- a UTF-16 file with a byte-order mark is recognised by its BOM (a UTF-8 BOM is allowed and
  skipped by the reader);
- an encoding declared in a sidecar file ``_encoding.txt`` (its first line names a codec, e.g.
  ``cp1252``) applies to every file in its folder and the folders below; the nearest sidecar
  between the file and the raw dir wins;
- otherwise the file must be UTF-8, and the first invalid byte is reported with its line, what
  it probably is and the fix (save as UTF-8, or declare the encoding) instead of the reader's
  error.

A file in another encoding is transcoded, in bounded memory, into a temporary UTF-8 copy that
the loader reads instead; file and row numbers stay those of the original file.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

SIDECAR = "_encoding.txt"
CHUNK = 1 << 20  # bytes read at a time: checking and transcoding never hold a whole file
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# tried in this order to say what a file that is not UTF-8 probably is
GUESSES = ("cp1252", "latin-1")


class EncodingProblem(ValueError):
    """A text file cannot be decoded, or its declared encoding is unknown; the message says
    where and what to do. `sample` is the text around the bad byte as it probably reads: file
    content (possibly personal data), kept out of the message so the message can be logged."""

    def __init__(self, message: str, sample: str | None = None):
        super().__init__(message)
        self.sample = sample


@dataclass(frozen=True)
class Encoding:
    codec: str  # Python's codec name: 'utf-8', 'cp1252', 'utf-16', …
    origin: str  # 'default', 'byte-order mark' or the declaring sidecar's path below the raw dir

    @property
    def is_utf8(self) -> bool:
        return self.codec == "utf-8"

    def describe(self) -> str:
        return self.codec if self.origin == "default" else f"{self.codec} ({self.origin})"


def detect(raw_dir: Path, path: Path) -> Encoding:
    """How to read a CSV or JSON Lines file: UTF-16 by its BOM, else as declared by the nearest
    sidecar, else UTF-8 — checked, so a file that is not raises EncodingProblem."""
    with path.open("rb") as fh:
        head = fh.read(2)
    if head in UTF16_BOMS:
        return Encoding("utf-16", "byte-order mark")
    declaration = declared(raw_dir, path)
    if declaration is not None and not declaration.is_utf8:
        return declaration
    check_utf8(raw_dir, path)
    return declaration or Encoding("utf-8", "default")


def declared(raw_dir: Path, path: Path) -> Encoding | None:
    """The encoding named by the nearest ``_encoding.txt`` from the file's folder up to the raw
    dir, or None. A name Python does not know raises EncodingProblem naming the sidecar."""
    folder = path.parent
    while folder == raw_dir or raw_dir in folder.parents:
        sidecar = folder / SIDECAR
        if sidecar.is_file():
            return _read_sidecar(raw_dir, sidecar)
        folder = folder.parent
    return None


def _read_sidecar(raw_dir: Path, sidecar: Path) -> Encoding:
    rel = sidecar.relative_to(raw_dir).as_posix()
    text = sidecar.read_text(encoding="ascii", errors="replace")
    name = next((s.strip() for s in text.splitlines() if s.strip() and not s.startswith("#")), "")
    try:
        codec = codecs.lookup(name).name if name else None
    except LookupError:
        codec = None
    if codec is None:
        raise EncodingProblem(
            f'{rel} names no known encoding ("{name[:40]}"): write one encoding name on its first line, '
            "e.g. utf-8, cp1252 (Windows and Excel, Western Europe), latin-1 or utf-16"
        )
    return Encoding("utf-8" if codec in ("utf-8", "utf-8-sig") else codec, rel)


def check_utf8(raw_dir: Path, path: Path) -> None:
    """Raise EncodingProblem at the first byte that is not valid UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file handed to the decoder so far
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            pending = len(decoder.getstate()[0])  # an incomplete sequence kept from the last chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise _not_utf8(raw_dir, path, offset - pending + exc.start) from None
            if not chunk:
                return
            offset += len(chunk)


def _not_utf8(raw_dir: Path, path: Path, offset: int) -> EncodingProblem:
    """What is wrong at `offset` (the byte, its line, what it probably is) and how to fix it;
    the line as it reads in the likely encoding goes to the problem's sample."""
    line, byte, text = _locate(path, offset)
    guess = next((g for g in GUESSES if _reads_as(text, g)), None)
    hint = f"; it reads as {guess} (the line is in the reject's value)" if guess else ""
    folder = path.parent.relative_to(raw_dir).as_posix()
    sidecar = SIDECAR if folder == "." else f"{folder}/{SIDECAR}"
    return EncodingProblem(
        f"file is not UTF-8: byte 0x{byte:02X} on line {line} is not valid UTF-8{hint}. "
        f"Save the file as UTF-8, or declare its encoding in {sidecar} "
        f"(one line, e.g. {guess or 'cp1252'}; see the README, Bring your own data)",
        sample=text.decode(guess).strip() if guess else None,
    )


def _locate(path: Path, offset: int) -> tuple[int, int, bytes]:
    """The 1-based line of the byte at `offset`, the byte, and up to 60 bytes of its line around it."""
    line, read, tail = 1, 0, b""
    with path.open("rb") as fh:
        while read < offset:
            chunk = fh.read(min(CHUNK, offset - read))
            line += chunk.count(b"\n")
            read += len(chunk)
            tail = (tail + chunk)[-40:]
        rest = fh.read(40)
    before = tail.rsplit(b"\n", 1)[-1]
    return line, rest[0], before + rest.split(b"\n", 1)[0].rstrip(b"\r")


def _reads_as(data: bytes, codec: str) -> bool:
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch == "\t" for ch in text)


def transcode(path: Path, encoding: Encoding, target: Path) -> None:
    """Write `path`, decoded from `encoding`, into `target` as UTF-8, chunk by chunk. A byte the
    encoding cannot decode raises EncodingProblem with its line."""
    decoder = codecs.getincrementaldecoder(encoding.codec)()
    offset = 0
    with path.open("rb") as src, target.open("w", encoding="utf-8", newline="") as dst:
        while True:
            chunk = src.read(CHUNK)
            pending = len(decoder.getstate()[0])
            try:
                dst.write(decoder.decode(chunk, final=not chunk))
            except UnicodeDecodeError as exc:
                line, byte, _ = _locate(path, offset - pending + exc.start)
                raise EncodingProblem(
                    f"file is not valid {encoding.describe()}: byte 0x{byte:02X} on line {line} cannot be "
                    "decoded; correct the declared encoding or save the file as UTF-8"
                ) from None
            if not chunk:
                return
            offset += len(chunk)
