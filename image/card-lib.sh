# Sourced by image/check-tree.sh (a card made from stand-in boot files) and
# image/card-check.sh (a card make image built): the tally of checks and the
# SD-card layout every vantage board shares (board/vantage/genimage.cfg.in).
# shellcheck shell=bash
passed=0 failed=0 skipped=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
skip() { echo "SKIP $*"; skipped=$((skipped + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# card_layout IMG WORK HUB_URL BOOT_FILE...: three MBR partitions (FAT, bootable;
# Linux; Linux), the boot partition labelled VANTAGEBOOT with BOOT_FILE... and the
# volunteer's example naming HUB_URL, the data partition labelled vantage-data
# and owned by the vantage user. Leaves the partitions in WORK/boot.vfat,
# WORK/root.ext4 and WORK/data.ext4, and the boot partition's listing in
# WORK/boot.list.
card_layout() {
  local img=$1 work=$2 hub=$3 layout f i off size
  shift 3
  check "sdcard.img.sha256 matches" bash -c "cd '$(dirname "$img")' && sha256sum -c --quiet sdcard.img.sha256"
  layout=$(sfdisk --json "$img")
  check "three MBR partitions: FAT (0xc, bootable), Linux, Linux" python3 -c '
import json, sys
t = json.loads(sys.argv[1])["partitiontable"]
p = t["partitions"]
assert t["label"] == "dos" and [x["type"] for x in p] == ["c", "83", "83"], p
assert p[0].get("bootable"), p[0]
assert p[0]["start"] + p[0]["size"] <= p[1]["start"] and p[1]["start"] + p[1]["size"] <= p[2]["start"]
' "$layout"
  i=0
  for f in boot.vfat root.ext4 data.ext4; do
    read -r off size < <(python3 -c 'import json,sys; p=json.loads(sys.argv[1])["partitiontable"]["partitions"][int(sys.argv[2])]; print(p["start"]*512, p["size"]*512)' "$layout" "$i")
    dd if="$img" of="$work/$f" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$size" status=none
    i=$((i + 1))
  done
  check "boot partition label VANTAGEBOOT" bash -c "MTOOLS_SKIP_CHECK=1 mlabel -s -i '$work/boot.vfat' :: | grep -q VANTAGEBOOT"
  MTOOLS_SKIP_CHECK=1 mdir -b -i "$work/boot.vfat" ::/ | sed 's|^::/||' > "$work/boot.list"
  for f in "$@"; do
    check "boot partition has $f" grep -qxF "$f" "$work/boot.list"
  done
  check "the volunteer's example names the image's hub" bash -c \
    "MTOOLS_SKIP_CHECK=1 mtype -i '$work/boot.vfat' ::/vantage.toml.example | grep -qxF 'hub = \"$hub\"'"
  check "data partition: ext4 labelled vantage-data" bash -c \
    "dumpe2fs -h '$work/data.ext4' 2>/dev/null | grep -qE '^Filesystem volume name: +vantage-data\$'"
  check "data partition root owned by 640:640" bash -c "debugfs -R 'stat /' '$work/data.ext4' 2>/dev/null | grep -qE 'User: +640 +Group: +640'"
}
