#!/bin/sh
# Container entry point for advsieve (also runs as is outside a container; test/api/lifecycle.test.ts
# starts the service through it).
#   entrypoint.sh                   serve the GraphQL API (configuration: environment, docs/api.md)
#   entrypoint.sh serve [--port N]  the same, with options
#   entrypoint.sh healthcheck       exit 0 when /health/ready answers 200, or 503 "saturated" (Docker's
#                                   HEALTHCHECK: a replica busy to its admission limit is working, not
#                                   broken; only a load balancer should send elsewhere meanwhile)
#   entrypoint.sh COMMAND ...       any other advsieve command (classify, screen, ...)
# `exec` hands the process to node, so SIGTERM from `docker stop` reaches the service directly and
# its graceful shutdown runs (a shell in between would not pass the signal on).
set -eu
APP_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)

if [ "$#" -eq 0 ]; then
  set -- serve
fi

case "$1" in
  healthcheck)
    exec node -e '
      const port = process.env.PORT || "4000";
      fetch(`http://127.0.0.1:${port}/health/ready`, { signal: AbortSignal.timeout(3000) })
        .then(async (r) => {
          if (r.status === 200) process.exit(0);
          const body = await r.json().catch(() => ({}));
          process.exit(r.status === 503 && body.status === "saturated" ? 0 : 1);
        }, () => process.exit(1));'
    ;;
  -*)
    # Options alone: options of serve.
    exec node "$APP_DIR/bin/advsieve.js" serve "$@"
    ;;
  *)
    exec node "$APP_DIR/bin/advsieve.js" "$@"
    ;;
esac
