<?php
// The push demo of the classic PHP push server, one process per connection
// (websocketd's model; the PHP server forked one per client): it sends
// `I am waiting N seconds`, waits N seconds (random, 2 to 5 whole seconds
// as wsloop's built-in /push), and repeats; the message `quit` ends the
// pushes and the connection (exit 0: wsloop closes with 1000). Anything
// else is ignored. The shared version is push-shared.php.
//
// The waits: `?wait=MIN-MAX` or `?wait=SECONDS` in the URL (QUERY_STRING),
// else the PUSH_WAIT variable (pass it with --passenv PUSH_WAIT), else 2-5;
// decimals down to milliseconds, e.g. ws://HOST/push?wait=0.2 for tests.
//
// Serve it with (from the repository's root):
//   wsloop --route /push="php examples/handlers/push.php"

ini_set('display_errors', 'stderr'); // warnings to wsloop's log, never to the client

/** "2-5", "0.05-0.2" or "3" (seconds, at most three decimals) as [min_ms, max_ms], or null. */
function interval(string $spec): ?array
{
    $ends = explode('-', $spec, 2);
    $ms = [];
    foreach ($ends as $end) {
        $end = trim($end);
        if (!preg_match('/^(\d+(\.\d{0,3})?|\.\d{1,3})$/', $end)) {
            return null;
        }
        $ms[] = (int) round((float) $end * 1000);
    }
    [$min, $max] = count($ms) === 2 ? $ms : [$ms[0], $ms[0]];
    return ($min >= 1 && $min <= $max && $max <= 86_400_000) ? [$min, $max] : null;
}

/** The waits asked for in the query string or PUSH_WAIT, else 2 to 5 seconds. */
function waits(string $query): array
{
    parse_str($query, $params);
    $spec = $params['wait'] ?? getenv('PUSH_WAIT');
    if (is_string($spec) && $spec !== '') {
        $range = interval($spec);
        if ($range !== null) {
            return $range;
        }
        fwrite(STDERR, "wait=$spec is not MIN-MAX or SECONDS: using 2-5\n");
    }
    return [2000, 5000];
}

/** One wait in ms: whole seconds when both ends are whole, as wsloop's /push. */
function draw(array $range): int
{
    [$min, $max] = $range;
    if ($min % 1000 === 0 && $max % 1000 === 0) {
        return random_int(intdiv($min, 1000), intdiv($max, 1000)) * 1000;
    }
    return random_int($min, $max);
}

/** 3000 -> "I am waiting 3 seconds", 250 -> "I am waiting 0.25 seconds". */
function push_line(int $ms): string
{
    $seconds = $ms % 1000 === 0
        ? (string) intdiv($ms, 1000)
        : rtrim(sprintf('%d.%03d', intdiv($ms, 1000), $ms % 1000), '0');
    return "I am waiting $seconds " . ($ms === 1000 ? 'second' : 'seconds');
}

$range = waits((string) getenv('QUERY_STRING'));
$due = hrtime(true); // the first push at once
while (true) {
    $now = hrtime(true);
    if ($now >= $due) {
        $wait = draw($range);
        fwrite(STDOUT, push_line($wait) . "\n");
        fflush(STDOUT);
        $due = $now + $wait * 1_000_000;
        continue;
    }
    // Wait for the next push or a message, whichever comes first.
    $us = intdiv($due - $now + 999, 1000);
    $read = [STDIN];
    $write = $except = null;
    if (!@stream_select($read, $write, $except, intdiv($us, 1_000_000), $us % 1_000_000)) {
        continue; // the push is due (or a signal interrupted the wait)
    }
    $line = fgets(STDIN);
    if ($line === false || strtolower(trim($line)) === 'quit') {
        exit(0); // the client left, or quit: no more pushes
    }
}
