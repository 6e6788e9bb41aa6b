"""A stand-in for systemd's notification socket, for tests.

Binds a unix datagram socket at argv[1], prints "listening", then one JSON object per datagram
({"fields": {KEY: VALUE}, "fds": N}) on stdout. File descriptors passed along (systemd-notify's
BARRIER=1 sends one and waits until it is closed) are closed at once, as PID 1 does.
"""

import array
import json
import os
import socket
import sys

path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
print("listening", flush=True)
while True:
    data, ancdata, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
    fds = array.array("i")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    for fd in fds:
        os.close(fd)
    fields = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key] = value
    print(json.dumps({"fields": fields, "fds": len(fds)}), flush=True)
