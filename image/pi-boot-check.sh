#!/usr/bin/env bash
# make pi-boot-check [BOARD=rpi3|rpi0w]: boots a Pi card built from package
# registries (make image BOARD=... SOURCES=registries) on QEMU's model of that Pi
# and fails unless, within TIMEOUT seconds:
#   1. the card's initramfs loads its modules and mounts the SD card's root file
#      system read-only (the SD controller the card's device tree names);
#   2. systemd from that root reaches the login prompt on the serial console;
#   3. the vantage units ran: the boot and data partitions mounted by label,
#      vantage-grow-data and vantage-provision-early finished, no unit failed;
#   4. rpi0w: a USB network adapter (QEMU's usb-net, user-mode networking with
#      restrict=on: the guest reaches nothing beyond QEMU) gets its address by DHCP.
# multi-user.target itself is not reached, by design: vantage-provision waits
# for network time (time-sync.target), which this isolated machine never gets.
# QEMU has no VideoCore, so it cannot run the card's firmware (bootcode.bin,
# start.elf, config.txt): it loads what the firmware would load, from the
# card's own boot partition: the kernel, the board's device tree, initrd.img,
# and cmdline.txt as the kernel command line. Docs: docs/qemu-test.md ("The Pi card").
#   BOARD    rpi3 (default): the Pi 3/4 card on qemu-system-aarch64 -M raspi3b;
#            rpi0w: the Pi Zero/1 card on qemu-system-arm -M raspi0 (with the
#            Zero W's device tree: the SD card on SDHOST, the console on the mini UART)
#   IMG      the card (default out/image/BOARD/sdcard.img; built with test settings
#            when missing)
#   TIMEOUT  seconds from QEMU's start until the check gives up (default 900: emulating a
#            Pi on a shared 2-core machine is slow)
#   LOG      the serial console (default out/image/BOARD/pi-boot-console.log)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
board=${BOARD:-rpi3}
img=${IMG:-out/image/$board/sdcard.img}
timeout=${TIMEOUT:-900}
log=${LOG:-$repo/out/image/$board/pi-boot-console.log}
start=$(date +%s)
say() { echo "pi-boot-check: [$(( $(date +%s) - start ))s] $*"; }

# What differs between the boards: QEMU's machine and the files it boots.
# Both cards name the mini UART ttyS1 as console (QEMU's second serial port).
net=()
case $board in
  rpi3)
    qemu=qemu-system-aarch64 machine=raspi3b mem=1G kernel=Image dtb=bcm2837-rpi-3-b.dtb board_extra= ;;
  rpi0w)
    # QEMU 7.2's BCM2835 has no ASB registers (the power domains' bridge):
    # the kernel's bcm2835-power driver faults reading them, so it stays out.
    # Real Pi Zeros have them. The USB network adapter: user-mode networking,
    # restricted to QEMU itself (no traffic leaves this machine).
    qemu=qemu-system-arm machine=raspi0 mem=512M kernel=zImage dtb=bcm2835-rpi-zero-w.dtb
    # journald forwards the services' logs to the console too, down to info
    # (its default stops at notice): networkd logs the DHCP lease at info.
    board_extra="initcall_blacklist=bcm2835_power_driver_init systemd.journald.forward_to_kmsg=1 systemd.journald.max_level_kmsg=info"
    net=(-device "usb-net,netdev=n0" -netdev "user,id=n0,restrict=on") ;;
  *) echo "error: BOARD must be rpi3 or rpi0w (the Pi cards QEMU can boot)" >&2; exit 64 ;;
esac

bash scripts/deps.sh qemu
command -v $qemu >/dev/null || { echo "error: $qemu missing: bash scripts/deps.sh qemu" >&2; exit 1; }

work=$(mktemp -d)
qpid=
cleanup() { [ -n "$qpid" ] && kill "$qpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

if [ ! -f "$img" ]; then
  [ -z "${IMG:-}" ] || { echo "error: IMG=$img does not exist" >&2; exit 1; }
  # Throwaway network settings: the boot needs an image, not a hub.
  say "no $img: building it (make image BOARD=$board SOURCES=registries, test settings)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=pi-boot-check \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
  echo '{"policy": {}}' > "$work/policy.json"
  BOARD=$board SOURCES=registries HUB_URL=https://hub.invalid:8443 NETWORK_CA=$work/ca.pem \
    POLICY=$work/policy.json bash image/build-image.sh
fi

# A copy: the guest writes to it (data partition grown, journal), and QEMU wants
# an SD card whose size is a power of two, as real cards nearly are.
card=$work/sdcard.img
cp --sparse=always "$img" "$card"
size=$(stat -c %s "$card")
p2=1; while [ $p2 -lt "$size" ]; do p2=$((p2 * 2)); done
truncate -s "$p2" "$card"

# What the firmware would load, taken from the card's boot partition with mtools.
boot_off=$(sfdisk --json "$card" | python3 -c 'import json,sys; t=json.load(sys.stdin)["partitiontable"]; print(t["partitions"][0]["start"] * t.get("sectorsize", 512))')
for f in $kernel $dtb initrd.img cmdline.txt config.txt; do
  mcopy -n -i "$card@@$boot_off" "::$f" "$work/$f" \
    || { echo "error: $f is not on the boot partition of $img: not a SOURCES=registries Pi card" >&2; exit 1; }
done
if ! grep -qx "kernel=$kernel" "$work/config.txt" || ! grep -q "^initramfs initrd.img" "$work/config.txt"; then
  echo "error: config.txt of $img does not boot $kernel with initrd.img" >&2; exit 1
fi
cmdline=$(tr -d '\n' < "$work/cmdline.txt")
# Test-only additions. An emulated Pi on a shared host is 10-50 times slower
# than a real one: systemd's 90 s limits for devices and units would expire
# before udev has even run (measured: coldplug 95 s after systemd started); the
# crypto self-tests only cost time. QEMU's Pis have no Wi-Fi chip, so wlan0
# never appears and wpa_supplicant@wlan0 (which multi-user.target waits for)
# would hold the boot until its device times out.
extra="systemd.default_device_timeout_sec=600 systemd.default_timeout_start_sec=600 cryptomgr.notests=1"
extra+=" systemd.mask=wpa_supplicant@wlan0.service"
# systemd stops writing unit status to the console once the serial getty owns it;
# its own log in the kernel's log still reaches the console, with unit names.
extra+=" systemd.log_target=kmsg printk.devkmsg=on${board_extra:+ $board_extra}"

mkdir -p "$(dirname "$log")"
: > "$log"
say "booting $img on $qemu -M $machine (console: $log, timeout ${timeout}s)"
say "kernel command line: $cmdline (cmdline.txt) + $extra (this check)"
# Serial 0 is the PL011 (Bluetooth in the Pi 3's and Zero W's mainline device
# trees), serial 1 the mini UART, which cmdline.txt's console=ttyS1 names, as on
# a real Pi 3 or Zero W.
nice -n 10 $qemu -M $machine -m $mem -display none -no-reboot \
  -kernel "$work/$kernel" -dtb "$work/$dtb" -initrd "$work/initrd.img" \
  -append "$cmdline $extra" -drive "if=sd,format=raw,file=$card" "${net[@]}" \
  -serial null -serial "file:$log" -monitor none &
qpid=$!
boot_start=$(date +%s)   # TIMEOUT counts from here, not from an image build above

# The evidence: each line is printed when it shows up. Console status lines
# carry the units' descriptions (image/overlay/usr/lib/systemd/system/).
steps=(
  "vantage-initramfs: root file system LABEL=rootfs is /dev/mmcblk"
  "Welcome to .*Buildroot"
  "Found device (dev-disk-by.*VANTAGEBOOT|/dev/disk/by-label/VANTAGEBOOT)"
  "Mounted (boot-firmware.mount|vantage boot partition)"
  "Mounted (var-lib-vantage.mount|vantage data partition)"
  "Finished (vantage-grow-data.service|Grow the vantage data partition)"
  "Finished (vantage-provision-early.service|vantage provisioning, ear)"
  "Started (serial-getty@ttyS1.service|Serial Getty on ttyS1)"
  "vantage login:"
)
# QEMU's usb-net with user-mode networking: its DHCP server leases 10.0.2.15.
[ ${#net[@]} -eq 0 ] || steps+=("DHCPv4 address 10.0.2.15/24")
i=0
while [ $i -lt ${#steps[@]} ]; do
  if line=$(grep -aE -m1 "${steps[$i]}" "$log"); then
    say "ok: $(tr -d '\r' <<<"$line" | sed 's/\x1b\[[0-9;]*m//g')"
    i=$((i + 1))
    continue
  fi
  if ! kill -0 "$qpid" 2>/dev/null || [ $(( $(date +%s) - boot_start )) -ge "$timeout" ] \
     || grep -aqE 'Kernel panic|vantage-initramfs: FAILED' "$log"; then
    echo "---- last lines of the console ($log):" >&2
    tail -40 "$log" | tr -d '\r' >&2
    echo "error: the Pi card did not boot as far as: ${steps[$i]} ($(( $(date +%s) - boot_start ))s after QEMU started; TIMEOUT=$timeout)" >&2
    exit 1
  fi
  sleep 2
done
failed=$(grep -aE 'FAILED|DEPEND|systemd\[1\]: (Failed to start|Dependency failed)' "$log" | tr -d '\r' | sed 's/\x1b\[[0-9;]*m//g' || true)
if [ -n "$failed" ]; then
  echo "$failed" >&2
  echo "error: units failed during the boot (console: $log)" >&2
  exit 1
fi
say "passed: the card's kernel, initramfs and root file system boot on $machine to the login prompt, no failed unit"
