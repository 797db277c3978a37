"""End-to-end tests of `msb exec -t -i` and `msb shell` on a real terminal.

msb runs with a pseudo-terminal as its stdin, stdout, stderr and
controlling terminal, as it would under a terminal emulator. The test
types into the master side and reads what msb writes back. One sandbox
serves all sessions. Each case prints "ok NAME" or "FAIL NAME: detail";
the last line is "N passed, N failed".
"""

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

MSB = os.environ.get("MSB") or os.path.join(os.getcwd(), "build", "msb")
MSB_TIMEOUT_S = 120
NAME = f"pty-test-{os.getpid()}"
INITIAL_SIZE = (33, 101)
RESIZED_SIZE = (41, 127)
# The prompt that the shells get. The command that sets it is typed as
# PS1='MS''BP> ', so its echo does not contain the prompt itself.
PROMPT = b"MSBP> "
SET_PROMPT = b"PS1='MS''BP> '\n"
CTRL_C_LIMIT_S = 1.0

passed = 0
failed = 0


def report(name, error):
    global passed, failed
    if error is None:
        print(f"ok {name}", flush=True)
        passed += 1
    else:
        print(f"FAIL {name}: {error}", flush=True)
        failed += 1


def msb(*args, timeout=MSB_TIMEOUT_S):
    """Run msb without a terminal and return the CompletedProcess."""
    return subprocess.run([MSB, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def set_window_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class CaseError(Exception):
    """A failed check. Its message is the case's detail."""


class TerminalSession:
    """msb running on a new pseudo-terminal that it has as its controlling
    terminal. The test keeps the slave side open too, so that it can read
    the terminal's mode and size after msb exits."""

    def __init__(self, argv):
        self.master, self.slave = os.openpty()
        set_window_size(self.slave, *INITIAL_SIZE)
        self.termios_before = termios.tcgetattr(self.slave)
        self.output = b""

        def take_terminal():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(
            argv,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
            preexec_fn=take_terminal,
        )

    def read_some(self, timeout):
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.output += os.read(self.master, 65536)
            except OSError:
                pass

    def expect(self, pattern, timeout, description):
        """Wait for pattern (a bytes regex) in the output, consume the
        output up to the end of the match and return the match."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output)
            if match:
                self.output = self.output[match.end():]
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise CaseError(f"no {description} within {timeout} s; output so far {self.output[-300:]!r}")
            if self.process.poll() is not None:
                self.read_some(0.2)
                if not re.search(pattern, self.output):
                    raise CaseError(f"msb exited with status {self.process.returncode} before {description}; "
                                    f"output {self.output[-300:]!r}")
            self.read_some(min(left, 0.1))

    def send(self, data):
        os.write(self.master, data)

    def run(self, command, timeout=20):
        """Type command, wait for the next prompt and return the output in
        between, with the echoed command line removed."""
        self.send(command + b"\n")
        output = self.expect(re.escape(PROMPT), timeout, f"prompt after {command!r}").string
        text = output[:output.find(PROMPT)]
        # The terminal echoes the command first, and bash's bracketed
        # paste mode adds escape sequences around the output.
        text = re.sub(rb"\x1b\[\?2004[hl]", b"", text).replace(b"\r", b"")
        lines = text.split(b"\n")
        return b"\n".join(lines[1:]) if lines and command in lines[0] else text

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
        os.close(self.slave)


def stty_size(session):
    out = session.run(b"stty size")
    match = re.search(rb"^(\d+) (\d+)$", out, re.M)
    if not match:
        raise CaseError(f"stty size printed {out!r}")
    return int(match.group(1)), int(match.group(2))


def sleep_100_count():
    """Count the `sleep 100` processes in the guest, from a separate exec."""
    script = (
        "import glob\n"
        "n = 0\n"
        "for p in glob.glob('/proc/[0-9]*/cmdline'):\n"
        "    try:\n"
        "        n += open(p, 'rb').read() == b'sleep\\x00100\\x00'\n"
        "    except OSError:\n"
        "        pass\n"
        "print(n)\n"
    )
    result = msb("exec", NAME, "--", "python3", "-c", script, timeout=30)
    if result.returncode != 0:
        raise CaseError(f"counting sleep processes failed: status {result.returncode}, stderr {result.stderr!r}")
    return int(result.stdout)


def test_session(prefix, argv, login_check):
    """Run the cases of one terminal session, with names that start with prefix."""
    session = TerminalSession(argv)
    broken = None

    def case(name, fn):
        nonlocal broken
        if broken:
            report(f"{prefix}_{name}", f"not run because {broken} failed")
            return
        try:
            fn()
            report(f"{prefix}_{name}", None)
        except CaseError as e:
            report(f"{prefix}_{name}", str(e))
            broken = f"{prefix}_{name}"
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            report(f"{prefix}_{name}", f"{type(e).__name__}: {e}")
            broken = f"{prefix}_{name}"

    def prompt():
        session.expect(rb"[#$] $", 30, "shell prompt")
        session.send(SET_PROMPT)
        session.expect(re.escape(PROMPT), 10, "prompt after setting PS1")

    def terminal_raw():
        lflag = termios.tcgetattr(session.slave)[3]
        if lflag & (termios.ICANON | termios.ECHO | termios.ISIG):
            raise CaseError(f"host terminal lflag is {lflag:#o}; ICANON, ECHO and ISIG should be off")

    def login_shell():
        out = session.run(b"shopt login_shell")
        if not re.search(rb"login_shell\s+on", out):
            raise CaseError(f"`shopt login_shell` printed {out!r}, expected login_shell on")

    def size_initial():
        size = stty_size(session)
        if size != INITIAL_SIZE:
            raise CaseError(f"stty size is {size}, expected {INITIAL_SIZE}")

    def size_after_winch():
        set_window_size(session.slave, *RESIZED_SIZE)
        session.process.send_signal(signal.SIGWINCH)
        # bash's readline redraws its line on SIGWINCH. That output is
        # dropped so that it is not taken for the output of `stty size`.
        time.sleep(0.5)
        session.read_some(0.1)
        session.output = b""
        size = stty_size(session)
        if size != RESIZED_SIZE:
            raise CaseError(f"stty size is {size} after the resize, expected {RESIZED_SIZE}")

    def ctrl_c_kills_sleep():
        session.send(b"sleep 100\n")
        session.expect(rb"sleep 100\r\n", 10, "echo of `sleep 100`")
        time.sleep(0.5)
        if sleep_100_count() != 1:
            raise CaseError("`sleep 100` is not running in the guest before the Ctrl-C")
        sent = time.monotonic()
        session.send(b"\x03")
        session.expect(re.escape(PROMPT), 5, "prompt after Ctrl-C")
        took = time.monotonic() - sent
        if took > CTRL_C_LIMIT_S:
            raise CaseError(f"the prompt came back {took:.2f} s after Ctrl-C, expected within {CTRL_C_LIMIT_S} s")
        if session.process.poll() is not None:
            raise CaseError(f"msb exited with status {session.process.returncode} on Ctrl-C")
        count = sleep_100_count()
        if count != 0:
            raise CaseError(f"{count} `sleep 100` processes remain in the guest after Ctrl-C")

    def status_130():
        out = session.run(b"echo $?").strip()
        if out != b"130":
            raise CaseError(f"`echo $?` printed {out!r} after Ctrl-C, expected 130")

    def exit_7():
        session.send(b"exit 7\n")
        try:
            status = session.process.wait(10)
        except subprocess.TimeoutExpired:
            raise CaseError(f"msb still runs 10 s after `exit 7`; output {session.output[-300:]!r}")
        if status != 7:
            raise CaseError(f"msb exited with status {status}, expected 7")

    def termios_restored():
        after = termios.tcgetattr(session.slave)
        if after != session.termios_before:
            raise CaseError(f"terminal mode before {session.termios_before[:4]}, after {after[:4]}")

    try:
        case("prompt", prompt)
        case("terminal_raw", terminal_raw)
        if login_check:
            case("login_shell", login_shell)
        case("size_initial", size_initial)
        case("size_after_winch", size_after_winch)
        case("ctrl_c_kills_sleep", ctrl_c_kills_sleep)
        case("status_130", status_130)
        case("exit_7", exit_7)
        # The restored mode is checked even when an earlier case failed,
        # once msb has exited one way or another.
        broken = None
        if session.process.poll() is not None:
            case("termios_restored", termios_restored)
            return
        # msb passes SIGTERM on to the command, which an interactive shell
        # ignores, but it ends the session on SIGHUP (a closed terminal).
        session.process.send_signal(signal.SIGHUP)
        try:
            session.process.wait(10)
            case("termios_restored", termios_restored)
        except subprocess.TimeoutExpired:
            report(f"{prefix}_termios_restored", "msb still runs 10 s after SIGHUP")
    finally:
        session.close()


def test_sigterm():
    """SIGTERM to msb ends a command that does not handle it, and msb then
    restores the terminal mode."""
    session = TerminalSession([MSB, "exec", "-t", "-i", NAME, "--", "sleep", "100"])
    try:
        deadline = time.monotonic() + 30
        while sleep_100_count() != 1:
            if time.monotonic() > deadline or session.process.poll() is not None:
                report("sigterm_ends_session", f"`sleep 100` did not start; output {session.output[-300:]!r}")
                return
            session.read_some(0.2)
        session.process.send_signal(signal.SIGTERM)
        try:
            status = session.process.wait(10)
        except subprocess.TimeoutExpired:
            report("sigterm_ends_session", "msb still runs 10 s after SIGTERM")
            return
        if status != 128 + signal.SIGTERM:
            report("sigterm_ends_session", f"msb exited with status {status}, expected {128 + signal.SIGTERM}")
        elif sleep_100_count() != 0:
            report("sigterm_ends_session", "`sleep 100` still runs in the guest")
        else:
            report("sigterm_ends_session", None)
        after = termios.tcgetattr(session.slave)
        if after != session.termios_before:
            report("sigterm_termios_restored",
                   f"terminal mode before {session.termios_before[:4]}, after {after[:4]}")
        else:
            report("sigterm_termios_restored", None)
    except (CaseError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        report("sigterm_ends_session", f"{type(e).__name__}: {e}")
    finally:
        session.close()


def main():
    start = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        created = msb("create", NAME)
        if created.returncode != 0:
            report("sandbox_create", f"status {created.returncode}, stderr {created.stderr!r}")
        else:
            test_session("exec", [MSB, "exec", "-t", "-i", NAME, "--", "/bin/sh", "-i"], False)
            test_session("shell", [MSB, "shell", NAME], True)
            test_sigterm()
    finally:
        try:
            msb("rm", "--force", NAME, timeout=60)
        except subprocess.TimeoutExpired:
            print(f"# msb rm --force {NAME} timed out", flush=True)
    print(f"# suite took {time.monotonic() - start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
