"""The spool: events that cannot be delivered now, on local disk, replayed later (DESIGN.md "Spool").

Generic delivery infrastructure: it stores opaque JSON-able records and knows no catalog.

Files (all in one directory, 0700; files 0600 — events may carry PII)::

    <key>-<pid>-<start_ns>-<rand>.lock              the owner's lock (one per spool = per engine and process)
    <key>-<pid>-<start_ns>-<rand>.<n>.wal           write-ahead segments (mode ``wal``)
    <key>-<pid>-<start_ns>-<rand>.<n>.spill         spilled events (modes ``spill`` and ``wal``)
    <key>-<pid>-<start_ns>-<rand>.<n>.next          the next wal segment, made ahead (no record yet)

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
  not corruption; a non-zero byte after it is a torn tail (counted). A closed segment is truncated to its
  records. With fsync policy ``always`` the segment is preallocated the same way but written with
  ``pwrite`` (each record is fsynced: the system call costs nothing next to it).
- 3: the layout of 2; a wal record's payload is the item alone (no ``[number, item]`` wrapper: no copy on
  the caller's thread) and its number — what ack records list — is its ordinal among the file's wal records
  (a reader stops at the first unreadable record, so the ordinals it counts are the writer's).

``wal`` mode's helper thread (one per spool, a daemon, re-created in a forked child on first use) keeps
system calls and page faults off the caller's thread: it makes the next segment ahead (``<stem>.<n>.next``:
no record, not a data file; renamed to the next ``.wal`` when taken — one ``rename`` on the caller's thread
per segment — and removed at close or by whoever adopts a dead owner's files), populates the live segment's
pages ahead of the appends (``MADV_POPULATE_WRITE``, Linux >= 5.14; without it the appends fault their
pages as before) and unmaps full segments.

Ownership: each spool holds ``fcntl.flock(LOCK_EX)`` on its own lockfile, opened ``O_CLOEXEC`` (locked under a
``.locking`` name, then renamed: a lockfile is never visible unlocked); a file whose lock can be taken belongs
to a dead process. Adoption takes that lock (non-blocking: exactly one live
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
import itertools
import logging
import mmap
import os
import secrets
import struct
import sys
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
    "lock_held",
    "read_file",
    "scan",
    "spare_holds_records",
]

logger = logging.getLogger("otel_commerce")

SpoolMode = Literal["off", "spill", "wal"]
FsyncPolicy = Literal["none", "grouped", "always"]
MODES: tuple[SpoolMode, ...] = ("off", "spill", "wal")
FSYNC_POLICIES: tuple[FsyncPolicy, ...] = ("none", "grouped", "always")

FORMAT_VERSION = 3  # see the module docstring; version 1 and 2 files are still read
_FRAME = struct.Struct("<BBII")
_FRAME_SIZE = _FRAME.size
KIND_HEADER, KIND_WAL, KIND_SPILL, KIND_ACK = 1, 2, 3, 4
_CRC_WAL = zlib.crc32(bytes((KIND_WAL,)))
_pack = _FRAME.pack
_crc32 = zlib.crc32
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
    ordinal = 0  # format 3: a wal record's number is its ordinal in the file
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] == 0 and out.version != 1:
            break  # versions 2 and 3: the end of the written records (the rest is preallocated zeros)
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
            if version >= 3:
                ordinal += 1
                wal[ordinal] = obj
                order.append((ordinal, None))
            else:  # formats 1 and 2: [number, payload]
                wal[int(obj[0])] = obj[1]
                order.append((int(obj[0]), None))
        elif kind == KIND_SPILL:
            order.append((-1, obj))
        else:
            acked.update(int(i) for i in obj)
        pos = end
    out.end = pos
    # after the last record: version 1 ends there; versions 2 and 3 may have zero padding (not corruption)
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


def spare_holds_records(path: Path | str) -> bool:
    """True when a ``.next`` spare segment holds records still owed (its rename to ``.wal`` lost in a crash).

    The usual spare holds its header and zeros: one small read says so (a spare is a preallocated 16 MiB
    file, read whole only when a record follows its header). OSError when it cannot be opened.
    """
    with open(path, "rb") as f:
        head = f.read(_FRAME.size)
        if len(head) < _FRAME.size:
            return False
        length = _FRAME.unpack(head)[2]
        f.seek(_FRAME.size + length)
        if f.read(1) in (b"", b"\0"):
            return False
    return bool(read_file(path).records)


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


def lock_held(lock_path: Path) -> bool:
    """Whether a process holds ``lock_path``'s ``flock`` (a missing file: False). Probed without waiting."""
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
            alive[stem] = lock_held(directory / f"{stem}.lock")
        try:
            st = path.stat()
            res = read_file(path)
        except OSError:
            continue
        size = res.end + res.corrupt_bytes  # a live segment's preallocated zeros are not counted
        out.append(SpoolFile(path, res.header, len(res.records), size, st.st_mtime, alive[stem], res.corrupt))
    return out


_NEVER = 1 << 62  # a position no append reaches
_IDENTS = itertools.count(1)  # segment identities, never reused in a process (nor in its forked children)
_REF_BITS = 32  # a wal reference: segment identity << 32 | record number
_REF_MASK = (1 << _REF_BITS) - 1


class _Segment:
    __slots__ = (
        "acked", "addr", "base", "capacity", "fd", "ident", "limit", "mark", "mm", "path", "prefaulted", "ref", "rotated",
        "size", "synced",
    )  # fmt: skip

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        self.size = 0  # bytes of records written
        self.acked = 0  # of them, settled (wal) or handed to a replay (spill)
        self.ident = next(_IDENTS)  # wal: the high bits of its records' references (see Spool.append_wal)
        self.base = self.ident << _REF_BITS
        # the last record's reference: ``base + written`` (format 3: a wal record's number is its ordinal)
        self.ref = self.base
        self.synced = 0  # ``size`` at the last grouped fsync
        self.rotated = False
        self.mm: mmap.mmap | None = None  # a wal segment's shared mapping (until rotated / closed)
        self.capacity = 0  # a wal segment's preallocated length (until closed)
        self.addr = 0  # the mapping's address (for madvise), 0 until the helper thread needs it
        self.prefaulted = 0  # bytes of the mapping populated for writing (by the helper thread)
        self.mark = _NEVER  # an append ending past it wakes the helper thread to populate more
        # an append ending at or below it takes the fast path (Spool.append_locked): min(mark, capacity) while
        # mapped, else -1 (set by set_mark / detach)
        self.limit = -1

    @property
    def written(self) -> int:
        """Events written (wal: records appended; spill: events in the file)."""
        return self.ref - self.base

    @written.setter
    def written(self, value: int) -> None:
        self.ref = self.base + value

    @property
    def unacked(self) -> int:
        return self.ref - self.base - self.acked

    def set_mark(self, mark: int) -> None:
        """The helper's wake-up position (``_NEVER``: none) and, with it, the appends' fast-path limit."""
        self.mark = mark
        self.limit = min(mark, self.capacity) if self.mm is not None else -1

    def detach(self) -> mmap.mmap | None:
        """Take the mapping off the segment (later writes use ``pwrite``); returns it, for ``_close_map``."""
        mm, self.mm = self.mm, None
        self.limit = -1
        return mm

    def put(self, data: bytes) -> None:
        """Append ``data`` at ``size``: into the mapping while it fits, else with ``pwrite`` (never both at once)."""
        end = self.size + len(data)
        if self.mm is not None and end <= self.capacity:
            self.mm[self.size : end] = data
        else:
            os.pwrite(self.fd, data, self.size)
        self.size = end

    def truncate(self) -> None:
        """Cut the preallocated zeros off the file (a compact file); the mapping must be detached."""
        if self.capacity:
            self.capacity = 0
            self.limit = -1
            os.ftruncate(self.fd, self.size)


_NO_TAIL = _Segment(-1, Path())  # Spool._tail when no segment is mapped: limit -1, every append takes the slow path


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


def _load_libc(name: str) -> Any:
    """libc's ``madvise`` / ``msync`` through ctypes (a foreign call releases the GIL; ``mmap.madvise`` and
    ``mmap.flush`` hold it while the kernel works, stalling every thread), or None (not Linux / no libc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = getattr(ctypes.CDLL(None, use_errno=True), name)
        fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        fn.restype = ctypes.c_int
    except (ImportError, OSError, AttributeError):  # pragma: no cover - no libc
        return None
    return fn


class _Prefault:
    """``MADV_POPULATE_WRITE`` (Linux >= 5.14): fault pages of a mapping in, writable, ahead of the appends.

    An append's first write to a page of a shared file mapping faults (page cache + the filesystem's
    ``page_mkwrite``: ~4 µs on ext4, ~0.4 µs per event): the helper thread takes those faults ahead of the
    write position instead of the caller's thread. It never changes the data. An older kernel answers
    ``EINVAL``: prefaulting is then off for the process (the appends fault their pages as before).
    ``msync`` of a range (:meth:`sync_range`) serves the ``grouped`` policy while pages are populated ahead.
    """

    MADV_POPULATE_WRITE = 23
    MS_SYNC = 4

    def __init__(self) -> None:
        self._fn: Any = None
        self._msync: Any = None
        self._loaded = False
        self.enabled = True

    def address(self, mm: mmap.mmap) -> int:
        import ctypes

        buf = ctypes.c_char.from_buffer(mm)  # an export of the mapping: released right below
        try:
            return ctypes.addressof(buf)
        finally:
            del buf

    def populate(self, addr: int, length: int) -> bool:
        """Populate ``length`` bytes at ``addr`` (page aligned) for writing; False when it cannot."""
        if not self._loaded:
            self._load()
        if not self.enabled:
            return False
        if self._fn(addr, length, self.MADV_POPULATE_WRITE) == 0:
            return True
        import ctypes

        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS):  # a kernel without MADV_POPULATE_WRITE: fall back for good
            self._msync = None  # (the grouped sync then fsyncs the whole file, as without prefaulting)
            self.enabled = False
            logger.debug("otel-commerce: MADV_POPULATE_WRITE unavailable (%s): wal pages fault on append", err)
        return False

    def _load(self) -> None:
        self._fn, self._msync, self._loaded = _load_libc("madvise"), _load_libc("msync"), True
        self.enabled = self.enabled and self._fn is not None  # (stays off when turned off before)

    def sync_range(self, addr: int, length: int) -> bool:
        """``msync(MS_SYNC)`` of ``length`` bytes at ``addr`` (Linux: an ``fdatasync`` of that range of the
        file); False when it cannot (the caller then fsyncs the file)."""
        if not self._loaded:
            self._load()
        return self.enabled and self._msync is not None and self._msync(addr, length, self.MS_SYNC) == 0


_PREFAULT = _Prefault()
_PREFAULT_WINDOW = 2 * 1024 * 1024  # populated ahead of the write position (about 8,000 events)
# one madvise call per wake (the map lock is held for it, the GIL is not): taking the GIL back after each call
# can wait for a busy thread's switch interval (5 ms), so few calls keep up better than many small ones
_PREFAULT_CHUNK = _PREFAULT_WINDOW

_SPOOLS: weakref.WeakSet[Spool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for spool in list(_SPOOLS):
        spool._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Spool:
    """One engine's spool in one process (see module docstring). Thread-safe.

    ``append_wal`` / ``append_item`` / ``append_locked`` run on the caller's thread (a ``memcpy`` into a mapped
    segment; policy ``always``: a ``pwrite`` and an ``fsync``) — the engine takes :meth:`shared_lock` as its
    own lock and appends with ``append_locked`` under it (one lock per event);
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
        #: counts; ``wal``: events appended to wal segments since rotated or closed (the live one's not yet)
        self.stats: dict[str, int] = {"spooled": 0, "wal": 0, "replayed": 0, "corrupt": 0, "adopted_files": 0}
        self._init_state()
        _SPOOLS.add(self)

    def _init_state(self) -> None:
        # re-entrant: an owner may hold it as its own lock (see shared_lock)
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._stem = ""
        self._lock_fd = -1
        self._counter = 0
        self._wal: _Segment | None = None
        self._tail = _NO_TAIL  # the live wal segment while it is mapped (append_locked's fast path), else _NO_TAIL
        self._segments: list[_Segment] = []
        self._live: dict[int, _Segment] = {}  # wal segments by identity (what references name)
        self._spill: _Segment | None = None
        self._spill_full: list[_Segment] = []  # rotated spill files, not yet handed to a replay
        self._dirty: set[_Segment] = set()  # written since the last grouped fsync (besides the live wal segment)
        self._syncer: threading.Thread | None = None
        self._stop = threading.Event()
        # wal mode's helper thread (see _help): the next segment made ahead, pages populated ahead of the
        # appends, full segments unmapped — never on the caller's thread
        self._helper: threading.Thread | None = None
        self._no_helper = False  # it could not be started
        self._wake = threading.Event()
        self._spare: _Segment | None = None  # the next wal segment, made ahead (named ``<stem>.<n>.next``)
        self._spares = 0
        self._retired: list[_Segment] = []  # rotated wal segments still mapped (the helper unmaps them)
        # held around a madvise of a mapping and around closing one: a mapping is never unmapped (and its
        # address reused) while the kernel populates it
        self._map_lock = threading.Lock()
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
        # locked under a name no adopter reads, then renamed: a lockfile is never seen unlocked (an adopter
        # meeting it between creation and flock would take it for a dead owner's and remove it)
        tmp = d / f"{stem}.locking"
        # recorded in the statement that opens it: a fork() from another thread at any later moment finds it
        # in _lock_fd, which the child closes (else the child would hold our lock after we die)
        self._lock_fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fd = self._lock_fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, d / f"{stem}.lock")
        except BaseException:
            self._lock_fd = -1
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._stem = stem
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
        """A preallocated, mapped wal segment with room for the header and ``need`` bytes (caller's thread:
        only when the helper thread has no spare ready)."""
        self._counter += 1
        return self._create_wal(self.directory / f"{self._stem}.{self._counter:06d}.wal", need)

    def _create_wal(self, path: Path, need: int) -> _Segment:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        seg = _Segment(fd, path)
        try:
            capacity = -(-max(self._segment_bytes, len(self._header) + need) // _PAGE) * _PAGE
            _preallocate(fd, capacity)
            if self.fsync != "always":  # always: pwrite + fsync (see append_wal)
                seg.mm = mmap.mmap(fd, capacity)  # MAP_SHARED, read + write
            seg.capacity = capacity
            seg.put(self._header)
            seg.set_mark(_NEVER)  # the fast path's limit: the capacity (until the helper populates ahead)
        except BaseException:
            seg.detach()
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
        segment ``fsync`` writes the pages dirtied through the mapping too (the page cache is the same).
        The live wal segment, when the helper thread populates it ahead, is synced up to its records only
        (``msync(MS_SYNC)`` of that range): an ``fsync`` would also write back the populated pages ahead
        (zeros) and make them read-only again — the appends would fault on them once more.
        """
        ranged: tuple[_Segment, int] | None = None
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            live = self._wal
            if live is not None and live.fd >= 0 and (live.size != live.synced or live in dirty):
                # (the appends do not mark it dirty; ack records written into it do)
                if live.mm is not None and live.prefaulted > live.size:
                    dirty.discard(live)
                    ranged = (live, live.size)
                else:
                    dirty.add(live)
            fds = []
            for seg in dirty:
                seg.synced = seg.size
                with contextlib.suppress(OSError):
                    if seg.fd >= 0:
                        fds.append(os.dup(seg.fd))
        if ranged is not None:
            seg, size = ranged
            with self._map_lock:  # never unmapped meanwhile
                done = seg.mm is not None and bool(seg.addr) and _PREFAULT.sync_range(seg.addr, -(-size // _PAGE) * _PAGE)
            if done:
                seg.synced = max(seg.synced, size)
            else:
                with self._lock, contextlib.suppress(OSError):
                    if seg.fd >= 0:
                        fds.append(os.dup(seg.fd))
        for fd in fds:
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)

    # ------------------------------------------------------------------ wal (caller's thread)
    def shared_lock(self) -> Any:
        """This spool's lock (re-entrant), for an owner that takes it as its own lock: the owner then appends with
        :meth:`append_locked` while holding it — one lock per event instead of two.

        In a forked child the spool is renewed first (as its fork handler would: whichever runs first), so
        an owner re-initialising after ``fork()`` gets the child's new lock, never the parent's.
        """
        if self._pid != os.getpid():
            self._forget_after_fork()
        return self._lock

    def append_item(self, item: Any) -> int:
        """:meth:`append_wal` of ``encode(item)``."""
        payload = self.encode(item)
        with self._lock:
            return self._put_wal(payload)

    def append_wal(self, payload: bytes) -> int:
        """Append one event (``payload``: the item codec's bytes) before ``record_event`` returns; returns its
        reference (an int: no GC-tracked object per event), for :meth:`ack` once every sink settled it.

        One record (format 3: frame + ``payload``, its number its ordinal in the segment) copied into the
        segment's shared mapping: no system call, no page fault (the helper thread populated the pages
        ahead), the GIL kept. A full segment is swapped for the spare the helper thread made ahead (a
        ``rename``); only when none is ready is a segment made here. Policy ``always``: ``pwrite`` + ``fsync``
        instead (milliseconds; a write fault into a mapped page being written back would wait for the journal
        with the GIL held, stalling every thread).
        """
        with self._lock:
            return self._put_wal(payload)

    def append_locked(self, item: Any) -> int:
        """:meth:`append_item` for an owner holding :meth:`shared_lock` (the engine's ``submit``).

        The fast path — the record fits below the live segment's ``limit`` (its capacity, or the position
        where the helper thread is to populate more pages) — is one frame, one copy into the mapping and
        one counter; everything else (the first segment, a full one, the helper's wake-up, policy
        ``always``) goes through :meth:`_put_wal`. The bytes are :meth:`append_wal`'s.
        """
        payload = self.encode(item)
        seg = self._tail
        pos = seg.size
        end = pos + len(payload) + _FRAME_SIZE
        if end > seg.limit:
            return self._put_wal(payload)
        seg.mm[pos:end] = _pack(FORMAT_VERSION, KIND_WAL, len(payload), _crc32(payload, _CRC_WAL)) + payload  # type: ignore[index]
        seg.size = end
        ref = seg.ref = seg.ref + 1
        return ref

    def _put_wal(self, payload: bytes) -> int:
        """Append one record (see :meth:`append_wal`). Called with ``_lock`` held. Refused once the spool is
        closed (OSError): a segment made then would outlive the shutdown and be replayed at the next start."""
        if self._closed:
            raise OSError("the spool is closed")
        record = _pack(FORMAT_VERSION, KIND_WAL, len(payload), _crc32(payload, _CRC_WAL)) + payload
        size = len(record)
        seg = self._wal
        if seg is None or seg.size + size > seg.capacity:
            seg = self._rotate_wal(size)
        mm = seg.mm
        if mm is not None:
            pos = seg.size
            end = pos + size
            mm[pos:end] = record
            seg.size = end
            if end > seg.mark:  # the helper populates the next pages (once per ~1 MB)
                seg.set_mark(_NEVER)
                self._wake.set()
            else:
                seg.set_mark(seg.mark)  # (a limit the helper left behind its mark: the fast path again)
        else:  # policy always: one pwrite (the fsync below releases the GIL anyway)
            seg.put(record)
            if self.fsync == "always":
                self._sync_now(seg)
        ref = seg.ref = seg.ref + 1
        return ref

    def _rotate_wal(self, need: int) -> _Segment:
        """Start a new segment: the helper's spare when it is ready (else one made here). The full one stays
        mapped until the helper unmaps it; acks reach it by ``pwrite`` then. Called with ``_lock`` held."""
        self._ensure_open()
        seg = self._take_spare(need) or self._new_wal(need)
        old = self._wal
        self._wal = seg
        self._tail = seg if seg.mm is not None else _NO_TAIL
        self._segments.append(seg)
        self._live[seg.ident] = seg
        if old is not None:
            self.stats["wal"] += old.written
            old.rotated = True
            if self.fsync == "grouped":
                self._dirty.add(old)  # its records since the last sync
            self._retired.append(old)
        if self.fsync == "grouped" and self._syncer is None:
            self._start_syncer()
        if self._helper is None and not self._no_helper:
            self._start_helper()
        if self._helper is not None:
            self._wake.set()
        elif old is not None:  # no helper thread (interpreter shutting down): unmapped here
            self._retired.remove(old)
            mm = old.detach()
            self._close_map(mm)
        return seg

    def _take_spare(self, need: int) -> _Segment | None:
        """The spare segment under the next file number (a ``rename``: file order stays append order)."""
        spare = self._spare
        if spare is None or spare.size + need > spare.capacity:
            return None
        self._spare = None
        self._counter += 1
        path = self.directory / f"{self._stem}.{self._counter:06d}.wal"
        try:
            os.rename(spare.path, path)
        except OSError:
            self._discard(spare)
            return None
        spare.path = path
        return spare

    def _discard(self, seg: _Segment) -> None:
        """Close and remove a segment holding no record (a spare not taken)."""
        mm = seg.detach()
        self._close_map(mm)
        with contextlib.suppress(OSError):
            os.close(seg.fd)
        seg.fd = -1
        with contextlib.suppress(OSError):
            seg.path.unlink()

    def _close_map(self, mm: mmap.mmap | None) -> None:
        if mm is not None:
            with self._map_lock, contextlib.suppress(OSError, ValueError, BufferError):
                mm.close()

    # ------------------------------------------------------------------ wal helper thread
    def _start_helper(self) -> None:
        """The helper thread (daemon: never keeps the process alive; re-created in a forked child on first use)."""
        helper = threading.Thread(
            target=self._helper_loop, args=(self._stop, self._wake), name="otel-commerce-spool-helper", daemon=True
        )
        try:
            helper.start()
        except RuntimeError:  # interpreter shutting down: segments are made and unmapped on the caller's thread
            self._no_helper = True
            return
        self._helper = helper

    def _helper_loop(self, stop: threading.Event, wake: threading.Event) -> None:
        while True:
            wake.wait()
            wake.clear()
            if stop.is_set():
                return
            try:
                self._help()
            except Exception:  # pragma: no cover - the appends never depend on it
                logger.debug("otel-commerce: spool helper failed", exc_info=True)

    def _help(self) -> None:
        """Populate the live segment ahead of the appends, unmap rotated ones, make the next segment."""
        self._populate_ahead()
        self._unmap_retired()
        if self._spare is None:
            self._make_spare()
        self._populate_ahead()

    def _populate_ahead(self) -> None:
        seg = self._wal
        if seg is None or seg.mm is None:
            return
        while seg.prefaulted < min(seg.size + _PREFAULT_WINDOW, seg.capacity):
            if not self._populate(seg, seg.size + _PREFAULT_WINDOW):
                seg.set_mark(_NEVER)  # the appends fault their own pages (as without a helper)
                return
        if seg.prefaulted < seg.capacity:
            seg.set_mark(seg.prefaulted - _PREFAULT_WINDOW // 2)
        if seg.size > seg.mark and seg.mark != _NEVER:
            self._wake.set()  # the appends went past the new mark meanwhile

    def _populate(self, seg: _Segment, upto: int) -> bool:
        """Populate the next chunk of ``seg``'s mapping below ``upto``; False when it cannot."""
        start = seg.prefaulted
        stop = min(-(-upto // _PAGE) * _PAGE, seg.capacity, start + _PREFAULT_CHUNK)
        with self._map_lock:
            mm = seg.mm
            if mm is None or stop <= start:
                return False
            if not seg.addr:
                seg.addr = _PREFAULT.address(mm)
            if not _PREFAULT.populate(seg.addr + start, stop - start):
                return False
        seg.prefaulted = stop
        return True

    def _unmap_retired(self) -> None:
        maps = []
        with self._lock:
            retired, self._retired = self._retired, []
            for seg in retired:
                if seg.fd < 0:
                    continue  # removed (every record settled) or closed meanwhile
                if seg.unacked <= 0:
                    maps.append(self._remove(seg))  # settled before its rotation: no ack will remove it
                else:
                    maps.append(seg.detach())  # acks reach it by pwrite
        for mm in maps:
            self._close_map(mm)

    def _make_spare(self) -> None:
        """The next wal segment, made and partly populated here; taken by ``_rotate_wal`` (renamed)."""
        with self._lock:
            if self._closed or self._lock_fd < 0 or self._spare is not None:
                return
            self._spares += 1
            path = self.directory / f"{self._stem}.{self._spares:06d}.next"
        try:
            seg = self._create_wal(path, 0)
        except OSError as exc:
            logger.debug("otel-commerce: cannot make the next wal segment ahead: %s", exc)
            return
        if seg.mm is not None:
            while seg.prefaulted < min(_PREFAULT_WINDOW, seg.capacity) and self._populate(seg, _PREFAULT_WINDOW):
                pass
            seg.set_mark(seg.prefaulted - _PREFAULT_WINDOW // 2 if seg.prefaulted else _NEVER)
        with self._lock:
            if not self._closed and self._spare is None:
                self._spare = seg
                return
        self._discard(seg)

    def ack(self, refs: Iterable[int]) -> None:
        """Mark wal records (:meth:`append_wal`'s references) settled by every sink (one write per segment);
        drop finished segments. References of segments no longer ours (removed, closed, a parent's) are ignored."""
        by_seg: dict[int, list[int]] = {}
        for ref in refs:
            numbers = by_seg.get(ref >> _REF_BITS)
            if numbers is None:
                numbers = by_seg[ref >> _REF_BITS] = []
            numbers.append(ref & _REF_MASK)
        maps = []
        with self._lock:
            for ident, numbers in by_seg.items():
                seg = self._live.get(ident)
                if seg is None:
                    continue
                seg.acked += len(numbers)
                if seg.fd < 0:
                    continue
                if seg.unacked <= 0 and seg.rotated:
                    maps.append(self._remove(seg))
                    continue
                with contextlib.suppress(OSError):
                    self._write(seg, frame(KIND_ACK, orjson.dumps(numbers)))
        for mm in maps:  # unmapped outside the lock (never waits for a populate while appends wait)
            self._close_map(mm)

    def _remove(self, seg: _Segment) -> mmap.mmap | None:
        """Close and delete a segment; returns its mapping, for the caller to close (``_close_map``)."""
        self._dirty.discard(seg)
        mm = seg.detach()
        with contextlib.suppress(OSError):
            os.close(seg.fd)
        seg.fd = -1
        with contextlib.suppress(OSError):
            seg.path.unlink()
        with contextlib.suppress(ValueError):
            self._segments.remove(seg)
        self._live.pop(seg.ident, None)
        return mm

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
            seg.written += len(payloads)
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
                    if _stem_of(name) == stem and name.endswith(".next"):  # a spare segment: no record ...
                        spare = self.directory / name
                        try:  # ... unless a crash lost its rename to .wal (the directory entry not yet on disk)
                            has_records = spare_holds_records(spare)
                        except OSError:
                            continue
                        if not has_records:
                            with contextlib.suppress(OSError):
                                spare.unlink()
                            continue
                    elif _stem_of(name) != stem or not name.endswith((".wal", ".spill")):
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
                        suffix = name.rsplit(".", 1)[1]
                        dst = self.directory / f"{self._stem}.{self._counter:06d}.{'wal' if suffix == 'next' else suffix}"
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

    def has_backlog(self) -> bool:
        """Whether :meth:`adopt` would find something: a data file with our key whose owner is gone (a directory
        listing and a lock probe per owner; opens nothing of ours, starts no thread)."""
        prefix = self.key.digest + "-"
        names = [n for n in _listdir(self.directory) if n.startswith(prefix) and _stem_of(n) != self._stem]
        stems = {_stem_of(n) for n in names if n.endswith((".wal", ".spill"))}
        if any(not lock_held(self.directory / f"{stem}.lock") for stem in stems):
            return True
        for name in names:  # a dead owner's spare that holds records (its rename to .wal lost): adopt() takes it
            if name.endswith(".next") and _stem_of(name) not in stems:
                if lock_held(self.directory / f"{_stem_of(name)}.lock"):
                    continue
                with contextlib.suppress(OSError):
                    if spare_holds_records(self.directory / name):
                        return True
        return False

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
        self._wake.set()
        helper = self._helper
        if helper is not None and helper is not threading.current_thread() and helper.is_alive():
            helper.join(2.0)  # bounded: it populates at most one chunk or makes one segment
        with self._lock:
            if self._closed:
                return
            self._closed = True
            files = [*self._segments, *self._spill_full, *([self._spill] if self._spill is not None else [])]
            if self._spare is not None:
                files.append(self._spare)  # no record: removed below
            for seg in files:
                if seg.fd < 0:
                    continue
                mm = seg.detach()
                self._close_map(mm)
                with contextlib.suppress(OSError):
                    seg.truncate()  # the records stay; the preallocated zeros go
                with contextlib.suppress(OSError):
                    if self.fsync != "none" or seg.path.suffix == ".spill":
                        os.fsync(seg.fd)
                    os.close(seg.fd)
                seg.fd = -1
                if seg.unacked <= 0:
                    with contextlib.suppress(OSError):
                        seg.path.unlink()
            if self._wal is not None:
                self.stats["wal"] += self._wal.written
            self._segments, self._spill, self._wal, self._spill_full = [], None, None, []
            self._tail = _NO_TAIL
            self._spare, self._retired, self._live = None, [], {}
            if self._lock_fd >= 0:
                if not any(_stem_of(n) == self._stem and not n.endswith(".lock") for n in _listdir(self.directory)):
                    with contextlib.suppress(OSError):
                        (self.directory / f"{self._stem}.lock").unlink()
                os.close(self._lock_fd)  # releases the lock: a live process may adopt what is left
                self._lock_fd = -1

    def _forget_after_fork(self) -> None:
        """In a forked child: close (never unlock) the inherited descriptors and unmap the inherited
        mappings (the parent's segments: never written, truncated or synced here); our own files on first use.
        Once per child (the fork handler and :meth:`shared_lock`, whichever comes first).
        """
        if self._pid == os.getpid():
            return
        segs = [*self._segments, *([self._spare] if self._spare is not None else [])]
        for seg in segs:
            mm = seg.detach()
            if mm is not None:  # never under _map_lock: a thread of the parent may have held it at fork()
                with contextlib.suppress(OSError, ValueError, BufferError):
                    mm.close()  # munmap in this process only
        fds = [self._lock_fd, *(s.fd for s in segs), *(s.fd for s in self._spill_full)]
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
