#!/usr/bin/env python3
# A chat room as ONE shared program for every client of the route, in
# Python 3 (standard library only), speaking JSON lines with wsloop
# (docs/programs-protocol.md); the same room as wsloop's built-in /chat.
# A client's name comes from `?name=` (else guestN); the others hear
# `<name> joined`, the newcomer gets a welcome, every text message goes to
# everyone as `<name>: <text>`, and `<name> left` when a client is gone.
#
# Serve it with (from the repository's root):
#   wsloop --shared-route /chat="python3 examples/handlers/chat-shared.py"

import json
import sys
import unicodedata
from urllib.parse import parse_qsl

MAX_NAME = 32  # characters kept of a name

names = {}  # id -> name, in the order they joined
guests = 0


def command(**c):
    """One command to wsloop: a JSON object on one line, flushed at once."""
    sys.stdout.write(json.dumps(c, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def chat_name(query):
    """The first `name` in the query (form-decoded, control characters
    dropped, at most MAX_NAME characters, trimmed), else guestN."""
    global guests
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "name":
            kept = "".join(ch for ch in value if unicodedata.category(ch) != "Cc")
            name = kept[:MAX_NAME].strip()
            if name:
                return name
            break
    guests += 1
    return f"guest{guests}"


def handle(event):
    kind, id = event.get("type"), event.get("id")
    if kind == "open":
        name = chat_name(event.get("query", ""))
        others = list(names)
        if others:
            command(type="broadcast", ids=others, text=f"{name} joined")
        s = "" if len(others) == 1 else "s"
        command(
            type="send",
            id=id,
            text=f"welcome {name}: {len(others)} other{s} here, your messages go to everyone",
        )
        names[id] = name
    elif kind == "message" and id in names and "text" in event:
        # To the room as this program knows it ("ids"): without them a
        # client whose open event is still on its way would get it too.
        command(type="broadcast", ids=list(names), text=f"{names[id]}: {event['text']}")
    elif kind == "close":
        name = names.pop(id, None)
        if name is not None and names:
            command(type="broadcast", ids=list(names), text=f"{name} left")


for line in sys.stdin.buffer:
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if isinstance(event, dict):
        handle(event)
