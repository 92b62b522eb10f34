#!/bin/sh
# A per-connection program in POSIX sh (websocketd's model: each text
# message is a line on stdin, each line on stdout a message): it greets the
# client by its address (REMOTE_ADDR, one of the CGI variables wsloop
# sets), then numbers every message it gets; `bye` ends it (exit 0: wsloop
# closes with 1000).
#
# Serve it with (from the repository's root):
#   wsloop --route /count="sh examples/handlers/count.sh"

n=0
echo "hello ${REMOTE_ADDR:-stranger}, I count your messages"
while IFS= read -r line; do
  if [ "$line" = bye ]; then
    echo "bye after $n messages"
    exit 0
  fi
  n=$((n + 1))
  printf '%s: %s\n' "$n" "$line"
done
