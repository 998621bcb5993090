#!/usr/bin/env bash
# Make the offline test base image's root filesystem from Debian's busybox-static, as a tarball.
#
#   testdata/images/busybox-rootfs.sh OUT.tar
#
# The tree: /bin/busybox with one symlink per applet (`busybox --list-full`), /etc/passwd and /etc/group with
# root, app (1000) and nobody, /tmp mode 1777, /root and /home/app. Every mtime is pinned, entries are
# sorted and owned by root (app's home by 1000), so the tarball is byte-identical from run to run.
set -euo pipefail
out=${1:?usage: busybox-rootfs.sh OUT.tar}
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "busybox-rootfs.sh: $bb not found (apt-get install busybox-static)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home/app,proc,sys,dev,var/tmp}
install -m 0755 "$bb" "$root/bin/busybox"
for applet in $("$bb" --list-full); do
    [ "$applet" = bin/busybox ] && continue
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
app:x:1000:
nogroup:x:65534:
GROUP
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
chown 1000:1000 "$root/home/app"
tar --sort=name --mtime=@0 --numeric-owner --format=posix --pax-option=delete=atime,delete=ctime \
    -C "$root" -cf "$out" .
