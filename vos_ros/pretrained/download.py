"""Resumable HTTP(S) download with a progress bar.

A download goes to ``<file>.part``; an interrupted one is continued from where it stopped with
an HTTP ``Range`` request the next time (a server that ignores the range sends the whole file
again, which is written from the start). Every failure raises :class:`FetchError` with the URL
and what to do.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.request
from pathlib import Path

from vos_ros.engine.config import EngineError

CHUNK = 1 << 20
TIMEOUT_S = 60


class FetchError(EngineError):
    """A download or the verification of a downloaded or given checkpoint failed."""


def download(url: str, part: Path, quiet: bool = False) -> Path:
    """Download ``url`` into ``part`` (resuming what is already there) and return ``part``.

    :raises FetchError: unreachable host, HTTP error, or a transfer that ended early (the part
        file is kept, so running again resumes it).
    """
    from tqdm import tqdm

    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "vos-ros fetch-model"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the range starts at the end: nothing left to fetch
            return part
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(
            f"{url}: cannot connect ({reason}); check the network or the URL, "
            "or give a local file with --checkpoint"
        ) from None
    with response:
        if have and response.status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != have:
                raise FetchError(f"{url}: server resumed at byte {start}, expected {have}")
            mode = "ab"
        else:
            have, mode = 0, "wb"  # no resume support: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            part.open(mode) as out,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=part.name[:-5],
                disable=quiet,
            ) as bar,
        ):
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (http.client.IncompleteRead, OSError) as exc:
                    out.write(getattr(exc, "partial", b""))
                    break
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
    got = part.stat().st_size
    if total is not None and got != total:
        raise FetchError(
            f"{url}: transfer ended after {got} of {total} bytes; run the same command again "
            f"to resume ({part} is kept)"
        )
    return part


def _range_start(content_range: str) -> int | None:
    match = re.match(r"bytes (\d+)-", content_range)
    return int(match.group(1)) if match else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
