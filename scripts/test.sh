#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: install the system packages the tests use
# (tshark, redis-server, libwbxml2-utils) when missing and we are root, create .venv with the project and its
# test extras, then type-check gateway/ and adapters/ with mypy (configured in pyproject.toml; a
# type error fails the run before any test), then run pytest on 4 workers. Extra arguments go to
# pytest (e.g. ./scripts/test.sh -x -k smpp).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v xml2wbxml >/dev/null 2>&1 || missing+=(libwbxml2-utils)  # WAP Push WBXML checks
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # a throwaway certificate for the STARTTLS test
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q "${missing[@]}"
    else
        echo "test.sh: ${missing[*]} not installed (not root): the tests that need them are skipped" >&2
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
# (re)install when pyproject.toml changed since the last install (the checkout itself is
# installed editable: code changes need none)
stamp=.venv/.gateway-pyproject.sha256
if ! sha256sum --status -c "$stamp" 2>/dev/null; then
    .venv/bin/python -m pip install -q -e '.[test]'
    sha256sum pyproject.toml >"$stamp"
fi

if ! .venv/bin/python -m mypy; then
    echo "test.sh: mypy found type errors (see above); fix them before the tests run" >&2
    exit 1
fi

# Two passes. First everything but the `slow` tests on four pytest-xdist workers (the suite
# waits far more than it computes, so more workers than cores pay off; tests of one
# xdist_group share a worker; long tests that assert no rate, such as the randomized kill -9
# rounds, start first, two at a time). Then the `slow` tests (batch pacing, a paced
# 100,000-target batch killed half way, kill -9 at chosen points, a Redis outage under SMPP
# load) one at a time: they measure rates and timings that CPU starvation by three neighbours
# would break. PYTEST_WORKERS=0 runs the first pass in one process. Extra arguments go to both passes (without any, the second pass
# collects only the files that mark tests slow); "no tests collected" in one pass is fine, in
# both a failure.
set +e
.venv/bin/python -m pytest -q -n "${PYTEST_WORKERS:-4}" --dist loadgroup -m "not slow" "$@"
fast=$?
if [[ $# -gt 0 ]]; then
    .venv/bin/python -m pytest -q -m slow "$@"
    slow=$?
else
    mapfile -t slow_files < <(grep -rlE --include='test_*.py' 'mark\.slow\b' tests | sort)
    if [[ ${#slow_files[@]} -gt 0 ]]; then
        .venv/bin/python -m pytest -q -m slow "${slow_files[@]}"
        slow=$?
    else
        slow=5
    fi
fi
set -e
if [[ $fast -eq 5 && $slow -eq 5 ]]; then
    echo "test.sh: pytest collected no tests" >&2
    exit 1
fi
for code in $fast $slow; do
    if [[ $code -ne 0 && $code -ne 5 ]]; then
        exit $code
    fi
done
exit 0
