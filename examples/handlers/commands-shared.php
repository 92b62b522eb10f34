<?php
// The command demo of the classic PHP socket server as ONE shared program
// for every client of the route, speaking JSON lines with wsloop
// (docs/programs-protocol.md). `hello`, `hi`, `name`, `age`, `date`,
// `time` (UTC), `thanks` and `server` get canned replies (the texts of
// wsloop's built-in `/` demo; `server` answers `Resin PHP`), `bye` replies
// and closes that client with 1000, anything else gets
// `You have entered: <text>` (a binary message: its size). The
// per-connection version is commands.php.
//
// Serve it with (from the repository's root):
//   wsloop --shared-route /="php examples/handlers/commands-shared.php"

ini_set('display_errors', 'stderr'); // stdout carries only JSON lines

/** One command to wsloop: a JSON object on one line, flushed at once. */
function command(array $c): void
{
    fwrite(STDOUT, json_encode($c, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE) . "\n");
    fflush(STDOUT);
}

/** The canned reply to a (trimmed, lower-cased) command, or null. */
function canned(string $command): ?string
{
    return match ($command) {
        'hello' => 'hello human',
        'hi' => 'zup human',
        'name' => 'my name is Multivac, silly I know',
        'age' => 'I am older than time itself',
        'date' => 'today is ' . gmdate('Y.m.d'),
        'time' => 'server time is ' . gmdate('H:i:s'),
        'thanks' => "you're welcome",
        'bye' => 'bye',
        'server' => 'Resin PHP',
        default => null,
    };
}

while (($line = fgets(STDIN)) !== false) {
    $event = json_decode($line, true);
    // open and close need nothing here: the demo keeps no state.
    if (!is_array($event) || ($event['type'] ?? '') !== 'message') {
        continue;
    }
    $id = $event['id'];
    if (isset($event['binary'])) {
        $bytes = strlen((string) base64_decode($event['binary']));
        command(['type' => 'send', 'id' => $id, 'text' => "You have entered: $bytes bytes of binary data"]);
        continue;
    }
    $text = $event['text'] ?? '';
    $command = strtolower(trim($text));
    command(['type' => 'send', 'id' => $id, 'text' => canned($command) ?? "You have entered: $text"]);
    if ($command === 'bye') {
        command(['type' => 'close', 'id' => $id, 'code' => 1000, 'reason' => 'bye']);
    }
}
