"""One boot of the aarch64 test system under qemu-system-aarch64.

The guest's network is QEMU's user-mode network with restrict=on: it reaches
nothing but the host-loopback services given as forwards (guestfwd, one socat
per connection) and is reached only through the check channel (hostfwd on
127.0.0.1). Success is judged from the serial console and the check channel,
never from QEMU's exit status (a kernel panic exits 0 too).
"""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

GUEST_CHECK_PORT = 5555


class GuestError(Exception):
    """The guest did not do what the step expected."""


def free_port():
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """A running QEMU; its serial console goes to serial_log (appended, so
    one file holds every boot of a run)."""

    def __init__(self, kernel, initrd, disk, serial_log, forwards, cpu="cortex-a57",
                 mem=1024, smp=2, append=""):
        """forwards: list of (guest_ip, guest_port, host_port) for guestfwd;
        append: more kernel command line."""
        self.serial_log = Path(serial_log)
        self.check_port = free_port()
        net = ["user", "id=n0", "restrict=on",
               f"hostfwd=tcp:127.0.0.1:{self.check_port}-:{GUEST_CHECK_PORT}"]
        for ip, gport, hport in forwards:
            net.append(f"guestfwd=tcp:{ip}:{gport}-cmd:socat - TCP:127.0.0.1:{hport}")
        self.cmd = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", cpu, "-smp", str(smp), "-m", str(mem),
            "-accel", "tcg,thread=multi", "-display", "none", "-no-reboot", "-nodefaults",
            "-serial", "stdio", "-monitor", "none",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyAMA0 panic=-1 quiet loglevel=4 cryptomgr.notests=1 "
                       "vq.root=/dev/vda2 systemd.show_status=false " + append,
            "-drive", f"file={disk},format=raw,if=none,id=d0",
            "-device", "virtio-blk-pci,drive=d0",
            "-netdev", ",".join(net), "-device", "virtio-net-pci,netdev=n0,romfile=",
            "-device", "virtio-rng-pci",
        ]
        self.offset = self.serial_log.stat().st_size if self.serial_log.exists() else 0
        self.started = time.monotonic()
        with open(self.serial_log, "ab") as out:
            out.write(f"\n===== vq: boot at {time.strftime('%H:%M:%S')} =====\n".encode())
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def console(self):
        """This boot's serial console so far."""
        with open(self.serial_log, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def alive(self, what):
        """Raises if QEMU exited or the kernel panicked (waiting for what)."""
        if self.proc.poll() is not None:
            raise GuestError(f"QEMU exited ({self.proc.returncode}) before {what}")
        text = self.console()
        for bad in ("Kernel panic", "VQ-INITRAMFS-FAILED"):
            if bad in text:
                raise GuestError(f"{bad} before {what}")

    def wait_console(self, pattern, timeout, what):
        """Waits for a regex on this boot's console; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = rx.search(self.console())
            if m:
                return m
            self.alive(what)
            time.sleep(0.5)
        raise GuestError(f"no {what} on the serial console within {timeout} s")

    def check(self, req, timeout=60):
        """Asks the guest's check channel for one check; returns (rc, output)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GuestError(f"QEMU exited while asking the guest for '{req}'")
            try:
                with socket.create_connection(("127.0.0.1", self.check_port), timeout=30) as s:
                    s.sendall(req.encode() + b"\n")
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                text = data.decode(errors="replace")
                m = re.search(r"VQ-END rc=(\d+)\s*$", text)
                if m:
                    return int(m.group(1)), text[:m.start()]
                # QEMU accepts before the guest listens, then closes: retry.
                last = f"incomplete answer {text[-200:]!r}"
            except OSError as e:
                last = str(e)
            time.sleep(1)
        raise GuestError(f"check channel gave no answer to '{req}' within {timeout} s ({last})")

    def poweroff(self, timeout=120):
        """Clean shutdown through the check channel; waits for QEMU to exit."""
        try:
            with socket.create_connection(("127.0.0.1", self.check_port), timeout=10) as s:
                s.sendall(b"poweroff\n")
                s.recv(100)
        except OSError:
            pass
        self.wait_exit(timeout, "poweroff")

    def wait_exit(self, timeout, what):
        """Waits for QEMU to exit by itself (guest powered off)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise GuestError(f"guest did not power off within {timeout} s ({what})") from None

    def kill(self):
        """Power cut: SIGKILL to QEMU, nothing gets flushed."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def uptime(self):
        """Seconds since this QEMU was started."""
        return time.monotonic() - self.started
