#!/usr/bin/env bash
# Brings up docker-compose.yml for real and fails unless rows from the load
# generator arrive at the analytics sink.
#
#   .ci/compose-test.sh                        # podman-compose (Debian 1.0.3)
#   COMPOSE=docker-compose .ci/compose-test.sh # docker-compose (Debian 1.29.2)
#                                              # against podman's Docker API
#   BUILD=go .ci/compose-test.sh               # compile in a Go image instead
#
# For machines without a registry, every base image is a local one:
#   RUNTIME_IMAGE  a distroless-like base imported from a tarball (no libc,
#                  no shell; passwd, the host's CA bundle, uid 65532 like
#                  distroless/static:nonroot)
#   BUILD=prebuilt (default) the Dockerfile's `prebuilt` target: static
#                  binaries built here on the host; GO_IMAGE keeps its
#                  default, which that target never pulls
#   BUILD=go       the default `runtime` target, with GO_IMAGE a stand-in for
#                  golang:1.26-bookworm: the offline Debian image plus this
#                  host's Go toolchain and CA bundle (modules come from the
#                  Go proxy during the build)
#   DynamoDB Local and the load generator run from the offline image of
#   .ci/provision.sh, which has java and bash.
#
# Steps: provision podman; install podman-compose or docker-compose and the
# CNI dnsname plugin (service names must resolve); build; `up -d`; wait for
# MIN_ROWS rows at the sink (bounded by TIMEOUT seconds); check that a
# booking survives recreating the DynamoDB container (named volume) and that
# its row is delivered afterwards; print /stats; `down -v`. Exits non-zero on any
# failure, after printing every service's logs.
#
# Host ports are bound to 127.0.0.1 only. Everything is created under the
# compose project $PROJECT and removed by `down -v`; the images built
# here ($APP_IMAGE, $BASE_IMAGE and with BUILD=go $GO_IMAGE) are kept for
# the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE=${COMPOSE:-podman-compose}
PROJECT=${PROJECT:-ddboutbox-compose-test}
TIMEOUT=${TIMEOUT:-180}
MIN_ROWS=${MIN_ROWS:-100}
BUILD=${BUILD:-prebuilt}
BASE_IMAGE=${BASE_IMAGE:-localhost/ddboutbox-static-base:test}
export APP_IMAGE=${APP_IMAGE:-localhost/ddboutbox:compose-test}
export RUNTIME_IMAGE=${RUNTIME_IMAGE:-$BASE_IMAGE}   # RUNTIME_IMAGE=scratch works too
export DYNAMODB_PORT=${DYNAMODB_PORT:-18000} BOOKING_PORT=${BOOKING_PORT:-18080}
export SINK_PORT=${SINK_PORT:-19000} METRICS_PORT=${METRICS_PORT:-19090}

start=$SECONDS
log() { printf 'compose-test: [%3ss] %s\n' "$((SECONDS - start))" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
# Only loopback traffic: every URL below is 127.0.0.1.
get() { curl -sf --max-time 5 "http://127.0.0.1:$1"; }
json() { python3 -c 'import json,sys; print(json.load(sys.stdin)'"$1"')'; }

# --- engine, DynamoDB Local image, tools ------------------------------------
vars=$(bash .ci/provision.sh) && eval "$vars"   # DOCKER_HOST (podman socket), DYNAMODB_LOCAL_IMAGE
export CONTAINER_HOST=$DOCKER_HOST LOADGEN_IMAGE=${LOADGEN_IMAGE:-$DYNAMODB_LOCAL_IMAGE}
case $COMPOSE in
  podman-compose) pkg=podman-compose ;;
  docker-compose) pkg=docker-compose ;;
  *) die "COMPOSE must be podman-compose or docker-compose" ;;
esac
# dnsname lets containers on a compose network resolve each other's service
# names (podman 4.3 with the CNI backend has no DNS without it).
if ! command -v "$COMPOSE" >/dev/null || [[ ! -x /usr/lib/cni/dnsname ]]; then
  log "installing $pkg and the CNI dnsname plugin"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$pkg" golang-github-containernetworking-plugin-dnsname >/dev/null
fi
compose() { "$COMPOSE" -p "$PROJECT" -f docker-compose.yml "$@"; }
log "$("$COMPOSE" version 2>/dev/null | grep -iE 'compose(r)? version' | tail -1) / $(podman --version)"

# --- images -------------------------------------------------------------------
case $BUILD in
  prebuilt)
    export APP_BUILD_TARGET=prebuilt
    log "building static binaries into bin/ (CGO_ENABLED=0)"
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/ \
      ./cmd/relay ./cmd/booking ./cmd/analytics-sink ./cmd/outboxctl ;;
  go)
    export APP_BUILD_TARGET=runtime
    goroot=$(go env GOROOT) gover=$(go env GOVERSION)
    export GO_IMAGE=localhost/ddboutbox-go:${gover#go}
    if ! podman image exists "$GO_IMAGE"; then
      log "building $GO_IMAGE: $DYNAMODB_LOCAL_IMAGE + $goroot + CA bundle"
      ctx=$(mktemp -d)
      cp -a "$goroot" "$ctx/go" && cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
      printf '%s\n' "FROM $DYNAMODB_LOCAL_IMAGE" 'COPY go /usr/local/go' \
        'COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt' \
        'ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GOTOOLCHAIN=local' \
        'WORKDIR /' 'ENTRYPOINT []' >"$ctx/Containerfile"
      podman build -q -t "$GO_IMAGE" "$ctx" >/dev/null
      rm -rf "$ctx"
    fi ;;
  *) die "BUILD must be prebuilt or go" ;;
esac

if [[ $RUNTIME_IMAGE == "$BASE_IMAGE" ]] && ! podman image exists "$BASE_IMAGE"; then
  log "importing $BASE_IMAGE (distroless-like: passwd, CA bundle, /tmp; no libc, no shell)"
  root=$(mktemp -d)
  mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
  chmod 1777 "$root/tmp" && chown 65532:65532 "$root/home/nonroot"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  tar -C "$root" -c . | podman import --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
fi

# --- up -------------------------------------------------------------------------
hc_pid=
cleanup() {
  rc=$?
  [[ -n $hc_pid ]] && kill "$hc_pid" 2>/dev/null || true
  if ((rc != 0)); then
    for s in dynamodb init analytics-sink booking relay loadgen; do
      echo "----- logs: $s" >&2
      compose logs --tail 40 "$s" >&2 2>&1 || true
    done
  fi
  log "down -v"
  compose down -v >/dev/null 2>&1 || log "WARNING: down -v failed"
  # podman-compose 1.0.3's down leaves the project network behind.
  if podman network exists "${PROJECT}_default" 2>/dev/null; then
    podman network rm "${PROJECT}_default" >/dev/null 2>&1 || log "WARNING: network ${PROJECT}_default left behind"
  fi
  log "exit $rc after $((SECONDS - start))s"
}
compose down -v >/dev/null 2>&1 || true   # leftovers of an interrupted run
trap cleanup EXIT

# Podman schedules healthchecks with systemd timers; without systemd (these
# VMs) nothing runs them and `service_healthy` would wait forever, so drive
# them here. Not needed with Docker or a podman on systemd.
if [[ ! -d /run/systemd/system ]]; then
  ( while sleep 2; do
      for c in $(podman ps -q --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null); do
        podman healthcheck run "$c" >/dev/null 2>&1 || true
      done
    done ) &
  hc_pid=$!
fi

log "$COMPOSE up -d --build (APP_BUILD_TARGET=$APP_BUILD_TARGET${GO_IMAGE:+ GO_IMAGE=$GO_IMAGE} RUNTIME_IMAGE=$RUNTIME_IMAGE DYNAMODB_LOCAL_IMAGE=$DYNAMODB_LOCAL_IMAGE)"
t_up=$SECONDS
compose up -d --build >"${TMPDIR:-/tmp}/$PROJECT-up.log" 2>&1 ||
  { cat "${TMPDIR:-/tmp}/$PROJECT-up.log" >&2; die "$COMPOSE up failed"; }
log "up returned after $((SECONDS - t_up))s"

# rows_at_sink: the sink's row count, empty while it does not answer.
rows_at_sink() { get "$SINK_PORT/stats" 2>/dev/null | json '["rows"]' 2>/dev/null || true; }
# wait_rows N: until the sink holds at least N rows, at most until the deadline.
wait_rows() {
  local n
  while :; do
    n=$(rows_at_sink)
    [[ -n $n ]] && ((n >= $1)) && return 0
    ((SECONDS < deadline)) || die "sink has ${n:-no answer} rows, wanted $1 within ${TIMEOUT}s"
    sleep 2
  done
}
deadline=$((t_up + TIMEOUT))

wait_rows 1
log "first rows at the sink $((SECONDS - t_up))s after up"
wait_rows "$MIN_ROWS"
log "$MIN_ROWS rows at the sink $((SECONDS - t_up))s after up"
get "$SINK_PORT/rows" | grep -q '"session_id":"loadgen-' || die "rows at the sink are not the load generator's"

# --- persistence: a booking outlives recreating the DynamoDB container ---------
# Removing the container drops its writable layer: only the named volume
# can carry the data over (a mere restart would keep it either way).
id=$(curl -sf --max-time 5 -XPOST "http://127.0.0.1:$BOOKING_PORT/bookings" \
       -d '{"user_id":"compose-test","session_id":"before-recreate"}' | json '["booking_id"]') ||
  die "POST /bookings from the host failed"
old=$(podman ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter label=com.docker.compose.service=dynamodb)
[[ -n $old ]] || die "no dynamodb container"
log "booking $id created; removing the dynamodb container $old and creating a new one"
podman rm -f -t 10 "$old" >/dev/null
compose up -d dynamodb >>"${TMPDIR:-/tmp}/$PROJECT-up.log" 2>&1 || die "up -d dynamodb failed"
new=$(podman ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter label=com.docker.compose.service=dynamodb)
[[ -n $new && $new != "$old" ]] || die "dynamodb was not recreated"
deadline=$((SECONDS + TIMEOUT))
until get "$BOOKING_PORT/bookings/$id" >/dev/null 2>&1; do
  ((SECONDS < deadline)) || die "booking $id is gone after recreating DynamoDB (or DynamoDB did not come back)"
  sleep 1
done
log "booking $id still there in the new container $new (named volume, -sharedDb -dbPath)"
until get "$SINK_PORT/rows" | grep -q "\"booking_id\":\"$id\""; do
  ((SECONDS < deadline)) || die "the row of booking $id did not reach the sink after recreating DynamoDB"
  sleep 2
done
after=$(rows_at_sink)
sleep 5
now=$(rows_at_sink)
((${now:-0} > ${after:-0})) || die "rows stopped arriving after recreating DynamoDB (${after:-?} -> ${now:-?})"
log "its row was delivered, and rows keep arriving"

# --- report -----------------------------------------------------------------------
echo "--- containers"
podman ps -a -q --filter "label=com.docker.compose.project=$PROJECT" | xargs podman inspect \
  --format '{{.Name}}  {{.State.Status}} exit={{.State.ExitCode}} restarts={{.RestartCount}} {{.State.Health.Status}}'
echo "--- GET /stats (analytics-sink)"
get "$SINK_PORT/stats"; echo
# The relay's metrics endpoint is informational: not part of the pass check.
echo "--- relay :9090 /readyz: $(get "$METRICS_PORT/readyz" 2>&1 || echo 'no answer')"
echo "--- loadgen"
compose logs loadgen 2>&1 | tail -3
log "PASS: $COMPOSE stack delivered $(rows_at_sink) rows ($((SECONDS - t_up))s after up)"
