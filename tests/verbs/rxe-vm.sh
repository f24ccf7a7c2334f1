#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rxe-vm.sh CMD [ARG...]: run CMD inside a small throwaway QEMU guest that has a real verbs
# device (Soft-RoCE, rxe0 over a dummy Ethernet interface) and exit with CMD's status.
#
# Why a VM: the host kernel has no modules, so rdma_rxe cannot be loaded here; Debian's stock
# kernel ships it. The guest runs that kernel with a busybox initramfs, mounts the host's /
# read-only over 9p and chroots into it, so CMD sees the host's binaries and libraries
# (libibverbs, the rxe provider). The work folder (RXE_VM_WORKDIR, default: the current
# folder) is mounted read-write at the same path; /tmp, /run and /dev/shm are fresh tmpfs.
# CMD runs in the work folder with the caller's exported environment.
#
# Exit status: CMD's; 124 the guest ran past RXE_VM_TIMEOUT; 125 the VM could not be set up
# (a line starting "rxe-vm: cannot" says why; callers treat that as "skip").
#
# Environment:
#   RXE_VM_CACHE    kernel + initramfs cache (default /var/tmp/ringcoll-rxe-vm)
#   RXE_VM_TIMEOUT  seconds before the guest is killed (default 600)
#   RXE_VM_MEM      guest memory in MiB (default 1536)
#   RXE_VM_CPUS     guest CPUs (default 2)
#   RXE_VM_WORKDIR  folder shared read-write (default $PWD)
#   RXE_VM_NO_APT   1: never call apt-get (missing packages or kernel mean exit 125)
#   RXE_VM_VERBOSE  1: show the kernel's boot messages
set -uo pipefail

cache=${RXE_VM_CACHE:-/var/tmp/ringcoll-rxe-vm}
limit=${RXE_VM_TIMEOUT:-600}
work=${RXE_VM_WORKDIR:-$PWD}
# The guest needs these from the host's root file system.
host_pkgs="qemu-system-x86 busybox-static rdma-core ibverbs-providers ibverbs-utils iproute2 xz-utils cpio"
# Loaded in this order inside the guest (modprobe pulls in their dependencies).
guest_mods="virtio_pci 9pnet_virtio 9p crc32_generic dummy rdma_rxe"

cannot() { echo "rxe-vm: cannot $*" >&2; exit 125; }

[ $# -ge 1 ] || { echo "usage: rxe-vm.sh CMD [ARG...]" >&2; exit 2; }
[ -d "$work" ] || cannot "share $work: not a folder"
case "$work" in *[,\ ]* | /) cannot "share '$work' over 9p (commas, spaces and / itself are refused)" ;; esac

# ---------------------------------------------------------------- host packages
missing=
for p in $host_pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"; done
if [ -n "$missing" ]; then
    [ "${RXE_VM_NO_APT:-0}" != 1 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] ||
        cannot "start the VM: packages missing:$missing (install them, or run as root with apt-get)"
    echo "rxe-vm: installing$missing" >&2
    apt-get update -qq >/dev/null 2>&1 || cannot "reach the apt registry (apt-get update failed)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 ||
        cannot "install$missing with apt-get"
fi
qemu=$(command -v qemu-system-x86_64) || cannot "find qemu-system-x86_64"

# ---------------------------------------------------------------- kernel and initramfs (once)
build_image() {
    local tmp="$cache.new.$$" pkg kver deb mods
    rm -rf "$tmp" && mkdir -p "$tmp/root" || return 1
    # The flavour the meta-package points at is the current stock kernel.
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
    [ -n "$pkg" ] || { echo "rxe-vm: no linux-image package known to apt" >&2; return 1; }
    kver=${pkg#linux-image-}
    (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) || { echo "rxe-vm: apt-get download $pkg failed" >&2; return 1; }
    deb=$(ls "$tmp"/*.deb) && dpkg-deb -x "$deb" "$tmp/k" && rm -f "$deb" || return 1
    cp "$tmp/k/boot/vmlinuz-$kver" "$tmp/vmlinuz" || return 1
    mods="$tmp/k/lib/modules/$kver"
    # The package leaves modules.dep to the installer: make it here (kmod's depmod or busybox's).
    if command -v depmod >/dev/null; then depmod -b "$tmp/k" "$kver"; else busybox depmod -b "$tmp/k" "$kver"; fi ||
        { echo "rxe-vm: depmod failed" >&2; return 1; }
    # Every .ko the guest modules need, by the kernel's own dependency list.
    for m in $guest_mods; do
        grep -E "(^|/)$m\.ko(\.xz)?:" "$mods/modules.dep" | tr -d ':' | tr ' ' '\n'
    done | sort -u | while read -r f; do
        [ -n "$f" ] && install -D -m 644 "$mods/$f" "$tmp/root/lib/modules/$kver/$f"
    done
    cp "$mods/modules.dep" "$mods/modules.order" "$mods/modules.builtin" "$tmp/root/lib/modules/$kver/" 2>/dev/null
    [ -s "$tmp/root/lib/modules/$kver/modules.dep" ] || return 1
    ls "$tmp/root/lib/modules/$kver/kernel/drivers/infiniband/sw/rxe/"rdma_rxe.ko* >/dev/null 2>&1 ||
        { echo "rxe-vm: $pkg has no rdma_rxe module" >&2; return 1; }
    mkdir -p "$tmp/root/bin" "$tmp/root/sbin" "$tmp/root/proc" "$tmp/root/sys" "$tmp/root/dev" "$tmp/root/host"
    cp /bin/busybox "$tmp/root/bin/busybox" || return 1
    write_init > "$tmp/root/init" && chmod 755 "$tmp/root/init" || return 1
    (cd "$tmp/root" && find . | cpio -o -H newc -R 0:0 --quiet) | gzip -1 > "$tmp/initrd.gz" || return 1
    rm -rf "$tmp/k" "$tmp/root"
    write_init | sha256sum | cut -c1-64 > "$tmp/init.sha256" || return 1
    rm -rf "$cache" && mv "$tmp" "$cache"
}

# The guest's PID 1: modules, host root over 9p, then CMD under chroot; writes CMD's status
# into the job folder and powers off.
write_init() {
    cat <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc && mount -t sysfs sys /sys && mount -t devtmpfs dev /dev
for m in $guest_mods; do modprobe \$m || echo "guest: modprobe \$m failed"; done
o=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o \$o,ro hostroot /host || { echo "guest: cannot mount the host root"; poweroff -f; }
for d in proc sys dev; do mount -o bind /\$d /host/\$d; done
for d in tmp run dev/shm; do mkdir -p /host/\$d 2>/dev/null; mount -t tmpfs tmpfs /host/\$d; done
mkdir -p /host/run/job && mount -t 9p -o \$o job /host/run/job
w=\$(cat /host/run/job/workdir) && { mkdir -p "/host\$w" 2>/dev/null; mount -t 9p -o \$o work "/host\$w"; }
chroot /host /bin/bash /run/job/run.sh
echo \$? > /host/run/job/status
sync; umount "/host\$w"; umount /host/run/job
poweroff -f
EOF
}

# The image holds the guest's init: rebuild it when that script changes.
init_sum=$(write_init | sha256sum | cut -c1-64)
if [ ! -s "$cache/vmlinuz" ] || [ ! -s "$cache/initrd.gz" ] || [ "$(cat "$cache/init.sha256" 2>/dev/null)" != "$init_sum" ]; then
    [ "${RXE_VM_NO_APT:-0}" != 1 ] || cannot "build the guest image: no kernel in $cache and RXE_VM_NO_APT=1"
    echo "rxe-vm: building the guest image in $cache (once)" >&2
    mkdir -p "$(dirname "$cache")" || cannot "create $(dirname "$cache")"
    build_image || { rm -rf "$cache.new.$$"; cannot "build the guest kernel and initramfs"; }
fi

# ---------------------------------------------------------------- the job
job=$(mktemp -d /tmp/rxe-vm-job.XXXXXX) || cannot "make a job folder"
trap 'rm -rf "$job"' EXIT
printf '%s\n' "$work" > "$job/workdir"
export -p | grep -v -E '^declare -x (PWD|OLDPWD|SHLVL|_|TMPDIR)=' > "$job/env"
{
    echo '#!/bin/bash'
    echo '# Soft-RoCE: rxe refuses lo, so it sits on a dummy Ethernet interface (RoCE v2 GID 1).'
    echo 'ip link set lo up && ip link add rxed0 mtu 4500 type dummy && ip addr add 10.77.0.1/24 dev rxed0 &&'
    echo '  ip link set rxed0 up && rdma link add rxe0 type rxe netdev rxed0 ||'
    echo '  { echo "rxe-vm: guest could not create rxe0"; exit 125; }'
    echo 'ulimit -l unlimited'
    echo '. /run/job/env'
    printf 'cd %q || exit 125\n' "$PWD"
    printf 'exec'
    printf ' %q' "$@"
    echo
} > "$job/run.sh"

share() { # id path security-model [extra fsdev options]
    printf -- '-fsdev local,id=%s,path=%s,security_model=%s%s\n-device virtio-9p-pci,fsdev=%s,mount_tag=%s\n' \
        "$1" "$2" "$3" "${4:-}" "$1" "$1"
}
bios=()
[ -f /usr/share/qemu/qboot.rom ] && bios=(-bios /usr/share/qemu/qboot.rom)
quiet="quiet loglevel=3"
[ "${RXE_VM_VERBOSE:-0}" = 1 ] && quiet=
# TCG: this host's /dev/kvm cannot run a stock kernel; the emulated CPU has no AVX-512.
# shellcheck disable=SC2046
timeout -k 10 "$limit" "$qemu" -accel tcg,thread=multi -cpu max -smp "${RXE_VM_CPUS:-2}" \
    -m "${RXE_VM_MEM:-1536}" "${bios[@]}" -nographic -no-reboot -nic none \
    -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz" -append "console=ttyS0 panic=-1 $quiet" \
    $(share hostroot / none ,multidevs=remap,readonly=on) $(share job "$job" passthrough) \
    $(share work "$work" passthrough ,multidevs=remap) </dev/null | tr -d '\r'
qst=${PIPESTATUS[0]}
[ "$qst" = 124 ] || [ "$qst" = 137 ] && { echo "rxe-vm: the guest ran past ${limit} s and was killed" >&2; exit 124; }
[ -s "$job/status" ] || cannot "run the guest (qemu exited $qst before the command finished)"
exit "$(cat "$job/status")"
