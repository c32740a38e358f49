"""Uploaded files: type from the content (magic bytes), never from the name; size-limited.

The file is written under a server-made name into the job's temporary folder; nothing the
client sends (name, headers) becomes part of a path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

# kind -> file name in the job folder (the suffix tells OpenCV / rosbags how to read it)
STORED_NAMES = {
    "mp4": "upload.mp4",
    "webm": "upload.webm",
    "mcap": "upload.mcap",
    "db3": "upload.db3",
}
SNIFF_BYTES = 16


class UploadError(ValueError):
    """An upload that is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 415) -> None:
        super().__init__(message)
        self.status = status


def sniff_kind(head: bytes) -> str:
    """The upload's type from its first bytes: ``mp4``, ``webm``, ``mcap`` or ``db3``.

    :raises UploadError: (415) for anything else.
    """
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mp4"  # ISO base media file: [size]["ftyp"][brand]
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"  # EBML header (Matroska / WebM)
    if head.startswith(b"\x89MCAP0\r\n"):
        return "mcap"  # a rosbag2 MCAP file
    if head.startswith(b"SQLite format 3\x00"):
        return "db3"  # a rosbag2 sqlite3 file
    return _refuse(head)


def _refuse(head: bytes) -> str:
    what = "an empty file" if not head else f"a file starting with {head[:8].hex(' ')}"
    raise UploadError(
        f"unsupported upload ({what}): send an MP4 or WebM video, or a rosbag2 bag file "
        "(.mcap or .db3)"
    )


async def store_upload(chunks: AsyncIterator[bytes], folder: Path, limit: int) -> Path:
    """Stream an upload into ``folder`` (at most ``limit`` bytes), typed by its first bytes.

    :raises UploadError: 413 over the limit, 415 for an unknown type; nothing is left behind.
    """
    head = b""
    path: Path | None = None
    size = 0
    out = None
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise UploadError(
                    f"upload is larger than the limit of {limit / 1024 / 1024:.0f} MB", 413
                )
            if out is None:
                head += chunk
                if len(head) < SNIFF_BYTES:
                    continue
                path = folder / STORED_NAMES[sniff_kind(head)]
                out = open(path, "wb")  # noqa: SIM115 - closed in finally
                out.write(head)
            else:
                out.write(chunk)
        if out is None:  # shorter than the sniffed prefix
            path = folder / STORED_NAMES[sniff_kind(head)]
            path.write_bytes(head)
    except BaseException:
        if out is not None:
            out.close()
            out = None
        if path is not None:
            path.unlink(missing_ok=True)
        raise
    finally:
        if out is not None:
            out.close()
    return path
