"""Reads an OpenMetrics exposition on stdin with the Prometheus project's
own parser (prometheus_client.openmetrics.parser, which rejects anything
malformed) and prints one line per sample, sorted:

    NAME LABEL=VALUE,LABEL=VALUE VALUE

Used by tests/metrics.rs; pinned in tests/metrics/requirements.txt.
"""
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

lines = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        lines.append("%s %s %s" % (s.name, labels or "-", repr(float(s.value))))
print("\n".join(sorted(lines)))
