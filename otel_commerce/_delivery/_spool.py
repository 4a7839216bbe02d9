"""The spool: events that cannot be delivered now, on local disk, replayed later (DESIGN.md "Spool").

Generic delivery infrastructure: it stores opaque JSON-able records and knows no catalog.

Files (all in one directory, 0700; files 0600 — events may carry PII)::

    <key>-<pid>-<start_ns>-<rand>.lock              the owner's lock (one per spool = per engine and process)
    <key>-<pid>-<start_ns>-<rand>.<n>.wal           write-ahead segments (mode ``wal``)
    <key>-<pid>-<start_ns>-<rand>.<n>.spill         spilled events (modes ``spill`` and ``wal``)

``<key>`` is the first 16 hex digits of the spool key's digest (service name + sink configuration); the
full key is in each file's header record and a replay only goes to a matching sink.

Record frame (little endian): ``version: u8, kind: u8, length: u32, crc32(kind + payload): u32`` then
``payload`` (orjson). Kinds: header (the key), wal (an event, acknowledged later), spill (an event and the
sinks still owed), ack (wal record numbers settled by every sink). A torn or corrupt tail (crash mid-write,
bad checksum, unknown kind) ends the read of that file and is counted — never a crash. A reader accepts every
version up to its own (later versions read earlier files).

Format versions (of a file = of its first record, the header):

- 1: records appended with ``write()``; the file ends with the last record.
- 2: the same records; a ``.wal`` segment is preallocated (``posix_fallocate``, :data:`_SEGMENT_BYTES`) and
  written through a shared file mapping (``mmap``: a ``memcpy`` on the caller's thread, no system call, the
  GIL never released — the data is in the page cache, so it survives ``kill -9`` / ``os._exit`` like a
  ``write()``). Its written records are followed by zero bytes: a zero version byte is the end of the data,
  not corruption; a non-zero byte after it is a torn tail (counted). A closed or rotated segment is truncated
  to its records. With fsync policy ``always`` the segment is preallocated the same way but written with
  ``pwrite`` (each record is fsynced: the system call costs nothing next to it).

Ownership: each spool holds ``fcntl.flock(LOCK_EX)`` on its own lockfile, opened ``O_CLOEXEC``; a file
whose lock can be taken belongs to a dead process. Adoption takes that lock (non-blocking: exactly one live
process wins), renames the dead owner's data files into its own name (atomic), then removes the dead
lockfile. After ``fork()`` the child *closes* (never unlocks: ``flock`` locks belong to the shared open file
description, an unlock would release the parent's lock) every inherited spool descriptor and opens its own
files on first use — so a dead parent's files are adoptable while its forked children live.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import mmap
import os
import secrets
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

__all__ = [
    "FSYNC_POLICIES",
    "MODES",
    "ReadResult",
    "Spool",
    "SpoolFile",
    "SpoolKey",
    "default_dir",
    "make_spool",
    "service_name",
    "filesystem_warning",
    "read_file",
    "scan",
]

logger = logging.getLogger("otel_commerce")

SpoolMode = Literal["off", "spill", "wal"]
FsyncPolicy = Literal["none", "grouped", "always"]
MODES: tuple[SpoolMode, ...] = ("off", "spill", "wal")
FSYNC_POLICIES: tuple[FsyncPolicy, ...] = ("none", "grouped", "always")

FORMAT_VERSION = 2  # see the module docstring; version 1 files are still read
_FRAME = struct.Struct("<BBII")
KIND_HEADER, KIND_WAL, KIND_SPILL, KIND_ACK = 1, 2, 3, 4
_CRC_WAL = zlib.crc32(bytes((KIND_WAL,)))
_PAGE = mmap.PAGESIZE
_KINDS = frozenset({KIND_HEADER, KIND_WAL, KIND_SPILL, KIND_ACK})
_MAX_RECORD = 64 * 1024 * 1024
_SEGMENT_BYTES = 16 * 1024 * 1024
_VOLATILE_FS = frozenset({"tmpfs", "ramfs", "overlay", "overlayfs", "aufs"})


def default_dir() -> Path:
    """``OTEL_COMMERCE_SPOOL_DIR``, else the per-user state directory (``platformdirs``) + ``/spool``."""
    env = os.environ.get("OTEL_COMMERCE_SPOOL_DIR", "").strip()
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_state_dir("otel-commerce")) / "spool"


def service_name(env: dict[str, str] | None = None) -> str:
    """``OTEL_SERVICE_NAME``, else ``service.name`` of ``OTEL_RESOURCE_ATTRIBUTES``, else ``unknown_service``."""
    env = dict(os.environ) if env is None else env
    name = env.get("OTEL_SERVICE_NAME", "").strip()
    if name:
        return name
    for part in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "service.name" and value.strip():
            return value.strip()
    return "unknown_service"


def make_spool(
    mode: str,
    directory: str,
    sinks: Sequence[str],
    *,
    fsync: str = "none",
    fsync_interval_seconds: float = 0.1,
    encode: Callable[[Any], bytes] = orjson.dumps,
    decode: Callable[[Any], Any] = lambda obj: obj,
) -> Spool | None:
    """The engine's spool for settings ``mode`` (``""`` = spill when ``directory`` is writable) or None.

    ``sinks``: each sink's configuration (e.g. ``jetstream:nats://a:4222/COMMERCE``), part of the key.
    ``encode`` / ``decode``: the item codec (the engine's items are opaque to it: the composition root
    hands it the event record's codec).
    An explicit ``spill`` / ``wal`` whose directory cannot be created raises ``OSError``.
    """
    if mode == "off":
        return None
    path = Path(directory) if directory else default_dir()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"{path} is not writable")
    except OSError as exc:
        if mode:
            raise
        logger.warning("otel-commerce: spool directory %s is not writable (%s): the spool is off", path, exc)
        return None
    key = SpoolKey(service_name(), tuple(sinks))
    return Spool(
        path,
        key,
        mode="wal" if mode == "wal" else "spill",
        fsync=fsync,  # type: ignore[arg-type]  # validated by Settings / Spool
        fsync_interval_seconds=fsync_interval_seconds,
        encode=encode,
        decode=decode,
    )


def filesystem_warning(directory: Path) -> str | None:
    """A warning when ``directory`` is on tmpfs / an overlay (lost with the container or at reboot)."""
    try:
        real = os.path.realpath(directory)
        best, fstype = "", ""
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, fstype = mnt, parts[2]
    except OSError:
        return None
    if fstype in _VOLATILE_FS:
        return (
            f"spool directory {directory} is on {fstype} ({best}): spooled events do not survive a reboot or a "
            "rescheduled container; mount a volume there or set OTEL_COMMERCE_SPOOL_DIR"
        )
    return None


@dataclass(frozen=True)
class SpoolKey:
    """Which sink a spool file belongs to: the service name and each sink's configuration."""

    service: str
    sinks: tuple[str, ...]

    @property
    def digest(self) -> str:
        raw = orjson.dumps([self.service, sorted(self.sinks)])
        return hashlib.sha256(raw).hexdigest()[:16]

    def to_obj(self) -> dict[str, Any]:
        return {"service": self.service, "sinks": list(self.sinks), "digest": self.digest}


def frame(kind: int, payload: bytes) -> bytes:
    """One record: header + payload (see module docstring)."""
    crc = zlib.crc32(payload, zlib.crc32(bytes((kind,))))
    return _FRAME.pack(FORMAT_VERSION, kind, len(payload), crc) + payload


@dataclass
class ReadResult:
    """A spool file read back: its header, the records still owed, and what could not be read."""

    header: dict[str, Any] | None = None
    records: list[Any] = field(default_factory=list)  # [payload, sinks | None] in file order
    corrupt: int = 0  # records skipped (torn / corrupt tail): at least 1 when any byte was unreadable
    corrupt_bytes: int = 0
    acked: int = 0
    version: int = 0  # the file's format version (its first record's); 0 when none could be read
    end: int = 0  # bytes of readable records (a version 2 segment's zero padding excluded)


def read_file(path: Path | str) -> ReadResult:
    """Read one spool file (never raises for bad content; OSError when it cannot be opened)."""
    with open(path, "rb") as f:
        data = f.read()
    out = ReadResult()
    wal: dict[int, Any] = {}
    order: list[tuple[int, Any]] = []  # (wal number or -1, record)
    acked: set[int] = set()
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] == 0 and out.version != 1:
            break  # version 2: the end of the written records (the rest is preallocated zeros)
        if n - pos < _FRAME.size:
            break
        version, kind, length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if version < 1 or version > FORMAT_VERSION or kind not in _KINDS or length > _MAX_RECORD or end > n:
            break
        payload = data[pos + _FRAME.size : end]
        if zlib.crc32(payload, zlib.crc32(bytes((kind,)))) != crc:
            break
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            break
        if not out.version:
            out.version = version
        if kind == KIND_HEADER:
            out.header = obj
        elif kind == KIND_WAL:
            wal[int(obj[0])] = obj[1]
            order.append((int(obj[0]), None))
        elif kind == KIND_SPILL:
            order.append((-1, obj))
        else:
            acked.update(int(i) for i in obj)
        pos = end
    out.end = pos
    # after the last record: version 1 ends there; version 2 may have zero padding (not corruption)
    bad = n - pos if out.version == 1 else len(data[pos:].rstrip(b"\0"))
    if bad:
        out.corrupt_bytes = bad
        out.corrupt = 1
        logger.warning("otel-commerce: spool file %s: %d unreadable byte(s) at its end skipped", path, bad)
    for number, rec in order:
        if number < 0:
            out.records.append(rec)
        elif number not in acked:
            out.records.append([wal[number], None])
    out.acked = len(acked)
    return out


@dataclass
class SpoolFile:
    """One data file found by :func:`scan` (for ``otel-commerce spool stats|drop``)."""

    path: Path
    key: dict[str, Any] | None
    events: int
    bytes: int
    mtime: float
    alive: bool  # its owner (a live process) holds the lock
    corrupt: int


def _stem_of(name: str) -> str:
    return name.split(".", 1)[0]


def _lock_held(lock_path: Path) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases our probe lock (never an unlock of someone else's)
    return False


def scan(directory: Path) -> list[SpoolFile]:
    """Every data file in ``directory`` with its key, event count, size and whether its owner lives."""
    out: list[SpoolFile] = []
    if not directory.is_dir():
        return out
    alive: dict[str, bool] = {}
    for path in sorted(directory.iterdir()):
        if not path.name.endswith((".wal", ".spill")):
            continue
        stem = _stem_of(path.name)
        if stem not in alive:
            alive[stem] = _lock_held(directory / f"{stem}.lock")
        try:
            st = path.stat()
            res = read_file(path)
        except OSError:
            continue
        size = res.end + res.corrupt_bytes  # a live segment's preallocated zeros are not counted
        out.append(SpoolFile(path, res.header, len(res.records), size, st.st_mtime, alive[stem], res.corrupt))
    return out


class _Segment:
    __slots__ = ("capacity", "fd", "mm", "path", "rotated", "size", "unacked")

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        self.size = 0  # bytes of records written
        self.unacked = 0
        self.rotated = False
        self.mm: mmap.mmap | None = None  # a wal segment's shared mapping (until rotated / closed)
        self.capacity = 0  # a wal segment's preallocated length (until rotated / closed)

    def put(self, data: bytes) -> None:
        """Append ``data`` at ``size``: into the mapping while it fits, else with ``pwrite`` (never both at once)."""
        end = self.size + len(data)
        if self.mm is not None and end <= self.capacity:
            self.mm[self.size : end] = data
        else:
            os.pwrite(self.fd, data, self.size)
        self.size = end

    def unmap(self, truncate: bool) -> None:
        """Close the mapping; ``truncate``: cut the preallocated zeros off the file (a compact file)."""
        mm, self.mm = self.mm, None
        if mm is not None:
            mm.close()
        if truncate and self.capacity:
            self.capacity = 0
            os.ftruncate(self.fd, self.size)


def _preallocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes of disk: a full disk fails here (OSError), never as SIGBUS in a later ``memcpy``."""
    try:
        os.posix_fallocate(fd, 0, size)
    except AttributeError:  # pragma: no cover - no posix_fallocate (macOS): a sparse file
        os.ftruncate(fd, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        os.ftruncate(fd, size)  # pragma: no cover - a filesystem without fallocate: a sparse file


_SPOOLS: weakref.WeakSet[Spool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for spool in list(_SPOOLS):
        spool._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Spool:
    """One engine's spool in one process (see module docstring). Thread-safe.

    ``append_wal`` runs on the caller's thread (a ``memcpy`` into a mapped segment; policy ``always``: a
    ``pwrite`` and an ``fsync``);
    everything else on the delivery thread. Raises nothing into callers except ``OSError`` from
    ``open_lock`` (the engine turns any failure into a counted, warned drop).
    """

    def __init__(
        self,
        directory: Path | str,
        key: SpoolKey,
        *,
        mode: SpoolMode = "spill",
        fsync: FsyncPolicy = "none",
        fsync_interval_seconds: float = 0.1,
        segment_bytes: int = _SEGMENT_BYTES,
        encode: Callable[[Any], bytes] = orjson.dumps,
        decode: Callable[[Any], Any] = lambda obj: obj,
    ) -> None:
        if mode not in ("spill", "wal"):
            raise ValueError(f"spool mode must be 'spill' or 'wal', got {mode!r}")
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, got {fsync!r}")
        self.directory = Path(directory)
        self.key = key
        #: item -> bytes, and decoded JSON -> item (the engine treats items as opaque)
        self.encode = encode
        self.decode = decode
        self.mode = mode
        self.fsync = fsync
        self._fsync_interval = fsync_interval_seconds
        self._segment_bytes = segment_bytes
        self._header = frame(KIND_HEADER, orjson.dumps({"key": key.to_obj(), "created": time.time()}))
        self.stats: dict[str, int] = {"spooled": 0, "wal": 0, "replayed": 0, "corrupt": 0, "adopted_files": 0}
        self._init_state()
        _SPOOLS.add(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._stem = ""
        self._lock_fd = -1
        self._counter = 0
        self._wal: _Segment | None = None
        self._wal_number = 0
        self._segments: list[_Segment] = []
        self._spill: _Segment | None = None
        self._spill_full: list[_Segment] = []  # rotated spill files, not yet handed to a replay
        self._dirty: set[_Segment] = set()  # written since the last grouped fsync
        self._syncer: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._warned = False

    # ------------------------------------------------------------------ files
    def _ensure_open(self) -> None:
        """Create the directory (0700) and our lockfile, and take its lock. Called with ``_lock`` held."""
        if self._lock_fd >= 0:
            return
        d = self.directory
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if d.stat().st_uid == os.getuid() and (d.stat().st_mode & 0o077):
                os.chmod(d, 0o700)
        stem = f"{self.key.digest}-{os.getpid()}-{time.time_ns()}-{secrets.token_hex(4)}"
        fd = os.open(d / f"{stem}.lock", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._stem, self._lock_fd = stem, fd
        warning = filesystem_warning(d)
        if warning:
            logger.warning("otel-commerce: %s", warning)

    def _new_file(self, suffix: str) -> _Segment:
        self._counter += 1
        path = self.directory / f"{self._stem}.{self._counter:06d}.{suffix}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        seg = _Segment(fd, path)
        os.write(fd, self._header)
        seg.size = len(self._header)
        return seg

    def _new_wal(self, need: int) -> _Segment:
        """A preallocated, mapped wal segment (format 2) with room for the header and ``need`` bytes."""
        self._counter += 1
        path = self.directory / f"{self._stem}.{self._counter:06d}.wal"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        seg = _Segment(fd, path)
        try:
            capacity = -(-max(self._segment_bytes, len(self._header) + need) // _PAGE) * _PAGE
            _preallocate(fd, capacity)
            if self.fsync != "always":  # always: pwrite + fsync (see append_wal)
                seg.mm = mmap.mmap(fd, capacity)  # MAP_SHARED, read + write
            seg.capacity = capacity
            seg.put(self._header)
        except BaseException:
            seg.mm = None
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return seg

    def _write(self, seg: _Segment, data: bytes) -> None:
        if seg.mm is not None or seg.path.suffix == ".wal":
            seg.put(data)
        else:
            os.write(seg.fd, data)
            seg.size += len(data)
        if self.fsync == "always":
            self._sync_now(seg)
        elif self.fsync == "grouped":
            self._mark_dirty(seg)

    def _sync_now(self, seg: _Segment) -> None:
        """Policy ``always``: ``fsync`` now (its segments are written with ``pwrite``, never mapped)."""
        os.fsync(seg.fd)

    def _mark_dirty(self, seg: _Segment) -> None:
        self._dirty.add(seg)
        if self._syncer is None:
            self._start_syncer()

    def _start_syncer(self) -> None:
        stop = self._stop
        self._syncer = threading.Thread(target=self._sync_loop, args=(stop,), name="otel-commerce-spool-fsync")
        self._syncer.daemon = True
        self._syncer.start()

    def _sync_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self._fsync_interval):
            self.sync()

    def sync(self) -> None:
        """fsync every file written since the last sync (the ``grouped`` policy's thread calls this).

        A duplicate descriptor per file, taken under the lock, is synced outside it (appends never wait for
        a disk) and cannot be a reused descriptor number if the segment is closed meanwhile. For a mapped
        segment ``fsync`` writes the pages dirtied through the mapping too (Linux: ``msync(MS_SYNC)`` is an
        ``fsync`` of the range; the page cache is the same).
        """
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            fds = []
            for seg in dirty:
                with contextlib.suppress(OSError):
                    if seg.fd >= 0:
                        fds.append(os.dup(seg.fd))
        for fd in fds:
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)

    # ------------------------------------------------------------------ wal (caller's thread)
    def append_wal(self, payload: bytes) -> tuple[_Segment, int]:
        """Append one event (``payload``: orjson bytes) before ``record_event`` returns; ack it later.

        One record (frame + ``[number, payload]``) copied into the segment's shared mapping: no system call
        and the GIL kept, except when a segment is full (a new preallocated file every ``_SEGMENT_BYTES``).
        Policy ``always``: ``pwrite`` + ``fsync`` instead (milliseconds; a write fault into a mapped page
        being written back would wait for the journal with the GIL held, stalling every thread).
        """
        with self._lock:
            number = self._wal_number + 1
            body = b"[%d,%b]" % (number, payload)
            length = len(body)
            seg = self._wal
            if seg is None or seg.size + _FRAME.size + length > seg.capacity:
                seg = self._rotate_wal(_FRAME.size + length)
            pos = seg.size
            crc = zlib.crc32(body, _CRC_WAL)
            mm = seg.mm
            if mm is not None:
                end = pos + _FRAME.size + length
                _FRAME.pack_into(mm, pos, FORMAT_VERSION, KIND_WAL, length, crc)
                mm[pos + _FRAME.size : end] = body
                seg.size = end
            else:  # policy always: one pwrite (the fsync below releases the GIL anyway)
                seg.put(_FRAME.pack(FORMAT_VERSION, KIND_WAL, length, crc) + body)
            self._wal_number = number
            seg.unacked += 1
            self.stats["wal"] += 1
            if self.fsync == "always":
                self._sync_now(seg)
            elif self.fsync == "grouped":
                self._mark_dirty(seg)
        return seg, number

    def _rotate_wal(self, need: int) -> _Segment:
        """Start a new segment (the full one is unmapped and truncated; acks reach it by ``pwrite``)."""
        self._ensure_open()
        old = self._wal
        seg = self._new_wal(need)
        if old is not None:
            old.rotated = True
            with contextlib.suppress(OSError):
                old.unmap(truncate=True)
        self._wal = seg
        self._segments.append(seg)
        return seg

    def ack(self, refs: Iterable[tuple[Any, int]]) -> None:
        """Mark wal records settled by every sink (one write per segment); drop finished segments."""
        by_seg: dict[int, tuple[_Segment, list[int]]] = {}
        for seg, number in refs:
            by_seg.setdefault(id(seg), (seg, []))[1].append(number)
        with self._lock:
            for seg, numbers in by_seg.values():
                seg.unacked -= len(numbers)
                if seg.fd < 0:
                    continue
                if seg.unacked <= 0 and seg.rotated:
                    self._remove(seg)
                    continue
                with contextlib.suppress(OSError):
                    self._write(seg, frame(KIND_ACK, orjson.dumps(numbers)))

    def _remove(self, seg: _Segment) -> None:
        self._dirty.discard(seg)
        seg.unmap(truncate=False)
        with contextlib.suppress(OSError):
            os.close(seg.fd)
        seg.fd = -1
        with contextlib.suppress(OSError):
            seg.path.unlink()
        with contextlib.suppress(ValueError):
            self._segments.remove(seg)

    # ------------------------------------------------------------------ spill (delivery thread)
    def spill(self, payloads: Sequence[bytes], sinks: Sequence[str] | None) -> None:
        """Write events (orjson bytes each) owed to ``sinks`` (None: all) in one write."""
        if not payloads:
            return
        tail = b"," + (orjson.dumps(list(sinks)) if sinks is not None else b"null") + b"]"
        data = b"".join(frame(KIND_SPILL, b"[" + p + tail) for p in payloads)
        with self._lock:
            self._ensure_open()
            seg = self._spill
            if seg is None or seg.size >= self._segment_bytes:
                if seg is not None:
                    self._spill_full.append(seg)
                seg = self._spill = self._new_file("spill")
            self._write(seg, data)
            seg.unacked += len(payloads)
            self.stats["spooled"] += len(payloads)

    @property
    def spilled_pending(self) -> int:
        """Events in our current spill file (not yet handed to a replay)."""
        seg = self._spill
        return sum(s.unacked for s in self._spill_full) + (0 if seg is None else seg.unacked)

    def take_spilled(self) -> list[Path]:
        """Close our spill files and return them, oldest first, for replay (new spills go to a new file)."""
        with self._lock:
            segs = [*self._spill_full, *([self._spill] if self._spill is not None else [])]
            self._spill, self._spill_full = None, []
            for seg in segs:
                self._dirty.discard(seg)
                with contextlib.suppress(OSError):
                    os.fsync(seg.fd)
                    os.close(seg.fd)
                seg.fd = -1
            return [seg.path for seg in segs]

    # ------------------------------------------------------------------ adoption (delivery thread / CLI)
    def adopt(self) -> list[Path]:
        """Take over the files of dead owners with our key: lock, rename into our name, return them."""
        with self._lock:
            self._ensure_open()
        prefix = self.key.digest + "-"
        try:
            names = sorted(os.listdir(self.directory))
        except OSError:
            return []
        stems = {_stem_of(n) for n in names if n.startswith(prefix) and n.endswith((".wal", ".spill", ".lock"))}
        stems.discard(self._stem)
        adopted: list[Path] = []
        for stem in sorted(stems):
            lock_path = self.directory / f"{stem}.lock"
            fd = -1
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                pass  # an orphan (its lockfile is gone): renaming below is atomic, one adopter wins
            except OSError:
                continue
            try:
                if fd >= 0:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        continue  # its owner lives (or another process is adopting it)
                for name in names:
                    if _stem_of(name) != stem or not name.endswith((".wal", ".spill")):
                        continue
                    src = self.directory / name
                    try:
                        header = read_file(src).header if src.stat().st_size else None
                    except OSError:
                        continue
                    if header is not None and (header.get("key") or {}).get("digest") != self.key.digest:
                        continue  # a prefix collision of another key: never replay it here
                    with self._lock:
                        self._counter += 1
                        dst = self.directory / f"{self._stem}.{self._counter:06d}.{name.rsplit('.', 1)[1]}"
                    try:
                        os.rename(src, dst)
                    except OSError:
                        continue
                    adopted.append(dst)
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        lock_path.unlink()
            finally:
                if fd >= 0:
                    os.close(fd)
        if adopted:
            self.stats["adopted_files"] += len(adopted)
            logger.info("otel-commerce: adopted %d spool file(s) of dead processes", len(adopted))
        return adopted

    def read(self, path: Path) -> ReadResult:
        res = read_file(path)
        self.stats["corrupt"] += res.corrupt
        return res

    def finished(self, path: Path) -> None:
        """A replayed file whose every event was settled (delivered, rejected or spooled again)."""
        with contextlib.suppress(OSError):
            path.unlink()

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """At shutdown: sync and close our files; empty ones are removed; our lock is released."""
        self._stop.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            files = [*self._segments, *self._spill_full, *([self._spill] if self._spill is not None else [])]
            for seg in files:
                if seg.fd < 0:
                    continue
                with contextlib.suppress(OSError):
                    seg.unmap(truncate=True)  # the records stay; the preallocated zeros go
                with contextlib.suppress(OSError):
                    if self.fsync != "none" or seg.path.suffix == ".spill":
                        os.fsync(seg.fd)
                    os.close(seg.fd)
                seg.fd = -1
                if seg.unacked <= 0:
                    with contextlib.suppress(OSError):
                        seg.path.unlink()
            self._segments, self._spill, self._wal, self._spill_full = [], None, None, []
            if self._lock_fd >= 0:
                if not any(_stem_of(n) == self._stem and not n.endswith(".lock") for n in _listdir(self.directory)):
                    with contextlib.suppress(OSError):
                        (self.directory / f"{self._stem}.lock").unlink()
                os.close(self._lock_fd)  # releases the lock: a live process may adopt what is left
                self._lock_fd = -1

    def _forget_after_fork(self) -> None:
        """In a forked child: close (never unlock) the inherited descriptors and unmap the inherited
        mappings (the parent's segments: never written, truncated or synced here); our own files on first use.
        """
        for seg in self._segments:
            mm, seg.mm = seg.mm, None
            if mm is not None:
                with contextlib.suppress(OSError, ValueError):
                    mm.close()  # munmap in this process only
        fds = [self._lock_fd, *(s.fd for s in self._segments), *(s.fd for s in self._spill_full)]
        if self._spill is not None:
            fds.append(self._spill.fd)
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        stats = self.stats
        self._init_state()
        self.stats = dict.fromkeys(stats, 0)


def _listdir(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []
