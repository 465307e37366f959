"""Files as requests bring them, and what is accepted: checked before anything is stored.

A file's extension must be in the list of known types (narrowed by ``$DEPTFLOW_ATTACHMENT_TYPES``)
and its first bytes must look like that type (a PDF starts with ``%PDF-``, a text file is UTF-8
without markup). No database here: :mod:`engine.forms` checks a form's files with it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .db import data_dir

DEFAULT_MAX_MB = 10.0


def _starts(*prefixes: bytes) -> Callable[[bytes], bool]:
    return lambda data: data.startswith(prefixes)


def _text(data: bytes) -> bool:
    """UTF-8 text that is not markup: a browser shown it by mistake finds no HTML or SVG in it."""
    if b"\x00" in data:
        return False
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return not text.lstrip().startswith("<")


def _webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


_ZIP = _starts(b"PK\x03\x04")
_OPENXML = "application/vnd.openxmlformats-officedocument."
_OPENDOCUMENT = "application/vnd.oasis.opendocument."

#: extension → (the type it is served as, a check of its first bytes)
KNOWN_TYPES: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    "pdf": ("application/pdf", _starts(b"%PDF-")),
    "png": ("image/png", _starts(b"\x89PNG\r\n\x1a\n")),
    "jpg": ("image/jpeg", _starts(b"\xff\xd8\xff")),
    "jpeg": ("image/jpeg", _starts(b"\xff\xd8\xff")),
    "gif": ("image/gif", _starts(b"GIF87a", b"GIF89a")),
    "webp": ("image/webp", _webp),
    "dwg": ("image/vnd.dwg", _starts(b"AC10")),
    "dxf": ("image/vnd.dxf", _text),
    "txt": ("text/plain", _text),
    "csv": ("text/csv", _text),
    "docx": (_OPENXML + "wordprocessingml.document", _ZIP),
    "xlsx": (_OPENXML + "spreadsheetml.sheet", _ZIP),
    "odt": (_OPENDOCUMENT + "text", _ZIP),
    "ods": (_OPENDOCUMENT + "spreadsheet", _ZIP),
}


@dataclass(frozen=True)
class Settings:
    """Where files go and what is accepted, from the environment."""

    directory: Path
    max_bytes: int
    extensions: tuple[str, ...]

    @classmethod
    def from_environment(cls) -> Settings:
        directory = os.environ.get("DEPTFLOW_ATTACHMENTS_DIR")
        try:
            max_mb = float(os.environ.get("DEPTFLOW_ATTACHMENT_MAX_MB") or DEFAULT_MAX_MB)
        except ValueError:
            max_mb = DEFAULT_MAX_MB
        listed = os.environ.get("DEPTFLOW_ATTACHMENT_TYPES", "")
        wanted = [e.strip().lower().lstrip(".") for e in listed.split(",") if e.strip()]
        extensions = tuple(e for e in wanted if e in KNOWN_TYPES) if wanted else tuple(KNOWN_TYPES)
        return cls(directory=Path(directory).expanduser() if directory else data_dir() / "attachments",
                   max_bytes=int(max_mb * 1024 * 1024), extensions=extensions)

    def path(self, sha256: str) -> Path:
        return self.directory / sha256[:2] / sha256


@dataclass
class Upload:
    """A file as a request brought it; nothing is stored until an action accepts it."""

    filename: str
    data: bytes = field(repr=False)

    @property
    def extension(self) -> str:
        return self.filename.rsplit(".", 1)[-1].lower() if "." in self.filename else ""


def _megabytes(size: int) -> str:
    mb = size / (1024 * 1024)
    return f"{mb:g}" if mb >= 1 else f"{mb:.2g}"


def check(upload: Upload, *, accept: str | None = None, max_mb: float | None = None,
          settings: Settings | None = None) -> str:
    """The type ``upload`` is served as, if it may be stored; else ``ValueError`` with the field's message.

    :param accept: the form field's ``accept`` constraint: extensions (``.pdf,.dwg``) narrowing the configured ones
    :param max_mb: the form field's ``maxsize`` constraint, in MB (never above the configured limit)
    """
    settings = settings or Settings.from_environment()
    limit = settings.max_bytes if max_mb is None else min(settings.max_bytes, int(max_mb * 1024 * 1024))
    if len(upload.data) > limit:
        raise ValueError(f"The file is larger than the limit of {_megabytes(limit)} MB.")
    if not upload.data:
        raise ValueError("The file is empty.")
    allowed = list(settings.extensions)
    if accept:
        narrowed = {e.strip().lower().lstrip(".") for e in accept.split(",")}
        allowed = [e for e in allowed if e in narrowed]
    if upload.extension not in allowed:
        raise ValueError(f"Files of this type are not accepted; upload {', '.join('.' + e for e in allowed)}.")
    content_type, looks_right = KNOWN_TYPES[upload.extension]
    if not looks_right(upload.data[:65536] if upload.extension not in ("txt", "csv", "dxf") else upload.data):
        raise ValueError(f"The file's content is not that of a .{upload.extension} file.")
    return content_type


_UNSAFE = re.compile(r"[\x00-\x1f\x7f\"\\/]")


def clean_name(filename: str) -> str:
    """The original name without directories, control characters or quotes; at most 255 characters."""
    name = _UNSAFE.sub("_", re.split(r"[\\/]", filename or "")[-1]).strip() or "file"
    if len(name) > 255:
        stem, _, extension = name.rpartition(".")
        name = stem[:250 - len(extension)] + "." + extension if stem else name[:255]
    return name


@dataclass(frozen=True)
class CheckedUpload:
    """A form's file that passed :func:`check`: stored when the action goes through."""

    upload: Upload
    content_type: str
