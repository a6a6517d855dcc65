#!/bin/sh
# The image's entrypoint. SERVICE picks the service (issuer, venue-admin, health-records,
# verifier); the command says what to do with it:
#   serve (the default)  run it: uvicorn on $PORT, 5 s for requests in flight on SIGTERM, an
#                        idle connection kept 75 s (longer than its clients and an
#                        ingress keep theirs: no request sent on a connection just closed)
#   migrate              bring its database to the newest revision and exit: a one-shot job
#                        before the replicas start (they do not migrate). Two at once are safe
#                        (a PostgreSQL advisory lock). MIGRATION_DATABASE_URL, a direct
#                        connection (not PgBouncer's), else DATABASE_URL. The verifier keeps
#                        no database: nothing to do.
#   anything else        run as given, e.g. python -m verifier.access drain /data/access-spool
set -eu
command=${1:-serve}
case "$command" in
serve | migrate)
  case "${SERVICE:-}" in
  issuer | venue-admin | health-records | verifier) ;;
  *)
    echo "entrypoint: set SERVICE to issuer, venue-admin, health-records or verifier" >&2
    exit 64
    ;;
  esac
  ;;
esac
case "$command" in
serve)
  package=$(echo "$SERVICE" | tr '-' '_')
  # shellcheck disable=SC2086  # UVICORN_ARGS is a list of words
  exec uvicorn "$package.main:app" --host 0.0.0.0 --port "${PORT:-8000}" --no-access-log \
    --loop uvloop --http hc_common.server:HttpProtocol --no-proxy-headers --no-server-header \
    --timeout-graceful-shutdown 5 --timeout-keep-alive 75 ${UVICORN_ARGS:-}
  ;;
migrate)
  exec python -m hc_common.migrations "/app/services/$SERVICE"
  ;;
*)
  exec "$@"
  ;;
esac
