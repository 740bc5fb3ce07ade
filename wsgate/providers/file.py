"""The file provider: dynamic configuration from a file or a directory of files, watched.

Each file is parsed on its own (YAML or TOML by extension) and the trees are merged, so that
an error names the file it comes from. A change is applied only when every file parses and
validates; otherwise the last good configuration keeps running and the errors are logged.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any, Callable

from twisted.internet.interfaces import IReactorFDSet, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import ConfigError, Diagnostic, Mark
from wsgate.config.schema import Decoded, decode
from wsgate.config.sources import load_toml, load_yaml
from wsgate.config.tree import Mapping, Node

log = Logger()

SUFFIXES = (".yml", ".yaml", ".toml")


def provider_files(filename: str, directory: str) -> list[Path]:
    """The files the provider reads, in a stable order."""
    if filename:
        return [Path(filename)]
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"providers.file.directory {directory!r} is not a directory")
    return sorted(p for p in root.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())


def read_tree(path: Path) -> Node:
    """One file as a positioned tree; Go templates are refused with a clear error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", mark=Mark(str(path))) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", mark=Mark(str(path))) from None
    index = text.find("{{")
    if index != -1:
        line = text.count("\n", 0, index) + 1
        raise ConfigError("Go templates ({{ ... }}) are not supported by wsgate; write the "
                          "configuration out in full", mark=Mark(str(path), line))
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return load_toml(text, str(path))
    if suffix in (".yml", ".yaml"):
        return load_yaml(text, str(path))
    raise ConfigError("unsupported file extension (expected .yml, .yaml or .toml)",
                      mark=Mark(str(path)))


def merge_trees(trees: list[Node], errors: list[Diagnostic], path: str = "") -> Node:
    """Merge mappings key by key; the same leaf in two files is an error naming both."""
    if len(trees) == 1:
        return trees[0]
    maps = [t for t in trees if isinstance(t, Mapping)]
    if len(maps) != len(trees):
        first, second = trees[0], trees[1]
        errors.append(Diagnostic(f"defined more than once (also at {first.mark})", path,
                                 second.mark))
        return trees[0]
    merged = Mapping({}, maps[0].mark)
    keys: dict[str, list[tuple[Mapping, str]]] = {}
    for m in maps:
        for k in m.items:
            keys.setdefault(k, []).append((m, k))
    for k, owners in keys.items():
        children = [m.items[key] for m, key in owners]
        sub = f"{path}.{k}" if path else k
        merged.items[k] = merge_trees(children, errors, sub)
        merged.key_marks[k] = owners[0][0].key_marks.get(k, children[0].mark)
    return merged


def load_file_provider(filename: str, directory: str, *, strict: bool = False
                       ) -> Decoded[DynamicConfig]:
    """Read and validate the provider's files; raise ConfigError with every problem."""
    files = provider_files(filename, directory)
    trees: list[Node] = []
    errors: list[Diagnostic] = []
    for path in files:
        try:
            tree = read_tree(path)
        except ConfigError as exc:
            errors.extend(exc.diagnostics)
            continue
        if isinstance(tree, Mapping) and tree.items:
            trees.append(tree)
    if errors:
        raise ConfigError(errors)
    if not trees:
        return decode(DynamicConfig, Mapping({}, Mark(filename or directory)), strict=strict)
    merged = merge_trees(trees, errors)
    if errors:
        raise ConfigError(errors)
    return decode(DynamicConfig, merged, strict=strict)


def _fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode())
        try:
            digest.update(path.read_bytes())
        except OSError as exc:
            digest.update(f"unreadable:{exc.errno}".encode())
    return digest.hexdigest()


def _inotify_for(reactor: object) -> object | None:
    """An inotify descriptor read by ``reactor`` (Linux, a reactor with file descriptors),
    else None: the provider then polls only."""
    if not sys.platform.startswith("linux") or not IReactorFDSet.providedBy(reactor):
        return None
    try:
        from twisted.internet import inotify
    except ImportError:
        return None
    try:
        notifier = inotify.INotify(reactor=reactor)
    except (inotify.INotifyError, OSError) as exc:
        log.warn("file provider: inotify unavailable ({error}); polling only", error=exc)
        return None
    notifier.startReading()
    return notifier


#: How long after an inotify event the files are compared (events come in bursts).
NOTIFY_COALESCE = 0.02

#: Directory events after which the files are compared again (writes, creations, removals,
#: renames: an editor or a Kubernetes ConfigMap swaps files in by renaming): IN_MODIFY,
#: IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE (inotify(7)).
WATCH_MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200


class FileProvider:
    """Loads the configuration now and, when watching, again whenever the files change.

    Changes are detected by comparing a fingerprint of the files' contents, after every
    inotify event in the watched directory (Linux) and every ``poll_interval`` in any case
    (inotify misses changes on network file systems and to a watched directory itself);
    ``debounce`` makes a burst of writes (an editor saving, a deploy tool copying several
    files) one reload.
    """

    name = "file"

    def __init__(self, clock: IReactorTime, filename: str, directory: str, *, watch: bool,
                 on_change: Callable[[Decoded[DynamicConfig]], None], strict: bool = False,
                 poll_interval: float = 1.0, debounce: float = 0.3) -> None:
        self.clock = clock
        self.filename = filename
        self.directory = directory
        self.watch = watch
        self.on_change = on_change
        self.strict = strict
        self.poll_interval = poll_interval
        self.debounce = debounce
        self.current: Decoded[DynamicConfig] | None = None
        self._fingerprint = ""
        self._loop: LoopingCall | None = None
        self._pending: object = None
        self._notifier: Any = None
        self._check: Any = None

    def describe(self) -> str:
        return self.filename or f"{self.directory}{os.sep}"

    def load(self) -> bool:
        """Load now; True when a new configuration was accepted."""
        try:
            files = provider_files(self.filename, self.directory)
            self._fingerprint = _fingerprint(files)
            decoded = load_file_provider(self.filename, self.directory, strict=self.strict)
        except ConfigError as exc:
            what = "keeping the last good configuration" if self.current else \
                "no configuration from this provider until it is fixed"
            log.error("file provider: invalid configuration in {where}; {what}:\n{errors}",
                      where=self.describe(), what=what, errors=str(exc))
            return False
        for warning in decoded.warnings:
            log.warn("file provider: {warning}", warning=str(warning))
        self.current = decoded
        self.on_change(decoded)
        return True

    def start(self) -> None:
        if self.watch and self._loop is None:
            self._loop = LoopingCall(self._poll)
            self._loop.clock = self.clock
            self._loop.start(self.poll_interval, now=False)
            self._start_inotify()

    def _start_inotify(self) -> None:
        notifier = _inotify_for(self.clock)
        if notifier is None:
            log.info("file provider: watching {where} by polling every {interval}s",
                     where=self.describe(), interval=self.poll_interval)
            return
        from twisted.internet.inotify import INotifyError
        from twisted.python.filepath import FilePath

        # Not resolved: a symlinked file (a Kubernetes ConfigMap) changes by a rename in the
        # directory that holds the link, which is the one to watch.
        target = Path(os.path.abspath(self.filename)).parent if self.filename else \
            Path(os.path.abspath(self.directory))
        try:
            notifier.watch(FilePath(str(target)), mask=WATCH_MASK,  # type: ignore[attr-defined]
                           callbacks=[self._notified])
        except (INotifyError, OSError) as exc:
            log.warn("file provider: cannot watch {dir} with inotify ({error}); polling "
                     "every {interval}s", dir=str(target), error=exc,
                     interval=self.poll_interval)
            notifier.loseConnection()  # type: ignore[attr-defined]
            return
        self._notifier = notifier
        log.info("file provider: watching {where} with inotify (and polling every "
                 "{interval}s)", where=self.describe(), interval=self.poll_interval)

    def _notified(self, _handle: object, _path: object, _mask: int) -> None:
        # One comparison for a burst of events (a write in several chunks, a busy directory).
        if self._check is None or not self._check.active():
            self._check = self.clock.callLater(NOTIFY_COALESCE, self._poll)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.loseConnection()
        for attr in ("_pending", "_check"):
            call = getattr(self, attr)
            setattr(self, attr, None)
            if call is not None and call.active():
                call.cancel()

    def _poll(self) -> None:
        try:
            files = provider_files(self.filename, self.directory)
        except ConfigError as exc:
            log.error("file provider: {error}", error=str(exc))
            return
        fingerprint = _fingerprint(files)
        if fingerprint == self._fingerprint:
            return
        self._fingerprint = fingerprint
        if self._pending is not None and self._pending.active():  # type: ignore[attr-defined]
            self._pending.reset(self.debounce)  # type: ignore[attr-defined]
        else:
            self._pending = self.clock.callLater(self.debounce, self._reload)

    def _reload(self) -> None:
        self._pending = None
        log.info("file provider: {where} changed; reloading", where=self.describe())
        self.load()
