#!/bin/bash
# Runs pty_test.py, the tests of `msb exec -t` and `msb shell` on a real
# pseudo-terminal, with the system's Python (it needs the standard library
# alone). A watchdog bounds the whole run.
cd "$(dirname "$0")/../.." || exit 1
exec timeout 300 /usr/bin/python3 tests/e2e/pty_test.py
