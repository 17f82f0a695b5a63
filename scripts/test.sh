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
.venv/bin/python -m pip install -q -e '.[test]'

if ! .venv/bin/python -m mypy; then
    echo "test.sh: mypy found type errors (see above); fix them before the tests run" >&2
    exit 1
fi

# Four pytest-xdist workers (the suite waits far more than it computes, so more workers than
# cores pay off); tests of one xdist_group run on the same worker; the long tests are
# scheduled first (tests/conftest.py). PYTEST_WORKERS=0 runs in one process.
set +e
.venv/bin/python -m pytest -q -n "${PYTEST_WORKERS:-4}" --dist loadgroup "$@"
code=$?
set -e
if [[ $code -eq 5 ]]; then
    echo "test.sh: pytest collected no tests" >&2
    exit 1
fi
exit $code
