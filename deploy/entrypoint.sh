#!/bin/sh
# Applies the service's migrations (prestart), then serves it. SERVICE is one of
# issuer, venue-admin, health-records, verifier (which keeps no database: nothing to migrate).
set -eu
: "${SERVICE:?set SERVICE to issuer, venue-admin, health-records or verifier}"
package=$(echo "$SERVICE" | tr '-' '_')
if [ -f "/app/services/$SERVICE/alembic.ini" ]; then
  alembic -c "/app/services/$SERVICE/alembic.ini" upgrade head
fi
exec uvicorn "$package.main:app" --host 0.0.0.0 --port "${PORT}" --no-access-log \
  --loop uvloop --http httptools --timeout-graceful-shutdown 5 ${UVICORN_ARGS:-}
