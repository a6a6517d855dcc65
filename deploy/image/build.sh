#!/usr/bin/env bash
# Builds the services' image, healthcode:dev (IMAGE=... for another tag), with Podman.
#
# What `make image` runs. As root: installs Podman, runc and debootstrap from Debian's packages
# when missing; the base image (debian:bookworm-slim) is made once with debootstrap when
# Podman's store lacks it (no container registry is reachable here) and kept there, so a
# second build reuses it. When the machine's HTTPS goes through a proxy that re-signs it,
# its CA bundle (CA_BUNDLE, default the system's) is mounted into the build for pip and uv.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=${IMAGE:-healthcode:dev}
BASE=docker.io/library/debian:bookworm-slim
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/deploy/image/containers.conf}

if [ "$(id -u)" != 0 ]; then
  echo "deploy/image/build.sh: run as root (Podman's store here is root's, and Podman," \
    "runc and debootstrap are installed with apt-get when missing)" >&2
  exit 1
fi

missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing podman runc debootstrap (missing: ${missing[*]})"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap
fi

if podman image exists "$BASE"; then
  echo "base image $BASE: in Podman's store, reused"
else
  echo "base image $BASE: not in Podman's store, made with debootstrap (once)"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR"
  # Slim, as the registry's image is: no documentation, manual pages or translations (and
  # none from later packages either: dpkg's path excludes), no package cache or lists.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EXCLUDES'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EXCLUDES
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/*
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$BASE"
  rm -rf "$rootfs"
  trap - EXIT
fi

build_args=()
if [ -f "$CA_BUNDLE" ]; then
  build_args+=(--volume "$CA_BUNDLE:/run/build-ca/ca.crt:ro")
fi

start=$(date +%s)
# docker format: the OCI format has no HEALTHCHECK. --pull=never: the base is local.
podman build --network=host --pull=never --format docker "${build_args[@]}" \
  -t "$IMAGE" -f "$ROOT/deploy/Dockerfile" "$ROOT"
seconds=$(($(date +%s) - start))

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "built $IMAGE in ${seconds}s; size $((size / 1000000)) MB ($size bytes)"
