<?php
// Resin's "hello, world" WebSocket handler in PHP (Resin's
// websocket-handler.php) as ONE shared program for every client of the
// route, as Resin runs it: single-threaded, never re-entered, speaking
// JSON lines with wsloop (docs/programs-protocol.md). `hello` gets `world`,
// `server` gets `Resin PHP`, anything else gets no answer. The
// per-connection version is resin.php.
//
// Serve it with (from the repository's root):
//   wsloop --shared-route /resin="php examples/handlers/resin-shared.php"

ini_set('display_errors', 'stderr'); // stdout carries only JSON lines

/** One command to wsloop: a JSON object on one line, flushed at once. */
function command(array $c): void
{
    fwrite(STDOUT, json_encode($c, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE) . "\n");
    fflush(STDOUT);
}

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
    $event = json_decode($line, true);
    // open and close need nothing here; binary messages get no answer.
    if (!is_array($event) || ($event['type'] ?? '') !== 'message' || !isset($event['text'])) {
        continue;
    }
    $reply = resin_reply($event['text']);
    if ($reply !== null) {
        command(['type' => 'send', 'id' => $event['id'], 'text' => $reply]);
    }
}
