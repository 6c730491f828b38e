"""Assembly of the aarch64 test system that QEMU boots.

Pieces, each cached under the cache directory by a key over its inputs (the
code that builds it and its parameters), so a repeated local run skips them:

- kernel:    Debian's arm64 kernel package, unpacked (vmlinuz + modules);
- initramfs: busybox + the modules the root file system needs + initramfs-init;
- base:      a Debian systemd root file system (mmdebstrap, arm64) as a tar.

Per run (never cached: they carry this run's CA, policy and token):

- disk.img:  MBR disk laid out like the Raspberry Pi card (see image/buildroot/
             board/vantage/genimage.cfg.in): 1 FAT VANTAGEBOOT with the
             volunteer's vantage.toml, 2 the root file system (base + image/
             overlay + the binaries + test-only additions), 3 ext4
             vantage-data, with free space behind it so vantage-grow-data has
             something to do.
"""

import hashlib
import inspect
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SUITE = "bookworm"
MIRROR = os.environ.get("VQ_MIRROR", "http://deb.debian.org/debian")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# What the root file system needs beyond Debian's essential set: systemd as
# init, udev for /dev/disk/by-label, kmod for modprobe, fdisk (sfdisk) and
# e2fsprogs for the overlay's grow-data.
PACKAGES = ["systemd-sysv", "udev", "kmod", "fdisk", "e2fsprogs"]
# Modules the test system loads in the initramfs (dependencies are added).
MODULES = [
    "virtio_pci", "virtio_blk", "virtio_net", "virtio-rng", "ext4",
    "vfat", "nls_cp437", "nls_ascii", "nls_iso8859-1", "nls_utf8", "autofs4",
]
# Units of Debian's base that only cost boot time in an emulated test system.
MASK = [
    "getty@tty1.service", "serial-getty@ttyAMA0.service", "getty.target",
    "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
    "systemd-tmpfiles-clean.timer", "apt-daily.timer", "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer", "systemd-timesyncd.service",
]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


class BuildError(Exception):
    """A step of the assembly failed; the message says which and what to do."""


def run(cmd, log, **kw):
    """Runs cmd, appending its output to log; raises BuildError on failure."""
    with open(log, "ab") as out:
        out.write(("\n$ " + " ".join(map(str, cmd)) + "\n").encode())
        out.flush()
        r = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)
    if r.returncode != 0:
        tail = Path(log).read_text(errors="replace").splitlines()[-30:]
        raise BuildError(f"command failed ({r.returncode}): {' '.join(map(str, cmd))}\n"
                         + "\n".join(tail))


def key_of(*parts):
    """Cache key: sha256 over the given parts (source text, parameters)."""
    h = hashlib.sha256()
    for p in parts:
        if callable(p):
            p = inspect.getsource(p)
        elif isinstance(p, Path):
            p = p.read_bytes()
        if not isinstance(p, bytes):
            p = json.dumps(p, sort_keys=True).encode() if not isinstance(p, str) else p.encode()
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


class Cache:
    """A directory of finished pieces; a piece appears only once complete."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, name, key, build, log):
        """Path of piece name-key, built by build(tmp_path, log) when missing.
        Returns (path, was_cached)."""
        final = self.root / f"{name}-{key}"
        if final.exists():
            return final, True
        # Leftovers of interrupted builds.
        for stale in self.root.glob(f".{name}-*.tmp*"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink()
        tmp = self.root / f".{name}-{key}.tmp{os.getpid()}"
        build(tmp, log)
        os.rename(tmp, final)
        # Older versions of the same piece only take space.
        for old in self.root.glob(f"{name}-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        return final, False


def _apt_env(workdir):
    """An apt configuration of its own for arm64 downloads: the host's dpkg
    and apt state stay untouched (no multiarch needed)."""
    workdir = Path(workdir)
    for d in ("lists/partial", "cache/archives/partial", "etc"):
        (workdir / d).mkdir(parents=True, exist_ok=True)
    (workdir / "status").touch()
    (workdir / "etc/sources.list").write_text(
        f"deb [signed-by={KEYRING}] {MIRROR} {SUITE} main\n"
        f"deb [signed-by={KEYRING}] {MIRROR} {SUITE}-updates main\n")
    conf = workdir / "etc/apt.conf"
    conf.write_text(
        'APT::Architecture "arm64";\n'
        'APT::Architectures { "arm64"; };\n'
        f'Dir::State "{workdir}";\n'
        f'Dir::State::Lists "{workdir}/lists";\n'
        f'Dir::State::status "{workdir}/status";\n'
        f'Dir::Cache "{workdir}/cache";\n'
        f'Dir::Etc::SourceList "{workdir}/etc/sources.list";\n'
        'Dir::Etc::SourceParts "/nonexistent";\n'
        'APT::Sandbox::User "root";\n')
    return dict(os.environ, APT_CONFIG=str(conf))


def build_kernel(out, log):
    """Debian's current arm64 kernel and busybox-static, unpacked into out/."""
    with tempfile.TemporaryDirectory() as work:
        env = _apt_env(Path(work) / "apt")
        run(["apt-get", "-q", "update"], log, env=env)
        dep = subprocess.run(["apt-cache", "depends", "linux-image-arm64"], env=env,
                             capture_output=True, text=True, check=True).stdout
        image = next(l.split(":", 1)[1].strip() for l in dep.splitlines()
                     if l.strip().startswith("Depends: linux-image-"))
        run(["apt-get", "-q", "download", image, "busybox-static"], log, env=env, cwd=work)
        out.mkdir()
        for deb in Path(work).glob("*.deb"):
            run(["dpkg-deb", "-x", str(deb), str(out / "tree")], log)
    versions = [p.name for p in (out / "tree/lib/modules").iterdir()]
    if len(versions) != 1:
        raise BuildError(f"expected one kernel in the package, found {versions}")
    version = versions[0]
    shutil.copy(out / f"tree/boot/vmlinuz-{version}", out / "vmlinuz")
    run(["depmod", "-b", str(out / "tree"), version], log)
    (out / "version").write_text(version + "\n")


def modules_in_order(kernel):
    """Module files (relative to lib/modules/<version>) in insmod order."""
    version = (kernel / "version").read_text().strip()
    seen = []
    for m in MODULES:
        r = subprocess.run(["modprobe", "-d", str(kernel / "tree"), "-S", version,
                            "--show-depends", m], capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"kernel {version} has no module {m}: {r.stderr.strip()}")
        for line in r.stdout.splitlines():
            f = line.split()
            if f[0] == "insmod":
                rel = os.path.relpath(f[1], kernel / "tree/lib/modules" / version)
                if rel not in seen:
                    seen.append(rel)
    return version, seen


def build_initramfs(kernel):
    """Returns a builder of the gzipped cpio initramfs for that kernel."""
    def build(out, log):
        version, mods = modules_in_order(kernel)
        with tempfile.TemporaryDirectory() as root:
            root = Path(root)
            for d in ("bin", "dev", "proc", "sys", "newroot", "lib/modules"):
                (root / d).mkdir(parents=True, exist_ok=True)
            shutil.copy(kernel / "tree/bin/busybox", root / "bin/busybox")
            for applet in ("sh", "mount", "umount", "insmod", "sleep", "mkdir", "cat",
                           "switch_root", "poweroff", "echo"):
                os.symlink("busybox", root / "bin" / applet)
            for m in mods:
                shutil.copy(kernel / "tree/lib/modules" / version / m,
                            root / "lib/modules" / os.path.basename(m))
            (root / "modules.order").write_text(
                "".join(os.path.basename(m) + "\n" for m in mods))
            shutil.copy(HERE / "initramfs-init", root / "init")
            os.chmod(root / "init", 0o755)
            files = subprocess.run("find . -mindepth 1 | sort", shell=True, cwd=root,
                                   capture_output=True, check=True).stdout
            cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
                                  input=files, cwd=root, capture_output=True, check=True).stdout
            out.write_bytes(__import__("gzip").compress(cpio, 6, mtime=0))
    return build


def build_base(out, log):
    """Debian systemd root file system for arm64, as a tar (mmdebstrap; the
    maintainer scripts run under qemu-user through binfmt_misc)."""
    masks = " ".join(MASK)
    hook = (f'chroot "$1" systemctl mask {masks} && '
            'chroot "$1" systemctl enable systemd-networkd.service && '
            'echo vantage-qemu > "$1/etc/hostname" && '
            ': > "$1/etc/machine-id"')
    run(["mmdebstrap", "--quiet", "--format=tar", "--architectures=arm64", "--variant=essential",
         "--include=" + ",".join(PACKAGES),
         "--dpkgopt=path-exclude=/usr/share/man/*",
         "--dpkgopt=path-exclude=/usr/share/doc/*",
         "--dpkgopt=path-exclude=/usr/share/locale/*",
         "--dpkgopt=path-exclude=/usr/share/info/*",
         "--customize-hook=" + hook,
         SUITE, str(out), f"deb {MIRROR} {SUITE} main"], log)


def ensure_binfmt(log):
    """mmdebstrap and chroot into the arm64 tree need qemu-aarch64 registered."""
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        run(["update-binfmts", "--enable", "qemu-aarch64"], log)
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        raise BuildError("binfmt_misc has no qemu-aarch64 entry; run: bash scripts/deps.sh qemu "
                         "and update-binfmts --enable qemu-aarch64")


def pieces(cache_dir, log, with_base=True):
    """Builds or reuses kernel, initramfs and (with base) the Debian root file
    system; returns their paths and which of them came from the cache."""
    cache = Cache(cache_dir)
    ensure_binfmt(log)
    kernel, k_hit = cache.get("kernel", key_of(build_kernel, _apt_env, SUITE, MIRROR),
                              build_kernel, log)
    initrd, i_hit = cache.get(
        "initramfs",
        key_of(build_initramfs, modules_in_order, MODULES, HERE / "initramfs-init", kernel.name),
        build_initramfs(kernel), log)
    base, b_hit = None, False
    if with_base:
        base, b_hit = cache.get("base.tar", key_of(build_base, PACKAGES, MASK, SUITE, MIRROR),
                                build_base, log)
    return {"kernel": kernel, "initrd": initrd, "base": base,
            "cached": {"kernel": k_hit, "initramfs": i_hit, "base": b_hit}}


MiB = 1024 * 1024
BOOT_MB, ROOT_MB, DATA_MB, FREE_MB = 32, 768, 32, 32


def make_fat(path, files, log):
    """FAT boot partition image labelled VANTAGEBOOT holding files {name: bytes}."""
    path = Path(path)
    path.unlink(missing_ok=True)
    run(["mkfs.vfat", "-C", "-n", "VANTAGEBOOT", str(path), str(BOOT_MB * 1024)], log)
    with tempfile.TemporaryDirectory() as d:
        for name, data in files.items():
            (Path(d) / name).write_bytes(data)
            run(["mcopy", "-i", str(path), str(Path(d) / name), "::" + name], log)


def partitions(disk):
    """(start, size) in bytes of each partition of an MBR disk image, in order."""
    r = subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"sfdisk cannot read the partition table of {disk}: {r.stderr.strip()}")
    table = json.loads(r.stdout)["partitiontable"]
    unit = table.get("sectorsize", 512)
    return [(p["start"] * unit, p["size"] * unit) for p in table["partitions"]]


def _boot(disk):
    """mtools' name of the boot partition (partition 1) of disk."""
    return f"{disk}@@{partitions(disk)[0][0]}"


def fat_read(disk, name):
    """Reads a file from the boot partition of disk.img (None if absent)."""
    r = subprocess.run(["mtype", "-i", _boot(disk), "::" + name], capture_output=True)
    return r.stdout if r.returncode == 0 else None


def fat_list(disk):
    """Names of the files on the boot partition of disk.img."""
    r = subprocess.run(["mdir", "-b", "-i", _boot(disk), "::"],
                       capture_output=True, text=True)
    return sorted(Path(l.strip()).name for l in r.stdout.splitlines() if l.strip())


def fat_write(disk, name, data, log):
    """Puts a file onto the boot partition of disk.img with mtools, as a
    volunteer's computer would (no loop device, no mount)."""
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / name
        f.write_bytes(data)
        run(["mcopy", "-o", "-i", _boot(disk), str(f), "::" + name], log)


def customise_root(disk, files, links, log):
    """Writes test-only files {path: (bytes, mode)} and symbolic links
    {path: target} into the ext4 root file system (partition 2) of disk.img
    with debugfs, leaving every other byte of the image as it was built."""
    start, size = partitions(disk)[1]
    with tempfile.TemporaryDirectory(dir=Path(disk).parent) as d:
        part = Path(d) / "root.ext4"
        # genimage aligns partitions to sectors, not MiB: byte offsets.
        run(["dd", f"if={disk}", f"of={part}", "bs=1M", f"skip={start}", f"count={size}",
             "iflag=skip_bytes,count_bytes", "status=none"], log)
        cmds, dirs = [], set()
        for path in list(files) + list(links):
            parent = Path(path).parent
            while str(parent) != "/":
                dirs.add(str(parent))
                parent = parent.parent
        cmds += [f"mkdir {p}" for p in sorted(dirs, key=len)]
        for i, (path, (data, mode)) in enumerate(sorted(files.items())):
            local = Path(d) / f"f{i}"
            local.write_bytes(data)
            os.chmod(local, mode)
            cmds += [f"rm {path}", f"write {local} {path}"]
        for path, target in sorted(links.items()):
            cmds += [f"rm {path}", f"symlink {path} {target}"]
        (Path(d) / "cmds").write_text("\n".join(cmds) + "\n")
        # debugfs -f goes on past a command that fails (mkdir of an existing
        # directory, rm of a missing file): what counts is checked below.
        run(["debugfs", "-w", "-f", str(Path(d) / "cmds"), str(part)], log)
        listing = subprocess.run(["debugfs", "-R", "ls -l /etc/vantage", str(part)],
                                 capture_output=True, text=True).stdout
        for path in files:
            if path.startswith("/etc/vantage/") and Path(path).name not in listing:
                raise BuildError(f"debugfs did not write {path} into {disk}")
        run(["e2fsck", "-fn", str(part)], log)
        run(["dd", f"if={part}", f"of={disk}", "bs=1M", f"seek={start}",
             "oflag=seek_bytes", "conv=notrunc", "status=none"], log)


def make_root(path, base, kernel, overlay_dirs, extra_files, log):
    """ext4 root file system image: base tar + overlays (in order) + extra files
    {path-in-root: (bytes, mode)}; kernel modules for modprobe; vantage user and
    unit presets applied inside the tree like the image build does."""
    version = (kernel / "version").read_text().strip()
    with tempfile.TemporaryDirectory(dir=Path(path).parent) as tree:
        run(["tar", "-xf", str(base), "-C", tree, "--numeric-owner"], log)
        for d in overlay_dirs:
            run(["cp", "-a", "--no-preserve=ownership", str(d) + "/.", tree], log)
        for rel, (data, mode) in extra_files.items():
            p = Path(tree) / rel.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            os.chmod(p, mode)
        _, mods = modules_in_order(kernel)
        for m in mods:
            dst = Path(tree) / "lib/modules" / version / m
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(kernel / "tree/lib/modules" / version / m, dst)
        for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            src = kernel / "tree/lib/modules" / version / f
            if src.exists():
                shutil.copy(src, Path(tree) / "lib/modules" / version / f)
        run(["depmod", "-b", tree, version], log)
        for d in ("boot/firmware", "var/lib/vantage"):
            (Path(tree) / d).mkdir(parents=True, exist_ok=True)
        run(["chroot", tree, "systemd-sysusers"], log)
        presets = sorted(p.name for p in
                         (Path(tree) / "usr/lib/systemd/system-preset").glob("*vantage*"))
        units = []
        for p in presets:
            for line in (Path(tree) / "usr/lib/systemd/system-preset" / p).read_text().splitlines():
                if line.startswith("enable "):
                    units.append(line.split()[1])
        if units:
            run(["chroot", tree, "systemctl", "preset", *units], log)
        run(["chroot", tree, "systemctl", "enable", *test_units()], log)
        Path(path).unlink(missing_ok=True)
        run(["mkfs.ext4", "-q", "-F", "-L", "vq-root", "-d", tree, str(path), f"{ROOT_MB}M"], log)


def test_units():
    """The test-only units of ci/qemu/rootfs that are enabled in the guest."""
    return [p.name for p in (HERE / "rootfs/etc/systemd/system").glob("*")
            if p.suffix in (".service", ".socket") and "@" not in p.name]


def make_data(path, log):
    """Empty ext4 data partition labelled vantage-data, owned by uid/gid 640
    like the image's (genimage: root_owner=640:640)."""
    Path(path).unlink(missing_ok=True)
    run(["mkfs.ext4", "-q", "-F", "-L", "vantage-data", "-E", "root_owner=640:640",
         str(path), f"{DATA_MB}M"], log)


def make_disk(path, boot, root, data, log):
    """MBR disk: 1 boot (FAT, 0x0c), 2 root, 3 data, then free space."""
    path = Path(path)
    path.unlink(missing_ok=True)
    total = 1 + BOOT_MB + ROOT_MB + DATA_MB + FREE_MB
    with open(path, "wb") as f:
        f.truncate(total * MiB)
    layout = (f"label: dos\nunit: sectors\n"
              f"start={1 * MiB // 512}, size={BOOT_MB * MiB // 512}, type=c\n"
              f"start={(1 + BOOT_MB) * MiB // 512}, size={ROOT_MB * MiB // 512}, type=83\n"
              f"start={(1 + BOOT_MB + ROOT_MB) * MiB // 512}, size={DATA_MB * MiB // 512}, type=83\n")
    with open(log, "ab") as out:
        r = subprocess.run(["sfdisk", "--quiet", str(path)], input=layout.encode(),
                           stdout=out, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise BuildError(f"sfdisk failed on {path}; see {log}")
    for img, start in ((boot, 1), (root, 1 + BOOT_MB), (data, 1 + BOOT_MB + ROOT_MB)):
        run(["dd", f"if={img}", f"of={path}", "bs=1M", f"seek={start}", "conv=notrunc,sparse",
             "status=none"], log)
