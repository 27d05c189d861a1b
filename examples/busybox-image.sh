#!/bin/sh
# Makes a small OS image tarball from Debian's busybox-static: a shell, httpd, wget, and an
# /etc/passwd with root, nobody and an app user. Used by the README demo and by the tests, so both
# run on the same image. Usage: busybox-image.sh OUT.tar.gz
# WITH_BASH=/bin/bash-static (Debian's bash-static) adds it as /bin/bash: a stack with bash, as
# Heroku's stacks have, for tests of buildpacks that need it.
set -eu
out=${1:?usage: busybox-image.sh OUT.tar.gz}
busybox=${BUSYBOX:-/bin/busybox}
if ! "$busybox" --list >/dev/null 2>&1; then
  echo "busybox-image.sh: $busybox is missing: apt-get install busybox-static" >&2
  exit 1
fi
if ! file -L "$busybox" 2>/dev/null | grep -q "statically linked" && ldd "$busybox" >/dev/null 2>&1; then
  echo "busybox-image.sh: $busybox is dynamically linked; install busybox-static" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/bin "$root"/sbin "$root"/usr/bin "$root"/usr/sbin "$root"/etc "$root"/tmp "$root"/root \
  "$root"/proc "$root"/sys "$root"/dev "$root"/run "$root"/var/tmp "$root"/home/app
cp "$busybox" "$root"/bin/busybox
for applet in $("$busybox" --list-full); do
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
if [ -n "${WITH_BASH:-}" ]; then
  cp "$WITH_BASH" "$root"/bin/bash
fi
cat > "$root"/etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$root"/etc/group <<'GROUP'
root:x:0:
app:x:1000:
nogroup:x:65534:
GROUP
chmod 1777 "$root"/tmp "$root"/var/tmp
chown 1000:1000 "$root"/home/app
tar -C "$root" --numeric-owner -czf "$out" .
