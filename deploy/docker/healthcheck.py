"""Container health check: exit 0 when the URL answers 2xx (the slim image has no curl).

Usage: ``python /usr/local/bin/healthcheck.py [URL]``; the URL defaults to $HEALTHCHECK_URL,
then to the gateway's /healthz.
"""

import os
import sys
import urllib.request

url = (sys.argv[1:] or [os.environ.get("HEALTHCHECK_URL", "http://127.0.0.1:8000/healthz")])[0]
try:
    with urllib.request.urlopen(url, timeout=3) as response:
        sys.exit(0 if 200 <= response.status < 300 else 1)
except Exception as exc:  # any failure (refused, timeout, 5xx) means unhealthy
    print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    sys.exit(1)
