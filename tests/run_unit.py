#!/usr/bin/env python3
"""Runs the cmocka unit-test binaries given as arguments and prints one
closing line "N passed, M failed" over all of them (cmocka prints its own
per-binary summary). Exit status 1 if any test or binary failed."""
import re
import subprocess
import sys

passed = failed = 0
for binary in sys.argv[1:]:
    p = subprocess.run([binary], capture_output=True, text=True, errors="replace")
    out = p.stdout + p.stderr
    sys.stdout.write(out)
    ok = re.findall(r"^\[  PASSED  \] (\d+) test", out, re.M)
    bad = re.findall(r"^\[  FAILED  \] (\d+) test", out, re.M)
    n_ok = sum(map(int, ok))
    n_bad = sum(map(int, bad))
    if p.returncode != 0 and n_bad == 0:
        n_bad = 1  # crashed or leaked (sanitizer) without a cmocka failure line
        print(f"{binary}: exited with {p.returncode}")
    passed += n_ok
    failed += n_bad
print(f"unit: {passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
