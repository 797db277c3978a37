"""End-to-end tests of the file operations of the agent protocol, on the wire.

The test boots one sandbox with `msb create`, connects to its agent socket
as a client of the relay and sends core.fs.request frames that it encodes
itself with cbor2. It checks the core.fs.data and core.fs.response frames
that come back, and the guest's file system through the protocol or through
`msb exec`. Each case prints "ok NAME" or "FAIL NAME: detail"; the last line
is "N passed, N failed", and the exit status is 1 when a case failed.

Runs with the system's Python and needs only the standard library and cbor2
(Debian's python3-cbor2).
"""

import hashlib
import os
import random
import shlex
import socket
import struct
import subprocess
import sys
import time
import traceback

import cbor2

MSB = os.environ.get("MSB") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "build", "msb"))
MSB_HOME = os.environ.get("MSB_HOME") or os.path.join(os.path.expanduser("~"), ".msb")
NAME = f"fsp-test-{os.getpid()}"
MSB_TIMEOUT_S = 60
# How long a request may take before its case fails as a hang.
REQUEST_TIMEOUT_S = 10
# How long a case waits for a response that may never come (malformed input).
SILENCE_WAIT_S = 1.0

GENERATION = 3
FLAG_TERMINAL = 0x01
FLAG_SESSION_START = 0x02
FLAG_SHUTDOWN = 0x04
FLAGS_OF_TYPE = {
    "core.fs.request": FLAG_SESSION_START,
    "core.fs.data": 0,
    "core.fs.response": FLAG_TERMINAL,
}
# The protocol allows core.fs.data chunks of up to 3 MiB.
MAX_CHUNK_BYTES = 3 * 1024 * 1024
MAX_FRAME_LEN = 4 * 1024 * 1024
MAX_HANDLES_PER_CLIENT = 1024
MIB = 1024 * 1024

# The guest directory for this run. Every case works below it.
ROOT = "/tmp/fsp"

ERRNO = {"ENOENT": 2, "EBADF": 9, "EEXIST": 17, "ENOTDIR": 20, "EISDIR": 21, "EINVAL": 22, "EMFILE": 24,
         "ENOSPC": 28, "ENOTEMPTY": 39}
ENTRY_KEYS = {"path", "kind", "size", "mode", "modified", "uid", "gid", "atime", "mtime"}

passed = 0
failed = 0


class CaseError(Exception):
    """A failed check. Its message is the case's detail."""


def check(condition, detail):
    if not condition:
        raise CaseError(detail)


# ---- msb and the guest ----


def msb(*args, timeout=MSB_TIMEOUT_S):
    """Run msb and return the CompletedProcess."""
    return subprocess.run([MSB, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def guest(script):
    """Run a shell script in the sandbox and return its stdout as text.
    Raise CaseError when it exits non-zero."""
    result = msb("exec", NAME, "--", "sh", "-c", script)
    if result.returncode != 0:
        raise CaseError(f"guest script {script!r} exited with {result.returncode}: "
                        f"stdout {result.stdout[-300:]!r} stderr {result.stderr[-300:]!r}")
    return result.stdout.decode()


def guest_status(script):
    """Run a shell script in the sandbox and return its exit status."""
    return msb("exec", NAME, "--", "sh", "-c", script).returncode


def quote(path):
    return shlex.quote(path)


# ---- The client ----


def encode_frame(frame_id, msg_type, payload, flags=None):
    """Encode one frame: u32 BE len, u32 BE id, u8 flags, then the CBOR body
    {v, t, p} with the CBOR payload inside the byte string p."""
    if flags is None:
        flags = FLAGS_OF_TYPE[msg_type]
    body = cbor2.dumps({"v": GENERATION, "t": msg_type, "p": cbor2.dumps(payload)})
    return struct.pack(">IIB", 5 + len(body), frame_id, flags) + body


class Frame:
    def __init__(self, frame_id, flags, version, msg_type, payload):
        self.id = frame_id
        self.flags = flags
        self.version = version
        self.type = msg_type
        self.payload = payload

    def __repr__(self):
        output = self.payload
        if self.type == "core.fs.data":
            output = f"<{len(self.payload.get('data') or b'')} bytes>"
        return f"Frame(id={self.id:#x}, flags={self.flags:#x}, t={self.type!r}, p={output!r})"


class Reply:
    """The data chunks and the response payload returned for one request."""

    def __init__(self, chunks, response, response_frame):
        self.chunks = chunks
        self.response = response
        self.frame = response_frame

    @property
    def data(self):
        return b"".join(self.chunks)

    def __repr__(self):
        return f"Reply({len(self.chunks)} data frames, {len(self.data)} bytes, response={self.response!r})"


class Client:
    """One connection to the relay: the handshake, then frames by id."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(REQUEST_TIMEOUT_S)
        self.sock.connect(os.path.join(MSB_HOME, "sandboxes", NAME, "agent.sock"))
        self.buffer = b""
        # Frames received for other ids, kept until a caller asks for them.
        self.inbox = {}
        self.closed = False

        self.id_start, self.id_end = struct.unpack(">II", self.recv_exact(8, REQUEST_TIMEOUT_S))
        check(self.id_start < self.id_end, f"handshake gave an empty id range {self.id_start:#x}..{self.id_end:#x}")
        ready = self.read_frame(REQUEST_TIMEOUT_S)
        check(ready is not None and ready.type == "core.ready", f"the handshake's frame is {ready!r}, not core.ready")
        self.next_id = self.id_start

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()

    def new_id(self):
        check(self.next_id < self.id_end, "the client ran out of ids")
        frame_id = self.next_id
        self.next_id += 1
        return frame_id

    def send(self, data):
        self.sock.settimeout(REQUEST_TIMEOUT_S)
        self.sock.sendall(data)

    def recv_exact(self, count, timeout):
        """Return count bytes, or raise CaseError on a timeout or EOF."""
        deadline = time.monotonic() + timeout
        while len(self.buffer) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout
            self.sock.settimeout(left)
            data = self.sock.recv(max(65536, count - len(self.buffer)))
            if not data:
                raise CaseError(f"the relay closed the connection ({len(self.buffer)} of {count} bytes buffered)")
            self.buffer += data
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out

    def read_frame(self, timeout):
        """Return the next frame, or None when none arrives within timeout."""
        try:
            header = self.recv_exact(9, timeout)
        except socket.timeout:
            return None
        length, frame_id, flags = struct.unpack(">IIB", header)
        check(5 <= length <= MAX_FRAME_LEN, f"received a frame with len {length}")
        body = self.recv_exact(length - 5, REQUEST_TIMEOUT_S)
        outer = cbor2.loads(body)
        check(isinstance(outer, dict) and {"v", "t", "p"} <= set(outer),
              f"frame body is not a {{v, t, p}} map: {outer!r:.200}")
        payload = cbor2.loads(outer["p"])
        return Frame(frame_id, flags, outer["v"], outer["t"], payload)

    def next_frame_for(self, frame_id, timeout):
        """Return the next frame on frame_id, or None after timeout."""
        queued = self.inbox.get(frame_id)
        if queued:
            return queued.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            frame = self.read_frame(left)
            if frame is None:
                return None
            if frame.id == frame_id:
                return frame
            self.inbox.setdefault(frame.id, []).append(frame)

    def send_request(self, op, fields, frame_id=None):
        """Send one core.fs.request for {op: fields} and return its id."""
        if frame_id is None:
            frame_id = self.new_id()
        self.send(encode_frame(frame_id, "core.fs.request", {"op": {op: fields}}))
        return frame_id

    def send_data(self, frame_id, data):
        self.send(encode_frame(frame_id, "core.fs.data", {"data": bytes(data)}))

    def collect(self, frame_id, timeout=REQUEST_TIMEOUT_S):
        """Collect the core.fs.data frames and the core.fs.response of one
        request. A request that gets no response within timeout fails its
        case."""
        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            frame = self.next_frame_for(frame_id, max(0.0, deadline - time.monotonic()))
            if frame is None:
                raise CaseError(f"no core.fs.response on id {frame_id:#x} within {timeout} s "
                                f"({len(chunks)} data frames, {sum(map(len, chunks))} bytes before)")
            check(frame.version == GENERATION, f"{frame!r} has generation {frame.version}, expected {GENERATION}")
            if frame.type == "core.fs.data":
                check(frame.flags == 0, f"core.fs.data has flags {frame.flags:#x}, expected 0")
                chunks.append(frame.payload["data"])
                continue
            check(frame.type == "core.fs.response", f"unexpected frame {frame!r}")
            check(frame.flags == FLAG_TERMINAL, f"core.fs.response has flags {frame.flags:#x}, expected TERMINAL")
            return Reply(chunks, frame.payload, frame)

    def request(self, op, fields, data_frames=(), end_with_empty=True, timeout=REQUEST_TIMEOUT_S):
        """Send a request, then data_frames on its id (and an empty data
        frame when end_with_empty and there were any), and return the
        Reply."""
        frame_id = self.send_request(op, fields)
        for data in data_frames:
            self.send_data(frame_id, data)
        if data_frames and end_with_empty:
            self.send_data(frame_id, b"")
        return self.collect(frame_id, timeout)

    # Shorthands that check for a successful response.

    def ok(self, op, fields, **kwargs):
        reply = self.request(op, fields, **kwargs)
        check(reply.response.get("ok") is True, f"{op} {fields!r:.200} failed: {reply.response!r}")
        check(reply.response.get("error") is None, f"{op} succeeded but carries error {reply.response!r}")
        return reply

    def stat(self, path, follow=False):
        entry = self.ok("Stat", {"path": path, "follow_symlink": follow}).response["data"]["Stat"]
        check_entry(entry)
        return entry

    def open(self, path, read=False, write=False, append=False, create=False, truncate=False, create_new=False,
             mode=None):
        options = {"read": read, "write": write, "append": append, "create": create, "truncate": truncate,
                   "create_new": create_new, "mode": mode}
        reply = self.ok("OpenFile", {"path": path, "options": options})
        return handle_of(reply)

    def close_handle(self, handle):
        self.ok("CloseHandle", {"handle": handle})

    def write(self, handle, data, offset=0, chunk=MIB):
        frames = [data[i:i + chunk] for i in range(0, len(data), chunk)]
        return self.ok("Write", {"handle": handle, "offset": offset, "len": None}, data_frames=frames,
                       end_with_empty=True)

    def read(self, handle, offset=0, length=None):
        return self.ok("Read", {"handle": handle, "offset": offset, "len": length}, timeout=30)


def handle_of(reply):
    data = reply.response.get("data")
    check(isinstance(data, dict) and isinstance(data.get("Handle"), int), f"no Handle in {reply.response!r}")
    return data["Handle"]


def check_entry(entry):
    check(isinstance(entry, dict), f"entry is {entry!r}")
    missing = ENTRY_KEYS - set(entry)
    check(not missing, f"entry lacks {sorted(missing)}: {entry!r}")
    check(entry["kind"] in ("file", "dir", "symlink", "other"), f"entry kind {entry['kind']!r}")
    check(entry["mode"] == entry["mode"] & 0o7777, f"entry mode {entry['mode']:#o} has bits beyond 07777")
    check(entry["modified"] == entry["mtime"], f"modified {entry['modified']} differs from mtime {entry['mtime']}")


def check_error(reply, name, path=None):
    """Check a failed response: ok false, errno and errno_name naming the
    expected error, and a message that names path."""
    response = reply.response
    check(reply.chunks == [], f"a failed request sent {len(reply.chunks)} data frames first")
    check(response.get("ok") is False, f"expected {name}, got {response!r}")
    check(response.get("data") is None, f"failed response carries data {response!r}")
    check(response.get("errno") == ERRNO[name], f"errno {response.get('errno')!r}, expected {ERRNO[name]} ({name}): "
          f"{response!r}")
    check(response.get("errno_name") == name, f"errno_name {response.get('errno_name')!r}, expected {name!r}")
    message = response.get("error")
    check(isinstance(message, str) and message, f"error message is {message!r}")
    if path is not None:
        check(path in message, f"error message {message!r} does not name {path!r}")


def list_entries(reply):
    data = reply.response.get("data")
    check(isinstance(data, dict) and isinstance(data.get("List"), list), f"no List in {reply.response!r}")
    for entry in data["List"]:
        check_entry(entry)
    return data["List"]


def guest_sha256(path):
    return guest(f"sha256sum {quote(path)}").split()[0]


def guest_mode(path):
    return int(guest(f"stat -c %a {quote(path)}").strip(), 8)


def pattern_bytes(size, seed):
    return random.Random(seed).randbytes(size)


# ---- Cases on paths ----


def case_mkdir_parents_mode(c):
    path = f"{ROOT}/mkdir/a/b/c"
    c.ok("Mkdir", {"path": path, "mode": 0o750})
    entry = c.stat(path)
    check(entry["kind"] == "dir", f"{path} is {entry['kind']}, expected dir")
    check(entry["mode"] == 0o750, f"{path} has mode {entry['mode']:#o}, expected 0o750")
    check(entry["path"] == path, f"Stat entry path {entry['path']!r}, expected {path!r}")
    for parent in (f"{ROOT}/mkdir/a", f"{ROOT}/mkdir/a/b"):
        check(c.stat(parent)["kind"] == "dir", f"parent {parent} is not a directory")
    check(guest_mode(path) == 0o750, f"guest stat shows mode {guest_mode(path):#o} for {path}")


def case_mkdir_over_file_fails(c):
    path = f"{ROOT}/mkdir-file"
    guest(f"mkdir -p {ROOT} && : > {quote(path)}")
    check_error(c.request("Mkdir", {"path": path, "mode": None}), "EEXIST", path)


def case_stat_follow_vs_nofollow(c):
    d = f"{ROOT}/stat"
    guest(f"mkdir -p {d} && printf hello > {d}/target && ln -s target {d}/link")
    followed = c.stat(f"{d}/link", follow=True)
    check(followed["kind"] == "file", f"Stat follow_symlink=true gave kind {followed['kind']!r}, expected file")
    check(followed["size"] == 5, f"Stat follow_symlink=true gave size {followed['size']}, expected 5")
    check(followed["path"] == f"{d}/link", f"entry path {followed['path']!r}")
    link = c.stat(f"{d}/link", follow=False)
    check(link["kind"] == "symlink", f"Stat follow_symlink=false gave kind {link['kind']!r}, expected symlink")
    check(link["size"] == len("target"), f"symlink size {link['size']}, expected {len('target')}")


def case_setstat_mode_mtime(c):
    path = f"{ROOT}/setstat"
    guest(f"mkdir -p {ROOT} && printf data > {quote(path)}")
    attrs = {"mode": 0o640, "uid": None, "gid": None, "size": None, "atime": 1_000_000_001, "mtime": 1_000_000_000}
    c.ok("SetStat", {"path": path, "follow_symlink": True, "attrs": attrs})
    entry = c.stat(path)
    check(entry["mode"] == 0o640, f"mode {entry['mode']:#o}, expected 0o640")
    check(entry["mtime"] == 1_000_000_000, f"mtime {entry['mtime']}, expected 1000000000")
    check(entry["atime"] == 1_000_000_001, f"atime {entry['atime']}, expected 1000000001")
    check(entry["size"] == 4, f"size changed to {entry['size']} though attrs.size was null")
    output = guest(f"stat -c '%a %Y %X' {quote(path)}").split()
    check(output == ["640", "1000000000", "1000000001"], f"guest stat shows {output}")


def case_setstat_negative_mtime(c):
    path = f"{ROOT}/setstat-old"
    guest(f"mkdir -p {ROOT} && : > {quote(path)}")
    attrs = {"mode": None, "uid": None, "gid": None, "size": None, "atime": None, "mtime": -86400}
    c.ok("SetStat", {"path": path, "follow_symlink": True, "attrs": attrs})
    entry = c.stat(path)
    check(entry["mtime"] == -86400, f"mtime {entry['mtime']}, expected -86400")
    check(entry["modified"] == -86400, f"modified {entry['modified']}, expected -86400")
    check(entry["mode"] == 0o644, f"mode changed to {entry['mode']:#o} though attrs.mode was null")
    output = guest(f"stat -c %Y {quote(path)}").strip()
    check(output == "-86400", f"guest stat shows mtime {output}")


def case_setstat_nofollow_leaves_target(c):
    d = f"{ROOT}/setstat-link"
    guest(f"mkdir -p {d} && printf t > {d}/target && chmod 0644 {d}/target && touch -d @1000 {d}/target "
          f"&& ln -s target {d}/link")
    nothing = {"mode": None, "uid": None, "gid": None, "size": None, "atime": None, "mtime": None}
    c.ok("SetStat", {"path": f"{d}/link", "follow_symlink": False, "attrs": dict(nothing, mtime=5000)})
    link = c.stat(f"{d}/link")
    check(link["mtime"] == 5000, f"the symlink's mtime is {link['mtime']}, expected 5000")
    target = c.stat(f"{d}/target")
    check(target["mtime"] == 1000, f"SetStat follow_symlink=false changed the target's mtime to {target['mtime']}")

    # Linux has no mode for a symlink itself, so the request may fail, but
    # it must not reach through the link.
    reply = c.request("SetStat", {"path": f"{d}/link", "follow_symlink": False, "attrs": dict(nothing, mode=0o600)})
    target = c.stat(f"{d}/target")
    check(target["mode"] == 0o644, f"SetStat follow_symlink=false mode=0o600 on {d}/link changed the target's mode "
          f"to {target['mode']:#o} (response {reply.response!r})")


def case_list_full_paths_kinds(c):
    d = f"{ROOT}/list"
    guest(f"mkdir -p {d}/sub && printf 123 > {d}/file && ln -s file {d}/link && mkfifo {d}/fifo")
    entries = list_entries(c.ok("List", {"path": d}))
    got = sorted((e["path"], e["kind"]) for e in entries)
    expected = sorted([(f"{d}/sub", "dir"), (f"{d}/file", "file"), (f"{d}/link", "symlink"),
                       (f"{d}/fifo", "other")])
    check(got == expected, f"List returned {got}, expected {expected}")
    sizes = {e["path"]: e["size"] for e in entries}
    check(sizes[f"{d}/file"] == 3, f"file size {sizes[f'{d}/file']}, expected 3")


def case_list_trailing_slash(c):
    d = f"{ROOT}/list-slash"
    guest(f"mkdir -p {d} && : > {d}/only")
    paths = [e["path"] for e in list_entries(c.ok("List", {"path": d + "/"}))]
    check(paths == [f"{d}/only"], f"List of {d}/ returned {paths}")


def case_readlink(c):
    d = f"{ROOT}/readlink"
    guest(f"mkdir -p {d} && ln -s ../some/where {d}/link && : > {d}/plain")
    reply = c.ok("ReadLink", {"path": f"{d}/link"})
    check(reply.response["data"] == {"Path": "../some/where"}, f"ReadLink returned {reply.response['data']!r}")
    check_error(c.request("ReadLink", {"path": f"{d}/plain"}), "EINVAL", f"{d}/plain")


def case_symlink(c):
    d = f"{ROOT}/symlink"
    guest(f"mkdir -p {d}")
    c.ok("Symlink", {"target": "../dangling/target", "link_path": f"{d}/link"})
    output = guest(f"readlink {d}/link").strip()
    check(output == "../dangling/target", f"guest readlink shows {output!r}")
    check(c.stat(f"{d}/link")["kind"] == "symlink", "Stat does not show a symlink")
    check_error(c.request("Symlink", {"target": "x", "link_path": f"{d}/link"}), "EEXIST", f"{d}/link")


def case_realpath(c):
    d = f"{ROOT}/realpath"
    guest(f"mkdir -p {d}/real/sub && ln -s real {d}/via")
    requested = f"{d}/via/sub/../sub"
    expected = guest(f"realpath {quote(requested)}").strip()
    check(expected.endswith("/realpath/real/sub"), f"guest realpath gives {expected!r}")
    reply = c.ok("RealPath", {"path": requested})
    check(reply.response["data"] == {"Path": expected}, f"RealPath returned {reply.response['data']!r}, "
          f"expected {expected!r}")
    check_error(c.request("RealPath", {"path": f"{d}/missing/x"}), "ENOENT", f"{d}/missing/x")


def case_remove_file(c):
    path = f"{ROOT}/remove-me"
    guest(f"mkdir -p {ROOT} && printf x > {quote(path)}")
    c.ok("Remove", {"path": path})
    check_error(c.request("Stat", {"path": path, "follow_symlink": False}), "ENOENT", path)
    check(guest_status(f"test -e {quote(path)}") == 1, f"{path} still exists in the guest")
    check_error(c.request("Remove", {"path": path}), "ENOENT", path)


def case_remove_on_directory_fails(c):
    path = f"{ROOT}/remove-dir"
    guest(f"mkdir -p {quote(path)}")
    check_error(c.request("Remove", {"path": path}), "EISDIR", path)
    check(c.stat(path)["kind"] == "dir", "the directory is gone")


def case_removedir_nonrecursive_enotempty(c):
    d = f"{ROOT}/rmdir"
    guest(f"mkdir -p {d}/a/b && printf x > {d}/a/b/f && mkdir -p {ROOT}/rmdir-outside "
          f"&& printf keep > {ROOT}/rmdir-outside/kept && ln -s {ROOT}/rmdir-outside {d}/a/out")
    check_error(c.request("RemoveDir", {"path": d, "recursive": False}), "ENOTEMPTY", d)
    check(guest_status(f"test -f {d}/a/b/f") == 0, "the non-recursive RemoveDir removed content")
    c.ok("RemoveDir", {"path": d, "recursive": True})
    check(guest_status(f"test -e {d} || test -L {d}") == 1, f"{d} still exists")
    outside = guest(f"cat {ROOT}/rmdir-outside/kept")
    check(outside == "keep", f"recursive RemoveDir followed a symlink out of the tree: the file outside "
          f"reads {outside!r}")


def case_removedir_empty(c):
    d = f"{ROOT}/rmdir-empty"
    guest(f"mkdir -p {d}")
    c.ok("RemoveDir", {"path": d, "recursive": False})
    check(guest_status(f"test -e {d}") == 1, f"{d} still exists")


def case_copy_file(c):
    src, dst = f"{ROOT}/copy-src", f"{ROOT}/copy-dst"
    content = pattern_bytes(300_000, 1)
    handle = c.open(src, write=True, create=True, truncate=True, mode=0o600)
    c.write(handle, content)
    c.close_handle(handle)
    guest(f"chmod 0754 {quote(src)}")
    c.ok("Copy", {"src": src, "dst": dst})
    check(guest_sha256(dst) == hashlib.sha256(content).hexdigest(), "copied content differs")
    check(guest_mode(dst) == 0o754, f"copy has mode {guest_mode(dst):#o}, expected 0o754")
    check(guest_sha256(src) == hashlib.sha256(content).hexdigest(), "the source changed")


def case_copy_tree(c):
    src, dst = f"{ROOT}/tree-src", f"{ROOT}/tree-dst"
    guest(f"mkdir -p {src}/sub/deeper && printf one > {src}/one && printf two > {src}/sub/two "
          f"&& head -c 2500000 /dev/urandom > {src}/sub/deeper/big && ln -s ../one {src}/sub/link "
          f"&& chmod 0600 {src}/one && chmod 0751 {src}/sub/two && chmod 0700 {src}/sub/deeper "
          f"&& chmod 0750 {src}/sub && chmod 0755 {src}")
    c.ok("Copy", {"src": src, "dst": dst})
    listing = ("cd {0} && find . -printf '%p %y %m %s %l\\n' | sort && "
               "find . -type f -print0 | sort -z | xargs -0 sha256sum")
    before = guest(listing.format(src))
    after = guest(listing.format(dst))
    check(before == after, f"the copy differs from the source:\nsource:\n{before}\ncopy:\n{after}")
    check(c.stat(f"{dst}/sub/link")["kind"] == "symlink", "the symlink was not copied as a symlink")


def case_copy_keeps_group_write_bits(c):
    src, dst = f"{ROOT}/copy-modes-src", f"{ROOT}/copy-modes-dst"
    guest(f"mkdir -p {src} && printf shared > {src}/file && chmod 0664 {src}/file && chmod 0775 {src}")
    c.ok("Copy", {"src": src, "dst": dst})
    modes = guest(f"stat -c '%a' {dst} {dst}/file").split()
    check(modes == ["775", "664"], f"copies of a 0775 directory and a 0664 file have modes {modes}, "
          f"expected ['775', '664']")


def case_rename(c):
    src, dst = f"{ROOT}/rename-src", f"{ROOT}/rename-dst"
    guest(f"mkdir -p {ROOT} && printf moved > {quote(src)}")
    c.ok("Rename", {"src": src, "dst": dst})
    check_error(c.request("Stat", {"path": src, "follow_symlink": False}), "ENOENT", src)
    check(guest(f"cat {quote(dst)}") == "moved", "renamed file has other content")
    check_error(c.request("Rename", {"src": src, "dst": dst}), "ENOENT", src)


# ---- Cases on handles ----


def case_write_read_5mib(c):
    path = f"{ROOT}/big"
    content = pattern_bytes(5 * MIB + 12345, 2)
    handle = c.open(path, write=True, create=True, truncate=True, mode=0o644)
    reply = c.write(handle, content, chunk=MIB // 2)
    check(reply.chunks == [], "Write answered with data frames")
    c.close_handle(handle)
    check(guest_sha256(path) == hashlib.sha256(content).hexdigest(), "the guest's file differs from what was written")

    handle = c.open(path, read=True)
    reply = c.read(handle)
    sizes = [len(chunk) for chunk in reply.chunks]
    check(len(sizes) >= 2, f"a {len(content)}-byte Read arrived in {len(sizes)} data frame(s)")
    check(max(sizes) <= MAX_CHUNK_BYTES, f"a data frame carries {max(sizes)} bytes, above 3 MiB")
    check(reply.data == content, f"Read returned {len(reply.data)} bytes that differ from the "
          f"{len(content)} written")
    check(reply.response.get("data") is None, f"Read response carries data {reply.response!r}")

    part = c.read(handle, offset=1_234_567, length=100_000)
    check(part.data == content[1_234_567:1_334_567], f"Read offset=1234567 len=100000 returned {len(part.data)} "
          f"bytes that differ")
    tail = c.read(handle, offset=len(content) - 10, length=1000)
    check(tail.data == content[-10:], f"Read across the end returned {tail.data!r}")
    beyond = c.read(handle, offset=len(content) + 100)
    check(beyond.data == b"", f"Read beyond the end returned {len(beyond.data)} bytes")
    empty = c.read(handle, offset=0, length=0)
    check(empty.data == b"", f"Read len=0 returned {len(empty.data)} bytes")
    c.close_handle(handle)


def case_write_ends_at_len(c):
    path = f"{ROOT}/write-len"
    guest(f"mkdir -p {ROOT} && printf 0123456789abcdefghij > {quote(path)}")
    handle = c.open(path, write=True)
    # No empty data frame: reaching len ends the stream.
    c.ok("Write", {"handle": handle, "offset": 10, "len": 5}, data_frames=[b"ABC", b"DE"], end_with_empty=False)
    c.close_handle(handle)
    output = guest(f"cat {quote(path)}")
    check(output == "0123456789ABCDEfghij", f"file reads {output!r}")


def case_fstat(c):
    path = f"{ROOT}/fstat"
    guest(f"mkdir -p {ROOT} && head -c 777 /dev/zero > {quote(path)} && chmod 0604 {quote(path)}")
    handle = c.open(path, read=True)
    entry = c.ok("FStat", {"handle": handle}).response["data"]["Stat"]
    check_entry(entry)
    check(entry["kind"] == "file", f"kind {entry['kind']!r}")
    check(entry["size"] == 777, f"size {entry['size']}, expected 777")
    check(entry["mode"] == 0o604, f"mode {entry['mode']:#o}, expected 0o604")
    check(entry["path"] == path, f"path {entry['path']!r}, expected {path!r}")
    c.close_handle(handle)


def case_fsetstat_size_mode(c):
    path = f"{ROOT}/fsetstat"
    guest(f"mkdir -p {ROOT} && head -c 5000 /dev/zero > {quote(path)}")
    handle = c.open(path, read=True, write=True)
    attrs = {"mode": 0o600, "uid": None, "gid": None, "size": 100, "atime": None, "mtime": 1_500_000_000}
    c.ok("FSetStat", {"handle": handle, "attrs": attrs})
    entry = c.ok("FStat", {"handle": handle}).response["data"]["Stat"]
    check(entry["size"] == 100, f"size {entry['size']}, expected 100")
    check(entry["mode"] == 0o600, f"mode {entry['mode']:#o}, expected 0o600")
    check(entry["mtime"] == 1_500_000_000, f"mtime {entry['mtime']}, expected 1500000000")
    c.close_handle(handle)
    output = guest(f"stat -c '%s %a %Y' {quote(path)}").split()
    check(output == ["100", "600", "1500000000"], f"guest stat shows {output}")


def case_readdir_paging(c):
    d = f"{ROOT}/readdir"
    names = ["a", "b", "c", "d", "e", "f", "g"]
    guest(f"mkdir -p {d}/dir1 && cd {d} && touch a b c d e && mkdir f && ln -s a g && rmdir dir1")
    handle = handle_of(c.ok("OpenDir", {"path": d}))
    seen = []
    for _ in range(len(names) + 2):
        entries = list_entries(c.ok("ReadDir", {"handle": handle, "limit": 2}))
        check(len(entries) <= 2, f"ReadDir limit=2 returned {len(entries)} entries")
        if not entries:
            break
        seen.extend(e["path"] for e in entries)
    else:
        raise CaseError(f"ReadDir never returned an empty list; seen {seen}")
    expected = [f"{d}/{n}" for n in names]
    check(sorted(seen) == expected, f"ReadDir pages returned {sorted(seen)}, expected each of {expected} once")
    again = list_entries(c.ok("ReadDir", {"handle": handle, "limit": 2}))
    check(again == [], f"ReadDir after the end returned {again}")
    c.close_handle(handle)


def case_append_mode(c):
    path = f"{ROOT}/append"
    guest(f"mkdir -p {ROOT} && printf abc > {quote(path)}")
    handle = c.open(path, append=True)
    c.write(handle, b"XYZ", offset=0)
    c.write(handle, b"123", offset=0)
    c.close_handle(handle)
    output = guest(f"cat {quote(path)}")
    check(output == "abcXYZ123", f"file reads {output!r} after two appends, expected 'abcXYZ123'")


def case_create_new_existing_fails(c):
    path = f"{ROOT}/exists"
    guest(f"mkdir -p {ROOT} && printf keep > {quote(path)}")
    check_error(c.request("OpenFile", {"path": path, "options": {
        "read": False, "write": True, "append": False, "create": False, "truncate": False, "create_new": True,
        "mode": None}}), "EEXIST", path)
    check(guest(f"cat {quote(path)}") == "keep", "the failed create_new changed the file")
    fresh = f"{ROOT}/exists-new"
    handle = c.open(fresh, write=True, create_new=True, mode=0o640)
    c.close_handle(handle)
    check(guest_mode(fresh) == 0o640, f"create_new with mode 0o640 made mode {guest_mode(fresh):#o}")


# ---- Errors ----


def case_error_stat_missing(c):
    path = f"{ROOT}/no/such/path"
    reply = c.request("Stat", {"path": path, "follow_symlink": False})
    check_error(reply, "ENOENT", path)
    check(reply.response["errno"] == 2, "errno is not 2")


def case_error_open_in_missing_dir(c):
    path = f"{ROOT}/missing-dir/file"
    reply = c.request("OpenFile", {"path": path, "options": {
        "read": False, "write": True, "append": False, "create": True, "truncate": False, "create_new": False,
        "mode": 0o644}})
    check_error(reply, "ENOENT", path)


def case_error_read_closed_handle(c):
    path = f"{ROOT}/closed"
    guest(f"mkdir -p {ROOT} && printf x > {quote(path)}")
    handle = c.open(path, read=True)
    c.close_handle(handle)
    check_error(c.request("Read", {"handle": handle, "offset": 0, "len": None}), "EBADF", str(handle))
    check_error(c.request("CloseHandle", {"handle": handle}), "EBADF", str(handle))
    unknown = 987_654_321
    check_error(c.request("Read", {"handle": unknown, "offset": 0, "len": None}), "EBADF", str(unknown))
    check_error(c.request("FStat", {"handle": unknown}), "EBADF", str(unknown))


def case_error_readdir_on_file(c):
    path = f"{ROOT}/not-a-dir"
    guest(f"mkdir -p {ROOT} && printf x > {quote(path)}")
    handle = c.open(path, read=True)
    check_error(c.request("ReadDir", {"handle": handle, "limit": 2}), "ENOTDIR", path)
    c.close_handle(handle)


def case_error_read_on_dir_handle(c):
    d = f"{ROOT}/dir-handle"
    guest(f"mkdir -p {d}")
    handle = handle_of(c.ok("OpenDir", {"path": d}))
    check_error(c.request("Read", {"handle": handle, "offset": 0, "len": None}), "EISDIR", d)
    c.close_handle(handle)


def case_error_opendir_on_file(c):
    path = f"{ROOT}/opendir-file"
    guest(f"mkdir -p {ROOT} && : > {quote(path)}")
    check_error(c.request("OpenDir", {"path": path}), "ENOTDIR", path)


# ---- Handles and clients ----


def open_many(client, path, count):
    """Pipeline count OpenFile requests and return their replies in order."""
    options = {"read": True, "write": False, "append": False, "create": False, "truncate": False,
               "create_new": False, "mode": None}
    ids = [client.send_request("OpenFile", {"path": path, "options": options}) for _ in range(count)]
    return [client.collect(frame_id) for frame_id in ids]


def case_handle_limit(_):
    path = f"{ROOT}/many"
    guest(f"mkdir -p {ROOT} && printf x > {quote(path)}")
    client = Client()
    try:
        replies = open_many(client, path, MAX_HANDLES_PER_CLIENT)
        failures = [(i, r.response) for i, r in enumerate(replies) if r.response.get("ok") is not True]
        check(not failures, f"{len(failures)} of {MAX_HANDLES_PER_CLIENT} OpenFile requests failed; the first is "
              f"number {failures[0][0] + 1 if failures else 0}: {failures[0][1] if failures else None!r}")
        handles = [handle_of(r) for r in replies]
        check(len(set(handles)) == len(handles), "OpenFile returned the same handle twice")

        check_error(open_many(client, path, 1)[0], "EMFILE", path)
        client.close_handle(handles[0])
        (again,) = open_many(client, path, 1)
        check(again.response.get("ok") is True, f"OpenFile after a CloseHandle failed: {again.response!r}")
        check_error(open_many(client, path, 1)[0], "EMFILE", path)
        # A handle still works while the client is at its limit.
        check(client.read(handles[-1]).data == b"x", "Read through the last handle failed")
    finally:
        client.close()


def case_handle_limit_spares_other_clients(c):
    """One client at its handle limit must leave the agent able to serve
    the others: their file operations and exec."""
    path = f"{ROOT}/many"
    guest(f"mkdir -p {ROOT} && printf x > {quote(path)}")
    greedy = Client()
    try:
        replies = open_many(greedy, path, MAX_HANDLES_PER_CLIENT)
        held_count = sum(r.response.get("ok") is True for r in replies)
        other = open_many(c, path, 1)[0]
        check(other.response.get("ok") is True, f"while another client holds {held_count} handles, OpenFile fails: "
              f"{other.response!r}")
        c.close_handle(handle_of(other))
        listed = c.request("List", {"path": ROOT})
        check(listed.response.get("ok") is True, f"while another client holds {held_count} handles, List fails: "
              f"{listed.response!r}")
        result = msb("exec", NAME, "--", "true")
        check(result.returncode == 0, f"while a client holds {held_count} handles, msb exec true exits with "
              f"{result.returncode}: {result.stderr.decode().strip()!r}")
    finally:
        greedy.close()


def case_handles_die_with_client(_):
    path = f"{ROOT}/dies"
    guest(f"mkdir -p {ROOT} && printf x > {quote(path)}")
    first = Client()
    try:
        handle = first.open(path, read=True)
        first_range = (first.id_start, first.id_end)
    finally:
        first.close()

    second = Client()
    try:
        if (second.id_start, second.id_end) != first_range:
            print(f"# handles_die_with_client: the new connection got range {second.id_start:#x}.."
                  f"{second.id_end:#x}, not {first_range[0]:#x}..{first_range[1]:#x}", flush=True)
        check_error(second.request("Read", {"handle": handle, "offset": 0, "len": None}), "EBADF", str(handle))
        check_error(second.request("FStat", {"handle": handle}), "EBADF", str(handle))
    finally:
        second.close()


def case_handle_other_client(c):
    path = f"{ROOT}/mine"
    guest(f"mkdir -p {ROOT} && printf mine > {quote(path)}")
    handle = c.open(path, read=True)
    other = Client()
    try:
        check(other.id_start != c.id_start, "two connected clients got the same id range")
        check_error(other.request("Read", {"handle": handle, "offset": 0, "len": None}), "EBADF", str(handle))
        check_error(other.request("FStat", {"handle": handle}), "EBADF", str(handle))
        check_error(other.request("CloseHandle", {"handle": handle}), "EBADF", str(handle))
        check(c.read(handle).data == b"mine", "the owner cannot read its handle after another client tried")
    finally:
        other.close()
    c.close_handle(handle)


# ---- Malformed input ----


def expect_error_or_silence(client, frame_id, description):
    """Wait for a response to a request that the agent cannot serve. No
    response, or a failed response, is correct."""
    frame = client.next_frame_for(frame_id, SILENCE_WAIT_S)
    if frame is None:
        return
    check(frame.type == "core.fs.response" and frame.payload.get("ok") is False,
          f"{description} was answered with {frame!r}")


def case_malformed_unknown_variant(c):
    frame_id = c.send_request("Frobnicate", {"path": "/"})
    expect_error_or_silence(c, frame_id, "an unknown op variant")
    check(c.stat("/")["kind"] == "dir", "Stat / after the unknown op failed")


def case_malformed_wrong_field_type(c):
    frame_id = c.send_request("Stat", {"path": 123, "follow_symlink": "yes"})
    expect_error_or_silence(c, frame_id, "Stat with path=123")
    frame_id = c.send_request("Read", {"handle": "one", "offset": -1, "len": None})
    expect_error_or_silence(c, frame_id, "Read with handle='one' offset=-1")
    frame_id = c.new_id()
    c.send(encode_frame(frame_id, "core.fs.request", {"op": "Stat"}))
    expect_error_or_silence(c, frame_id, "a request whose op is a text")
    check(c.stat("/")["kind"] == "dir", "Stat / after the malformed requests failed")


def case_malformed_short_frame(c):
    bad = Client()
    try:
        # len 3 is below the 5 bytes of id and flags.
        bad.send(struct.pack(">I", 3) + b"\x00\x00\x00")
        bad.sock.settimeout(5)
        try:
            data = bad.sock.recv(4096)
        except socket.timeout:
            raise CaseError("the relay kept the connection open after a frame with len 3")
        except ConnectionResetError:
            data = b""
        check(data == b"", f"the relay sent {data!r} after a frame with len 3, expected the connection closed")
    finally:
        bad.close()
    check(c.stat("/")["kind"] == "dir", "another connection stopped working")
    fresh = Client()
    try:
        check(fresh.stat("/")["kind"] == "dir", "a new connection does not work")
    finally:
        fresh.close()


# ---- Resource failures ----


def mount_small_tmpfs():
    guest("mkdir -p /mnt/small && (mountpoint -q /mnt/small || mount -t tmpfs -o size=1m tmpfs /mnt/small)")


def case_enospc_write(c):
    mount_small_tmpfs()
    path = "/mnt/small/fill"
    handle = c.open(path, write=True, create=True, truncate=True)
    reply = c.request("Write", {"handle": handle, "offset": 0, "len": None},
                      data_frames=[pattern_bytes(MIB, 3)] * 3, end_with_empty=True)
    check_error(reply, "ENOSPC", path)
    c.close_handle(handle)
    check(c.stat("/mnt/small")["kind"] == "dir", "Stat after ENOSPC failed")
    check(guest_status("true") == 0, "msb exec true failed after ENOSPC")
    guest(f"rm -f {path}")


def case_enospc_write_with_len(c):
    mount_small_tmpfs()
    path = "/mnt/small/fill-len"
    size = 3 * MIB
    handle = c.open(path, write=True, create=True, truncate=True)
    # The stream ends when len bytes arrived, so no empty frame follows.
    reply = c.request("Write", {"handle": handle, "offset": 0, "len": size},
                      data_frames=[pattern_bytes(MIB, 4)] * 3, end_with_empty=False, timeout=5)
    check_error(reply, "ENOSPC", path)
    c.close_handle(handle)
    check(c.stat("/mnt/small")["kind"] == "dir", "Stat after ENOSPC failed")
    check(guest_status("true") == 0, "msb exec true failed after ENOSPC")
    guest(f"rm -f {path}")


def case_enospc_answered_before_stream_end(c):
    mount_small_tmpfs()
    path = "/mnt/small/fill-early"
    handle = c.open(path, write=True, create=True, truncate=True)
    # docs/protocol.md: the agent sends the failure as soon as a write
    # fails, before the empty data frame that ends the stream.
    reply = c.request("Write", {"handle": handle, "offset": 0, "len": None},
                      data_frames=[pattern_bytes(MIB, 5)] * 3, end_with_empty=False, timeout=5)
    check_error(reply, "ENOSPC", path)
    c.send_data(reply.frame.id, b"")
    late = c.next_frame_for(reply.frame.id, SILENCE_WAIT_S)
    check(late is None, f"the empty data frame after the failure got another answer: {late!r}")
    c.close_handle(handle)
    guest(f"rm -f {path}")


def case_read_truncated_while_streaming(_):
    path = f"{ROOT}/shrinks"
    size = 48 * MIB
    line = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_\n"
    guest(f"mkdir -p {ROOT} && yes {line[:-1].decode()} | head -c {size} > {quote(path)}")
    client = Client()
    try:
        handle = client.open(path, read=True)
        frame_id = client.send_request("Read", {"handle": handle, "offset": 0, "len": None})
        first = client.next_frame_for(frame_id, REQUEST_TIMEOUT_S)
        check(first is not None and first.type == "core.fs.data", f"the Read started with {first!r}")
        # Stop reading so that the relay pauses the stream, then shrink the file.
        time.sleep(0.5)
        guest(f"truncate -s 0 {quote(path)}")
        reply = client.collect(frame_id, timeout=30)
        data = first.payload["data"] + reply.data
        expected_prefix = (line * (len(data) // len(line) + 1))[:len(data)]
        check(data == expected_prefix, f"the {len(data)} bytes read are not a prefix of the file's old content")
        check(len(data) < size, f"the Read returned all {size} bytes; the truncation came too late to test")
        print(f"# read_truncated_while_streaming: the Read ended with ok={reply.response.get('ok')} "
              f"error={reply.response.get('error')!r} after {len(data)} of {size} bytes", flush=True)
        check(client.stat(path)["size"] == 0, "the file was not truncated")
    finally:
        client.close()


CASES = [
    case_mkdir_parents_mode,
    case_mkdir_over_file_fails,
    case_stat_follow_vs_nofollow,
    case_setstat_mode_mtime,
    case_setstat_negative_mtime,
    case_setstat_nofollow_leaves_target,
    case_list_full_paths_kinds,
    case_list_trailing_slash,
    case_readlink,
    case_symlink,
    case_realpath,
    case_remove_file,
    case_remove_on_directory_fails,
    case_removedir_nonrecursive_enotempty,
    case_removedir_empty,
    case_copy_file,
    case_copy_tree,
    case_copy_keeps_group_write_bits,
    case_rename,
    case_write_read_5mib,
    case_write_ends_at_len,
    case_fstat,
    case_fsetstat_size_mode,
    case_readdir_paging,
    case_append_mode,
    case_create_new_existing_fails,
    case_error_stat_missing,
    case_error_open_in_missing_dir,
    case_error_read_closed_handle,
    case_error_readdir_on_file,
    case_error_read_on_dir_handle,
    case_error_opendir_on_file,
    case_handle_limit,
    case_handle_limit_spares_other_clients,
    case_handles_die_with_client,
    case_handle_other_client,
    case_malformed_unknown_variant,
    case_malformed_wrong_field_type,
    case_malformed_short_frame,
    case_enospc_write,
    case_enospc_write_with_len,
    case_enospc_answered_before_stream_end,
    case_read_truncated_while_streaming,
]


def report(name, error):
    global passed, failed
    if error is None:
        print(f"ok {name}", flush=True)
        passed += 1
    else:
        print(f"FAIL {name}: {error}", flush=True)
        failed += 1


def run_case(case, shared):
    """Run one case on the shared connection and return the connection for
    the next case. A failed case gets the connection replaced, because a
    hang leaves unread frames behind."""
    name = case.__name__[len("case_"):]
    started = time.monotonic()
    try:
        case(shared)
        report(name, None)
        return shared
    except CaseError as error:
        report(name, error)
    except Exception as error:  # noqa: BLE001 - any error fails this case, and the next cases still run
        for line in traceback.format_exc().rstrip().splitlines():
            print(f"# {line}", flush=True)
        report(name, f"{type(error).__name__}: {error}")
    finally:
        elapsed = time.monotonic() - started
        if elapsed > 5:
            print(f"# {name} took {elapsed:.1f} s", flush=True)
    shared.close()
    return Client()


def main():
    started = time.monotonic()
    created = msb("create", NAME, timeout=180)
    if created.returncode != 0:
        print(f"FAIL create: msb create {NAME} exited with {created.returncode}: {created.stderr.decode()[-500:]}")
        print("0 passed, 1 failed")
        return 1
    try:
        print(f"# sandbox {NAME} booted in {time.monotonic() - started:.1f} s", flush=True)
        guest(f"mkdir -p {ROOT}")
        shared = Client()
        for case in CASES:
            shared = run_case(case, shared)
        shared.close()
    finally:
        removed = msb("rm", "-f", NAME, timeout=120)
        if removed.returncode != 0:
            print(f"# msb rm -f {NAME} exited with {removed.returncode}: {removed.stderr.decode()[-300:]}",
                  flush=True)
    print(f"# total {time.monotonic() - started:.1f} s", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
