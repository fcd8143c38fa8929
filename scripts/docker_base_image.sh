#!/usr/bin/env bash
# Build the Docker base image qa-system-base:bookworm from Debian packages, for machines that reach
# a Debian mirror but no image registry: debootstrap a minimal bookworm (Python 3.11, venv, CA
# certificates, tcmalloc, libgomp) into a temporary folder, then `docker import` it. Needs root,
# debootstrap and a running Docker daemon. docker/README.md ("Building without a registry").
#
#   scripts/docker_base_image.sh            # skips if the image exists
#   scripts/docker_base_image.sh --force    # rebuilds it
#
# Environment: QA_BASE_IMAGE (image name, default qa-system-base:bookworm), DEBIAN_MIRROR (default:
# the first deb.debian.org-style mirror in this machine's apt sources, else http://deb.debian.org/debian).
set -euo pipefail

image="${QA_BASE_IMAGE:-qa-system-base:bookworm}"
force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$force" -eq 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image exists; --force rebuilds it"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

mirror_from_apt_sources() {
  # one-line (deb URL bookworm ...) and deb822 (URIs: URL) sources; the main archive, not security
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -oE '(^deb|^URIs:)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+' \
    | grep -oE 'https?://[^[:space:]]+' | grep -E '/debian/?$' | head -n 1
}
mirror="${DEBIAN_MIRROR:-$(mirror_from_apt_sources || true)}"
mirror="${mirror:-http://deb.debian.org/debian}"

# python3-venv: Debian's python3 is externally managed, the image installs into a venv;
# libtcmalloc-minimal4: preloaded in place of glibc's malloc; libgomp1: OpenMP for torch and faiss
packages="python3,python3-venv,ca-certificates,libtcmalloc-minimal4,libgomp1"

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/qa-system-base.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
start=$SECONDS
echo "debootstrap bookworm (minbase + $packages) from $mirror into $rootfs"
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || { tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; echo "debootstrap failed" >&2; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*

echo "docker import -> $image"
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --message "debootstrap --variant=minbase bookworm + $packages ($mirror)" \
  - "$image" >/dev/null
echo "built $image in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
