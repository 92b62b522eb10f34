<?php
// The push demo of the classic PHP push server as ONE shared program for
// every client of the route, speaking JSON lines with wsloop
// (docs/programs-protocol.md). Each client has its own timer: it gets
// `I am waiting N seconds`, then after N seconds (random, 2 to 5 whole
// seconds as wsloop's built-in /push) the next one, and so on; its message
// `quit` ends its pushes and closes it with 1000. Anything else is
// ignored. One stream_select on stdin waits for the earliest push due.
// The per-connection version is push.php.
//
// The waits: `?wait=MIN-MAX` or `?wait=SECONDS` in the client's URL (the
// open event's query), else the PUSH_WAIT variable (pass it with
// --passenv PUSH_WAIT), else 2-5; decimals down to milliseconds, e.g.
// ws://HOST/push?wait=0.2 for tests.
//
// Serve it with (from the repository's root):
//   wsloop --shared-route /push="php examples/handlers/push-shared.php"

ini_set('display_errors', 'stderr'); // stdout carries only JSON lines

/** One command to wsloop: a JSON object on one line, flushed at once. */
function command(array $c): void
{
    fwrite(STDOUT, json_encode($c, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE) . "\n");
    fflush(STDOUT);
}

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

/** @var array<int, array{range: array, due: int}> the pushing clients by id */
$clients = [];

/** Sends client $id its next push line and sets its timer. */
function push(int $id): void
{
    global $clients;
    $wait = draw($clients[$id]['range']);
    command(['type' => 'send', 'id' => $id, 'text' => push_line($wait)]);
    $clients[$id]['due'] = hrtime(true) + $wait * 1_000_000;
}

function handle(array $event): void
{
    global $clients;
    $id = $event['id'] ?? null;
    if (!is_int($id)) {
        return;
    }
    switch ($event['type'] ?? '') {
        case 'open':
            $clients[$id] = ['range' => waits((string) ($event['query'] ?? '')), 'due' => 0];
            push($id); // the first push at once
            break;
        case 'message':
            if (isset($clients[$id], $event['text']) && strtolower(trim($event['text'])) === 'quit') {
                unset($clients[$id]); // its timer is gone: no more pushes
                command(['type' => 'close', 'id' => $id, 'code' => 1000, 'reason' => 'quit']);
            }
            break;
        case 'close':
            unset($clients[$id]);
            break;
    }
}

stream_set_blocking(STDIN, false);
$pending = ''; // stdin read but not yet a whole line
while (true) {
    // Every push that is due, then a wait until the earliest next one.
    $now = hrtime(true);
    foreach (array_keys($clients) as $id) {
        if ($clients[$id]['due'] <= $now) {
            push($id);
        }
    }
    $read = [STDIN];
    $write = $except = null;
    if ($clients) {
        $us = max(0, intdiv(min(array_column($clients, 'due')) - hrtime(true) + 999, 1000));
        $ready = @stream_select($read, $write, $except, intdiv($us, 1_000_000), $us % 1_000_000);
    } else {
        $ready = @stream_select($read, $write, $except, null); // nobody to push to
    }
    if (!$ready) {
        continue; // a push is due (or a signal interrupted the wait)
    }
    $chunk = fread(STDIN, 65536);
    if ($chunk === false || $chunk === '') {
        if (feof(STDIN)) {
            exit(0); // wsloop closed our stdin: it is stopping
        }
        continue;
    }
    $pending .= $chunk;
    while (($end = strpos($pending, "\n")) !== false) {
        $line = substr($pending, 0, $end);
        $pending = substr($pending, $end + 1);
        $event = json_decode($line, true);
        if (is_array($event)) {
            handle($event);
        }
    }
}
