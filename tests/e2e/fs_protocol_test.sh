#!/bin/bash
# Runs fs_protocol_test.py, the wire-level tests of the file operations of
# the agent protocol, with the system's Python (it needs python3-cbor2).
exec /usr/bin/python3 "$(dirname "$0")/fs_protocol_test.py" "$@"
