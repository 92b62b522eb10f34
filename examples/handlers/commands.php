<?php
// The command demo of the classic PHP socket server, one process per
// connection (websocketd's model): each text message is a line on stdin,
// each line written to stdout is a message. `hello`, `hi`, `name`, `age`,
// `date`, `time` (UTC), `thanks` and `server` get canned replies (the
// texts of wsloop's built-in `/` demo; `server` answers `Resin PHP`),
// `bye` replies and ends the connection (exit 0: wsloop closes with 1000),
// anything else gets `You have entered: <text>`. The shared version is
// commands-shared.php.
//
// Serve it with (from the repository's root):
//   wsloop --route /="php examples/handlers/commands.php"

ini_set('display_errors', 'stderr'); // warnings to wsloop's log, never to the client

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

function say(string $text): void
{
    fwrite(STDOUT, $text . "\n");
    fflush(STDOUT);
}

while (($line = fgets(STDIN)) !== false) {
    $text = substr($line, -1) === "\n" ? substr($line, 0, -1) : $line;
    $command = strtolower(trim($text));
    say(canned($command) ?? "You have entered: $text");
    if ($command === 'bye') {
        exit(0);
    }
}
