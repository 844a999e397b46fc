#!/usr/bin/env bash
# Makes the base image the Dockerfiles in docker/ start from, debian:bookworm-slim, out of Debian's
# package archive with debootstrap, for a machine that reaches no image registry. Root only.
#   tests/container/make_base_image.sh [IMAGE]   (default docker.io/library/debian:bookworm-slim)
# Like Debian's own slim image: the minbase variant, security updates in the sources, and no
# documentation, manual pages or translations, now or in what apt installs later, and no
# downloaded packages kept.
set -euo pipefail
image=${1:-docker.io/library/debian:bookworm-slim}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org}

for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "make_base_image: $tool is missing" >&2; exit 1; }
done
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase bookworm "$rootfs" "$mirror/debian"

rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $mirror/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'DPKG'
# Files dpkg leaves out of this image (the licences stay).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
DPKG
cat >"$rootfs/etc/apt/apt.conf.d/slim" <<'APT'
// No translations; downloaded packages deleted once installed; no binary caches left behind.
Acquire::Languages "none";
APT::Keep-Downloaded-Packages "false";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
# What debootstrap already installed, removed to the same rule.
find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian/*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log \
  "$rootfs"/tmp/*

tar --numeric-owner -C "$rootfs" -c . \
  | podman import --change 'CMD ["bash"]' \
      --message "debootstrap --variant=minbase bookworm (tests/container/make_base_image.sh)" \
      - "$image"
echo "make_base_image: $image"
