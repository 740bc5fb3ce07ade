"""Show what Traefik and wsgate did with each case of some batches, side by side.

    python -m tests.differential.show [BATCH ...] [--heads]

For investigating a difference by hand; the tests themselves are in test_differential.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.differential.corpus import differences, expectation_errors, load_batches, run_batch
from tests.differential.proxies import find_traefik


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("batches", nargs="*", help="batch names (default: all)")
    parser.add_argument("--heads", action="store_true", help="print both backend heads")
    args = parser.parse_args()
    binary = find_traefik()
    if binary is None:
        print("no Traefik binary (see tests/differential/proxies.py)", file=sys.stderr)
        return 2
    batches = [b for b in load_batches() if not args.batches or b.name in args.batches]
    for batch in batches:
        with tempfile.TemporaryDirectory() as tmp:
            run = run_batch(batch, Path(tmp), binary)
        print(f"== {batch.name}")
        for case in batch.cases:
            t, w = run.observations[case.name]
            diff = differences(t, w, case.response_headers)
            wrong = expectation_errors(case, t)
            mark = "same" if not diff else "DIFF"
            print(f"  {case.name:48} {mark:4}  traefik: {t.describe()}  wsgate: {w.describe()}")
            for key, value in diff.items():
                print(f"      {key}: {value}")
            for error in wrong:
                print(f"      expectation not met by Traefik: {error}")
            if args.heads:
                for who, obs in (("traefik", t), ("wsgate", w)):
                    if obs.seen is not None:
                        print(f"      {who}: {obs.seen.method} {obs.seen.target}")
                        for name, value in obs.seen.headers:
                            print(f"        {name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
