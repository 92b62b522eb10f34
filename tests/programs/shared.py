"""A shared program for tests/programs.rs: speaks docs/programs-protocol.md
and does what each message asks, to exercise the server's side of it."""
import json
import os
import sys
import time


def out(**command):
    sys.stdout.write(json.dumps(command) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    e = json.loads(line)
    kind, cid = e["type"], e["id"]
    if kind == "open":
        # The open event itself, back to the client, and the pid serving it.
        out(type="send", id=cid, text=json.dumps({"event": e, "pid": os.getpid()}))
    elif kind == "close":
        out(type="broadcast", text="left %d %d %s" % (cid, e["code"], e["reason"]))
    elif "binary" in e:
        out(type="send", id=cid, binary=e["binary"])
    else:
        words = e["text"].split(" ")
        if words[0] == "all":
            out(type="broadcast", text=" ".join(words[1:]))
        elif words[0] == "to":
            out(type="broadcast", ids=[int(i) for i in words[1].split(",")], text=" ".join(words[2:]))
        elif words[0] == "kick":
            out(type="close", id=cid, code=4000, reason="kicked")
        elif words[0] == "garbage":
            sys.stdout.write("not json\n{\"type\":\"nonsense\"}\n{\"type\":\"send\"}\n")
            sys.stdout.write('{"type":"send","id":%d,"binary":"@@@"}\n' % cid)
            sys.stdout.write('{"type":"close","id":%d,"code":1005}\n\n' % cid)
            out(type="send", id=cid, text="still here")
        elif words[0] == "die":
            out(type="send", id=cid, text="dying")
            sys.exit(3)
        elif words[0] == "mute":
            # Closes stdout and keeps running: it can no longer answer.
            os.close(1)
            time.sleep(60)
        elif words[0] == "deaf":
            # Stops reading stdin for a while.
            out(type="send", id=cid, text="deaf")
            time.sleep(float(words[1]))
        else:
            out(type="send", id=cid, text=e["text"])
