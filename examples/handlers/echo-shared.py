#!/usr/bin/env python3
# A shared program that echoes every message of every client, in Python
# (docs/programs-protocol.md). One process for all clients:
#
#   wsloop --shared -- python3 examples/handlers/echo-shared.py
#
# It answers a whole burst of events with one write: reads what the pipe
# holds, answers each line, and writes the answers together.
import json
import os
import sys

inp = sys.stdin.buffer
pending = b""
while True:
    chunk = os.read(inp.fileno(), 65536)
    if not chunk:
        break
    lines = (pending + chunk).split(b"\n")
    pending = lines.pop()
    out = []
    for line in lines:
        if not line.strip():
            continue
        e = json.loads(line)
        if e["type"] == "message":
            reply = {"type": "send", "id": e["id"]}
            if "text" in e:
                reply["text"] = e["text"]
            else:
                reply["binary"] = e["binary"]
            out.append(json.dumps(reply))
    if out:
        sys.stdout.buffer.write(("\n".join(out) + "\n").encode())
        sys.stdout.buffer.flush()
