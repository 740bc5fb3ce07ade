#!/usr/bin/env python3
"""The Autobahn TestSuite through wsgate, compared case by case with a direct connection.

The fuzzing client is kosoku (a Python 3 runner of the Autobahn TestSuite case files); the
server under test is autobahn-python's own Twisted echo server
(tests/integration/peers/autobahn_echo.py). Every selected case runs three ways:

- ``direct``: kosoku → echo server;
- ``wsgate``: kosoku → wsgate (ws://, a plain entryPoint) → echo server;
- ``wss`` (with ``--wss``): kosoku → stunnel (client mode: plain in, TLS out) → wsgate
  (TLS termination on a websecure entryPoint) → echo server.

A proxy that relays WebSocket traffic faithfully leaves every verdict as it was, so each
case's result through wsgate (behavior, close behavior, the close code the client got) must
equal the direct one. Usage:

    python scripts/autobahn_suite.py                       # all 517 cases, ws:// only
    python scripts/autobahn_suite.py --wss                 # and wss:// termination
    python scripts/autobahn_suite.py --cases '1.*' --cases '9.1.*' --report out.json

It prints a per-group summary and writes a JSON report (default build/autobahn/report.json).
The exit status is 1 when a case of the required groups (1 to 7, 9.1 and 12.1) differs from
the direct run, 0 otherwise (differences in other groups are reported, not fatal).
All traffic stays on 127.0.0.1; every process is started here and stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.differential.certs import make_cert  # noqa: E402
from tests.integration.harness import PEERS, Proc, Wsgate, free_port  # noqa: E402

#: Case groups whose results through wsgate must equal the direct ones.
REQUIRED = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.1.*", "12.1.*"]
#: The subset the test suite runs (tests/integration/test_autobahn_suite.py): a few seconds.
QUICK = ["1.*", "2.*", "3.*", "4.*", "5.*", "7.*"]
#: The SNI and certificate name used for wss:// runs.
WSS_NAME = "wss.example.com"
DEFAULT_REPORT = ROOT / "build" / "autobahn" / "report.json"


def is_required(case_id: str) -> bool:
    return any(fnmatch.fnmatchcase(case_id, pattern) for pattern in REQUIRED)


def group_of(case_id: str) -> str:
    """Groups as the suite's report lists them: 1 to 7 and 10 whole, 9, 12, 13 by subgroup."""
    parts = case_id.split(".")
    return ".".join(parts[:2]) if parts[0] in ("9", "12", "13") else parts[0]


def _group_key(group: str) -> list[int]:
    return [int(p) for p in group.split(".")]


def verdict(result: Any) -> dict[str, Any]:
    """The part of a kosoku CaseResult that a faithful proxy must not change, plus context."""
    return {"behavior": result.behavior.value, "behaviorClose": result.behavior_close.value,
            "remoteCloseCode": result.remote_close_code, "passed": bool(result.passed),
            "durationMs": result.duration, "result": result.result,
            "resultClose": result.result_close}


def comparable(v: dict[str, Any]) -> tuple[Any, ...]:
    return (v["behavior"], v["behaviorClose"], v["remoteCloseCode"])


async def _run(url: str, cases: list[str], exclude: list[str], parallelism: int) -> list[Any]:
    import kosoku

    try:
        return list(await kosoku.run_fuzzingclient(url, cases or None, exclude or None,
                                                   concurrency=parallelism))
    except kosoku.FailureError as failure:  # some case did not pass: results are still there
        return list(failure.results)


def run_cases(url: str, cases: list[str], exclude: list[str] | None = None,
              parallelism: int = 1) -> dict[str, dict[str, Any]]:
    """Run the selected cases against ``url``; the verdict of each, by case id."""
    results = asyncio.run(_run(url, cases, exclude or [], parallelism))
    return {r.case_id: verdict(r) for r in results}


# -- processes ------------------------------------------------------------------------------


def start_echo() -> tuple[Proc, int]:
    proc = Proc([sys.executable, str(PEERS / "autobahn_echo.py")], name="autobahn_echo")
    return proc, int(proc.wait_for(r"listening on (\d+)").group(1))


def wsgate_config(echo_port: int, cert: Path | None, key: Path | None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """One plain entryPoint (web) and, with a certificate, a TLS one (websecure)."""
    entry_points: dict[str, Any] = {"web": {"address": "127.0.0.1:0"}}
    routers: dict[str, Any] = {"echo": {"rule": "PathPrefix(`/`)", "entryPoints": ["web"],
                                        "service": "echo"}}
    dynamic: dict[str, Any] = {"http": {"routers": routers, "services": {"echo": {
        "loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{echo_port}"}]}}}}}
    if cert is not None:
        entry_points["websecure"] = {"address": "127.0.0.1:0"}
        routers["echo-tls"] = {"rule": "PathPrefix(`/`)", "entryPoints": ["websecure"],
                               "service": "echo", "tls": {}}
        dynamic["tls"] = {"certificates": [{"certFile": str(cert), "keyFile": str(key)}]}
    return {"log": {"level": "INFO"}, "entryPoints": entry_points}, dynamic


def stunnel_binary() -> str | None:
    return shutil.which("stunnel4") or shutil.which("stunnel")


def start_stunnel(tmp: Path, tls_port: int) -> tuple[Proc, int]:
    """stunnel in client mode: accepts plain TCP on a free port, speaks TLS to ``tls_port``."""
    binary = stunnel_binary()
    if binary is None:
        raise RuntimeError("stunnel is not installed (Debian package stunnel4)")
    port = free_port()
    conf = tmp / "stunnel.conf"
    conf.write_text("\n".join([
        "foreground = yes", "pid =", "debug = notice", "syslog = no",
        "[wss]", "client = yes", f"accept = 127.0.0.1:{port}",
        f"connect = 127.0.0.1:{tls_port}", f"sni = {WSS_NAME}", "verifyChain = no",
        "delay = no", "TIMEOUTclose = 0", ""]))
    proc = Proc([binary, str(conf)], name="stunnel")
    proc.wait_for(r"Configuration successful")
    return proc, port


@dataclass
class Targets:
    """The URLs kosoku runs against, and the processes behind them."""

    urls: dict[str, str] = field(default_factory=dict)
    gateway: Wsgate | None = None


@contextmanager
def targets(tmp: Path, *, wss: bool = False) -> Iterator[Targets]:
    """Echo server, wsgate in front of it and (with ``wss``) stunnel in front of wsgate."""
    with ExitStack() as stack:
        echo, echo_port = start_echo()
        stack.callback(echo.stop)
        cert = key = None
        if wss:
            cert, key = make_cert(tmp / "certs", [WSS_NAME], stem="wss")
        static, dynamic = wsgate_config(echo_port, cert, key)
        gateway = Wsgate(tmp, static, dynamic)
        stack.callback(gateway.stop)
        found = Targets(gateway=gateway)
        found.urls["direct"] = f"ws://127.0.0.1:{echo_port}"
        found.urls["wsgate"] = f"ws://127.0.0.1:{gateway.ports['web']}"
        if wss:
            tunnel, tunnel_port = start_stunnel(tmp, gateway.ports["websecure"])
            stack.callback(tunnel.stop)
            found.urls["wss"] = f"ws://127.0.0.1:{tunnel_port}"
        yield found


# -- comparison and report ------------------------------------------------------------------


def compare(runs: dict[str, dict[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """Case ids whose verdict through each proxied target differs from the direct one."""
    direct = runs["direct"]
    out: dict[str, list[str]] = {}
    for name, run in runs.items():
        if name == "direct":
            continue
        out[name] = sorted((cid for cid in direct if comparable(direct[cid])
                            != comparable(run.get(cid, {"behavior": "MISSING",
                                                        "behaviorClose": None,
                                                        "remoteCloseCode": None}))),
                           key=_group_key)
    return out


def describe(v: dict[str, Any] | None) -> str:
    if v is None:
        return "missing"
    return f"{v['behavior']}/{v['behaviorClose']}/close={v['remoteCloseCode']}"


def summary_rows(runs: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per group: case count, verdict counts of each target, and how many equal the direct."""
    groups: dict[str, list[str]] = {}
    for cid in runs["direct"]:
        groups.setdefault(group_of(cid), []).append(cid)
    rows = []
    for group in sorted(groups, key=_group_key):
        ids = groups[group]
        row: dict[str, Any] = {"group": group, "cases": len(ids),
                               "required": all(is_required(c) for c in ids)}
        for name, run in runs.items():
            counts = Counter(run[c]["behavior"] for c in ids if c in run)
            close_bad = sum(1 for c in ids if c in run and run[c]["behaviorClose"]
                            not in ("OK", "INFORMATIONAL"))
            row[name] = {"verdicts": dict(counts), "closeNotOk": close_bad,
                         "passed": sum(1 for c in ids if c in run and run[c]["passed"])}
            if name != "direct":
                row[name]["sameAsDirect"] = sum(
                    1 for c in ids if c in run
                    and comparable(run[c]) == comparable(runs["direct"][c]))
        rows.append(row)
    return rows


def format_summary(rows: list[dict[str, Any]], names: list[str]) -> str:
    def cell(stats: dict[str, Any]) -> str:
        verdicts = " ".join(f"{k}:{v}" for k, v in sorted(stats["verdicts"].items()))
        return verdicts + (f" close!:{stats['closeNotOk']}" if stats["closeNotOk"] else "")

    header = f"{'group':7} {'cases':>5}  " + "  ".join(
        f"{n:32}" if n == "direct" else f"{n + ' (same/N)':44}" for n in names)
    lines = [header, "-" * len(header)]
    for row in rows:
        parts = []
        for n in names:
            stats = row[n]
            if n == "direct":
                parts.append(f"{cell(stats):32}")
            else:
                same = f"{stats['sameAsDirect']}/{row['cases']}"
                parts.append(f"{same:>8} {cell(stats):35}")
        mark = "*" if row["required"] else " "
        lines.append(f"{row['group'] + mark:7} {row['cases']:>5}  " + "  ".join(parts))
    lines.append("(* = required to equal the direct run; close!: close behaviour not OK)")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("wsgate", "kosoku", "autobahn", "twisted"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    binary = stunnel_binary()
    out["stunnel"] = binary or "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Autobahn TestSuite through wsgate versus direct (see the module doc).")
    parser.add_argument("--cases", action="append", metavar="GLOB",
                        help="case ids or globs (repeatable; default: all 517 cases)")
    parser.add_argument("--exclude", action="append", metavar="GLOB", default=[],
                        help="case ids or globs to leave out (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="only the quick subset: " + " ".join(QUICK))
    parser.add_argument("--wss", action="store_true",
                        help="also run through stunnel and wsgate's TLS entryPoint")
    parser.add_argument("--parallelism", type=int, default=1,
                        help="cases kosoku runs at once (default 1: timing cases stay exact)")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT,
                        help=f"JSON report path (default {DEFAULT_REPORT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    cases = list(QUICK) if args.quick else list(args.cases or [])
    started = time.monotonic()
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wsgate-autobahn-") as tmp, \
            targets(Path(tmp), wss=args.wss) as found:
        for name, url in found.urls.items():
            t0 = time.monotonic()
            print(f"running {'all' if not cases else ' '.join(cases)} against {name} ({url})",
                  flush=True)
            runs[name] = run_cases(url, cases, args.exclude, args.parallelism)
            timings[name] = round(time.monotonic() - t0, 1)
            print(f"  {len(runs[name])} cases in {timings[name]} s", flush=True)
    names = list(runs)
    rows = summary_rows(runs)
    diffs = compare(runs)
    print()
    print(format_summary(rows, names))
    failed = False
    for name, ids in diffs.items():
        required = [c for c in ids if is_required(c)]
        print(f"\n{name}: {len(runs['direct']) - len(ids)}/{len(runs['direct'])} cases equal "
              f"the direct run; {len(required)} required case(s) differ")
        for cid in ids:
            print(f"  {cid}{' (required)' if is_required(cid) else ''}: direct "
                  f"{describe(runs['direct'][cid])}, {name} {describe(runs[name].get(cid))}")
        failed = failed or bool(required)
    report = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python", "scripts/autobahn_suite.py", *(argv or sys.argv[1:])]),
        "versions": versions(), "targets": found.urls, "secondsPerTarget": timings,
        "secondsTotal": round(time.monotonic() - started, 1),
        "required": REQUIRED, "summary": rows, "differences": diffs,
        "cases": {cid: {name: runs[name].get(cid) for name in names}
                  for cid in sorted(runs["direct"], key=_group_key)},
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1))
    print(f"\nreport: {args.report}")
    return 1 if failed else 0


if __name__ == "__main__":
    status = main()
    # kosoku's native extension sometimes aborts during interpreter shutdown, after the run is
    # complete and reported; leave without that shutdown so the exit status stays the verdict.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
