<?php
// Resin's "hello, world" WebSocket handler in PHP (Resin's
// websocket-handler.php), one process per connection (websocketd's model):
// each text message is a line on stdin, each line written to stdout is a
// message. `hello` gets `world`, `server` gets `Resin PHP`, anything else
// gets no answer, as in Resin's. The shared version is resin-shared.php.
//
// Serve it with (from the repository's root):
//   wsloop --route /resin="php examples/handlers/resin.php"

ini_set('display_errors', 'stderr'); // warnings to wsloop's log, never to the client

/** Resin's answer to one message, or null for none. */
function resin_reply(string $msg): ?string
{
    if ($msg === 'hello') {
        return 'world';
    }
    if ($msg === 'server') {
        return 'Resin PHP';
    }
    return null;
}

while (($line = fgets(STDIN)) !== false) {
    $msg = substr($line, -1) === "\n" ? substr($line, 0, -1) : $line;
    $reply = resin_reply($msg);
    if ($reply !== null) {
        fwrite(STDOUT, $reply . "\n");
        fflush(STDOUT);
    }
}
