"""Where the static configuration comes from: a file, else flags, else the environment.

Traefik reads exactly one source (verified with the Traefik 3.7 binary): a configuration file
when one is given with ``--configFile`` or found in its lookup directories; otherwise the
command-line flags when there is at least one; otherwise the ``TRAEFIK_*`` environment
variables. wsgate does the same, and warns about the sources it ignores instead of ignoring
them silently. See docs/configuration/static.md for the differences from Traefik.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from typing import Iterator, Literal, Mapping, Sequence

from wsgate.config.errors import ConfigError, Diagnostic, Mark
from wsgate.config.schema import decode, model_fields
from wsgate.config.sources import flat_to_tree, load_toml, load_yaml, split_flat_key
from wsgate.config.static import StaticConfig, feature_warnings, finalize_static, root_keys
from wsgate.config.tree import Node

#: File names tried in every lookup directory: wsgate's own first, then Traefik's.
CONFIG_BASENAMES = ("wsgate", "traefik")
#: Extensions in Traefik's order.
CONFIG_EXTENSIONS = ("toml", "yaml", "yml")
#: Environment prefixes; for the same key a WSGATE_ variable wins over a TRAEFIK_ one.
ENV_PREFIXES = ("TRAEFIK_", "WSGATE_")
ETC_DIR = "/etc/traefik"

#: Options of the loader itself, not configuration keys: name -> takes a value.
LOADER_OPTIONS = {"configfile": True, "strict": False}

SourceKind = Literal["file", "flags", "environment", "defaults"]
FlatPair = tuple[list[str], str, Mark]


@dataclass(frozen=True)
class LoadedStatic:
    """A finalized static configuration and how it was obtained."""

    config: StaticConfig
    warnings: tuple[Diagnostic, ...]
    #: "file /etc/traefik/traefik.yml", "flags", "environment" or "defaults".
    source: str
    marks: Mapping[str, Mark]
    kind: SourceKind = "defaults"
    file: str | None = None
    strict: bool = False


# --------------------------------------------------------------------------- flags

def _unwrap(tp: typing.Any) -> tuple[typing.Any, bool]:
    """(inner type, optional) for ``X | None``."""
    args = typing.get_args(tp)
    if type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return tp, False


FlagKind = Literal["bool", "section", "list", "value", "unknown"]


def flag_kind(segments: Sequence[str]) -> FlagKind:
    """What a flag names in the model, to know whether a bare flag takes the next argument.

    Segments match keys case-insensitively; map names and list indexes are any segment.
    """
    tp: typing.Any = StaticConfig
    for seg in segments:
        tp, _ = _unwrap(tp)
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            low = seg.lower()
            found = None
            for f, ftp in model_fields(typing.cast(type, tp)):
                names = (f.metadata["key"], *f.metadata["aliases"])
                if low in (n.lower() for n in names):
                    found = ftp
                    break
            if found is None:
                return "unknown"
            tp = found
        elif origin is not None and getattr(origin, "__name__", "") == "Mapping":
            tp = typing.get_args(tp)[1]
        elif origin is tuple and seg.isdigit():
            tp = typing.get_args(tp)[0]
        else:
            return "unknown"
    tp, _ = _unwrap(tp)
    if dataclasses.is_dataclass(tp):
        return "section"
    if tp is bool:
        return "bool"
    if typing.get_origin(tp) is tuple:
        return "list"
    return "value"


@dataclass(frozen=True)
class _Arg:
    kind: Literal["config", "loader", "other"]
    tokens: tuple[str, ...]
    name: str = ""
    value: str = ""


def _flag_name(token: str) -> str | None:
    """The name of a ``-x``/``--x[=v]`` token, or None when it is not a flag."""
    if len(token) < 2 or token[0] != "-" or token == "--":
        return None
    name = token[2:] if token[1] == "-" else token[1:]
    return name.split("=", 1)[0]


def _is_config_name(name: str) -> bool:
    segments = split_flat_key(name)
    return bool(segments) and segments[0].lower() in root_keys()


def _scan(argv: Sequence[str]) -> Iterator[_Arg]:
    """Walk argv as Traefik's flag parser does, tagging each argument."""
    i = 0
    args = list(argv)
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            yield _Arg("other", tuple(args[i - 1:]))
            return
        name = _flag_name(token)
        if name is None or not name or name.startswith(("-", "=")):
            yield _Arg("other", (token,))
            continue
        low = name.lower()
        is_loader = low in LOADER_OPTIONS
        if not is_loader and not _is_config_name(name):
            yield _Arg("other", (token,))
            continue
        kind: Literal["config", "loader"] = "loader" if is_loader else "config"
        if "=" in token:
            yield _Arg(kind, (token,), name, token.split("=", 1)[1])
            continue
        if is_loader:
            takes_value = LOADER_OPTIONS[low]
        else:
            fk = flag_kind(split_flat_key(name))
            takes_value = fk in ("value", "list") or (
                fk == "unknown" and i < len(args) and _flag_name(args[i]) is None)
        if not takes_value:
            yield _Arg(kind, (token,), name, "true")
        elif i < len(args):
            yield _Arg(kind, (token, args[i]), name, args[i])
            i += 1
        else:
            yield _Arg(kind, (token,), name, "")  # reported by parse_cli_flags


def split_cli_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split argv into Traefik-style configuration flags (with ``--configFile`` and
    ``--strict``, which :func:`load_static` reads) and the other arguments, in order.

    A flag is a configuration flag when its first key segment is a static root key
    (``--entryPoints.web.address``, ``--api``, ``--ping``...); its value may follow as the next
    argument when the key is not a boolean or a section.
    """
    config: list[str] = []
    other: list[str] = []
    for arg in _scan(argv):
        (other if arg.kind == "other" else config).extend(arg.tokens)
    return config, other


@dataclass(frozen=True)
class ParsedFlags:
    config_file: str | None
    strict: bool
    pairs: tuple[FlatPair, ...]


def parse_cli_flags(argv: Sequence[str]) -> ParsedFlags:
    """Read configuration flags into flat key pairs (repeated list flags accumulate)."""
    config_file: str | None = None
    strict = False
    values: dict[str, list[typing.Any]] = {}
    errors: list[Diagnostic] = []
    for arg in _scan(argv):
        if arg.kind == "other":
            errors.append(Diagnostic(
                f"{arg.tokens[0]!r} is not a static configuration flag (known roots: "
                f"{', '.join(sorted(root_keys().values()))})", "", Mark("command line")))
            continue
        mark = Mark(f"flag --{arg.name}")
        if arg.kind == "loader":
            low = arg.name.lower()
            if low == "configfile":
                if not arg.value:
                    errors.append(Diagnostic("needs a file path", "", mark))
                config_file = arg.value
            else:
                try:
                    strict = _flag_bool(arg.value)
                except ValueError:
                    errors.append(Diagnostic(f"expected true or false, got {arg.value!r}",
                                             "", mark))
            continue
        if len(arg.tokens) == 1 and "=" not in arg.tokens[0] and arg.value == "" \
                and flag_kind(split_flat_key(arg.name)) in ("value", "list", "unknown"):
            errors.append(Diagnostic("flag needs a value (--key=value or --key value)",
                                     "", mark))
            continue
        segments = split_flat_key(arg.name)
        ident = ".".join(segments).lower()
        previous = values.get(ident)
        if previous is not None and flag_kind(segments) == "list" \
                and "[" not in arg.name:
            previous[1] = f"{previous[1]},{arg.value}"
            continue
        if previous is not None:
            previous[1] = arg.value
            previous[2] = mark
            continue
        values[ident] = [segments, arg.value, mark]
    if errors:
        raise ConfigError(errors)
    pairs = tuple((v[0], v[1], v[2]) for v in values.values())
    return ParsedFlags(config_file, strict, pairs)


def _flag_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("", "1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise ValueError(text)


# --------------------------------------------------------------------------- environment

def env_pairs(environ: Mapping[str, str]) -> list[FlatPair]:
    """``TRAEFIK_ENTRYPOINTS_WEB_ADDRESS=:80`` style variables as flat key pairs.

    Only variables whose first segment is a static root key count (as in Traefik, other
    ``TRAEFIK_*`` variables are not configuration). Segments are split on ``_`` and lower-cased
    (so map names come out in lower case, as in Traefik); numeric segments are list indexes.
    ``TRAEFIK_`` pairs come first so that a ``WSGATE_`` variable for the same key wins.
    """
    roots = root_keys()
    out: list[FlatPair] = []
    for prefix in ENV_PREFIXES:
        for name in sorted(environ):
            if not name.startswith(prefix):
                continue
            segments = split_flat_key(name[len(prefix):].lower(), "_")
            if not segments or segments[0] not in roots:
                continue
            out.append((segments, environ[name], Mark(f"env {name}")))
    return out


# --------------------------------------------------------------------------- files

def config_search_dirs(environ: Mapping[str, str], cwd: str, *,
                       etc_dir: str = ETC_DIR) -> list[str]:
    """Traefik's lookup directories, in its order; unset variables skip their directory."""
    dirs = [etc_dir]
    xdg = environ.get("XDG_CONFIG_HOME", "")
    if xdg:
        dirs.append(xdg)
    home = environ.get("HOME", "")
    if home:
        dirs.append(os.path.join(home, ".config"))
    dirs.append(cwd)
    return dirs


def config_file_candidates(environ: Mapping[str, str], cwd: str, *,
                           etc_dir: str = ETC_DIR) -> list[str]:
    """Every path tried, in order: wsgate.{toml,yaml,yml} in every directory, then
    traefik.{toml,yaml,yml} in every directory."""
    dirs = config_search_dirs(environ, cwd, etc_dir=etc_dir)
    return [os.path.join(d, f"{base}.{ext}")
            for base in CONFIG_BASENAMES for d in dirs for ext in CONFIG_EXTENSIONS]


def find_config_file(environ: Mapping[str, str], cwd: str, *,
                     etc_dir: str = ETC_DIR) -> str | None:
    for path in config_file_candidates(environ, cwd, etc_dir=etc_dir):
        if os.path.exists(path):
            return os.path.abspath(path)
    return None


def read_config_file(path: str, display: str | None = None) -> Node:
    """Parse a YAML or TOML file, chosen by its extension."""
    source = display or path
    ext = os.path.splitext(path)[1].lower()
    if ext in (".yml", ".yaml"):
        loader = load_yaml
    elif ext == ".toml":
        loader = load_toml
    else:
        raise ConfigError(f"unsupported file extension {ext or '(none)'!r} "
                          f"(use .yml, .yaml or .toml)", mark=Mark(source))
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file: {exc.strerror or exc}",
                          mark=Mark(source)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the configuration file is not UTF-8 text ({exc.reason})",
                          mark=Mark(source)) from None
    return loader(text, source)


# --------------------------------------------------------------------------- loading

def load_static(argv: Sequence[str], environ: Mapping[str, str], cwd: str, *,
                strict: bool = False, etc_dir: str = ETC_DIR) -> LoadedStatic:
    """Load, decode, validate and finalize the static configuration.

    ``argv`` holds the configuration flags (see :func:`split_cli_args`), possibly with
    ``--configFile`` and ``--strict``; ``strict=True`` also makes unknown keys errors.
    ``etc_dir`` replaces /etc/traefik in the lookup (for tests). Raises ConfigError listing
    every problem with its source, key path and line.
    """
    flags = parse_cli_flags(argv)
    strict = strict or flags.strict
    env = env_pairs(environ)
    ignored: list[tuple[str, Mark]] = []

    path: str | None = None
    display: str | None = None
    if flags.config_file:
        display = flags.config_file
        path = os.path.join(cwd, os.path.expanduser(display))
        if not os.path.exists(path):
            raise ConfigError("configuration file not found", path="",
                              mark=Mark(f"flag --configFile={display}"))
    else:
        path = find_config_file(environ, cwd, etc_dir=etc_dir)
        display = path

    kind: SourceKind
    tree: Node | None
    if path is not None:
        kind, source = "file", f"file {display}"
        tree = read_config_file(path, display)
        ignored += [("flags", m) for _, _, m in flags.pairs]
        ignored += [("environment variables", m) for _, _, m in env]
    elif flags.pairs:
        kind, source = "flags", "flags"
        tree = flat_to_tree(flags.pairs, Mark("flags"))
        ignored += [("environment variables", m) for _, _, m in env]
    elif env:
        kind, source = "environment", "environment"
        tree = flat_to_tree(env, Mark("environment"))
    else:
        kind, source, tree = "defaults", "defaults", None

    decoded = decode(StaticConfig, tree, strict=strict)
    config = finalize_static(decoded.value)
    warnings = list(decoded.warnings)
    warnings += _ignored_warnings(ignored, source)
    warnings += feature_warnings(config, decoded.marks)
    return LoadedStatic(config, tuple(warnings), source, decoded.marks, kind,
                        path if kind == "file" else None, strict)


def _ignored_warnings(ignored: list[tuple[str, Mark]], source: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for what in ("flags", "environment variables"):
        names = [str(m).split(" ", 1)[-1] for w, m in ignored if w == what]
        if names:
            out.append(Diagnostic(
                f"{what} ignored because the configuration comes from the {source}: "
                f"{', '.join(names)} (as in Traefik, only one source is read: a file, else "
                f"flags, else environment variables)", "", None, "warning"))
    return out


__all__ = [
    "CONFIG_BASENAMES", "CONFIG_EXTENSIONS", "ENV_PREFIXES", "LoadedStatic", "ParsedFlags",
    "config_file_candidates", "config_search_dirs", "env_pairs", "find_config_file",
    "flag_kind", "load_static", "parse_cli_flags", "read_config_file", "split_cli_args",
]
