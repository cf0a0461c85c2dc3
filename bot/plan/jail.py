"""The sandbox launcher: puts one command in its own namespaces, filesystem view and limits, and reaps it.

Run by :mod:`bot.plan.runner` as ``python -m bot.plan.jail SPEC`` (SPEC: JSON, see :class:`JailSpec`), in a
fresh single-threaded process, so that ``fork`` is safe. It uses ``unshare(2)`` through ctypes rather than
util-linux ``unshare(1)`` or bubblewrap, because:

- mapping the sandbox's root to an unprivileged host uid needs ``newuidmap`` with ``unshare(1)`` (not
  installed by default), and with ``unshare -r`` a sandbox started by host root *is* host root to the kernel's
  process accounting, which exempts it from ``RLIMIT_NPROC``: a fork bomb would be unbounded in CI;
- bubblewrap is not installed on most runners, and a launcher that is not there cannot fail closed precisely;
- the errno of ``unshare(2)`` itself says which kernel setting is missing (see :func:`explain_unshare_failure`).

Steps: the launcher forks a child that calls ``unshare(NEWUSER|NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS)``; the launcher
writes its uid/gid maps (inner 0 → the caller's uid; when the caller is host root, inner 0 → ``nobody`` and host
root → inner 1, so the setup below can still reach the bind sources while the program runs as ``nobody``). The
child forks PID 1 of the new PID namespace, which builds a fresh tmpfs root holding only the listed read-only
binds, a private ``/tmp``, a minimal ``/dev`` and a fresh ``/proc``, pivots into it, detaches the old root, and
forks the program with its limits, no capabilities, ``no_new_privs`` and a clean environment. PID 1 stays as the
reaper: it reports the program's exit and any process left behind to the collector, then exits, and the kernel
kills every process still in the namespace. The network namespace has only a loopback that is down.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import platform
import resource
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 1, 4, 24, 28
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
# SECBIT_NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE, each with its lock.
SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
NOBODY = 65534

# Exit status of the launcher when the sandbox could not be built (the reason is a collector frame).
SETUP_FAILED = 125

# Host paths every sandbox sees besides its binds: the system directories (read-only) and a few devices.
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/usr")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use. ``output_bytes`` is enforced by the parent, which reads the output."""

    cpu_seconds: int = 120
    memory_bytes: int = 2 << 30
    processes: int = 64
    open_files: int = 256
    file_bytes: int = 64 << 20
    tmp_bytes: int = 64 << 20
    output_bytes: int = 4 << 20


@dataclass(frozen=True)
class JailSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    binds: list[str]  # host paths made visible read-only at the same path
    scratch: str  # an empty directory the new root is mounted on
    collector_fd: int
    limits: Limits = field(default_factory=Limits)

    def dump(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, text: str) -> JailSpec:
        data = json.loads(text)
        data["limits"] = Limits(**data["limits"])
        return cls(**data)


class SetupError(Exception):
    pass


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(code)} (errno {errno.errorcode.get(code, code)})")


def _enc(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = _enc
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _prctl(option: int, arg: int, what: str) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), what)


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def explain_unshare_failure(code: int, sysctls: dict[str, str | None]) -> str:
    """Why creating the namespaces failed, and exactly what enables it."""
    cause = f"unshare(CLONE_NEWUSER|NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS) failed: {os.strerror(code)}"
    fixes = []
    if sysctls.get("kernel.apparmor_restrict_unprivileged_userns") == "1":
        fixes.append(
            "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+/24.04 runners): "
            "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
        )
    if sysctls.get("kernel.unprivileged_userns_clone") == "0":
        fixes.append("unprivileged user namespaces are off: `sudo sysctl -w kernel.unprivileged_userns_clone=1`")
    if sysctls.get("user.max_user_namespaces") == "0" or code == errno.ENOSPC:
        fixes.append("no user namespace may be created here: `sudo sysctl -w user.max_user_namespaces=15000`")
    if code == errno.EINVAL:
        fixes.append("the kernel lacks user/PID/network namespaces (CONFIG_USER_NS, CONFIG_PID_NS, CONFIG_NET_NS)")
    if not fixes:
        fixes.append(
            "a container or seccomp profile forbids unshare(2): run the check where user namespaces are allowed "
            "(e.g. `docker run --security-opt seccomp=unconfined`, or a VM runner)"
        )
    return f"{cause}; " + "; ".join(fixes)


# --------------------------------------------------------------------------------------------------
# the filesystem view (runs as PID 1 of the new namespaces)


def _locked_flags(path: str) -> int:
    """Flags of the mount under ``path`` that a bind inside a user namespace must keep."""
    f = os.statvfs(path).f_flag
    out = 0
    for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC)):
        out |= ms if f & st else 0
    for st, ms in ((os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)):
        out |= ms if f & st else 0
    return out


def _bind(root: str, source: str, *, device: bool = False) -> None:
    target = root + source
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Path(target).touch()
    _mount(source, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | _locked_flags(source) | (0 if device else MS_RDONLY | MS_NODEV)
    _mount(None, target, None, flags)


def build_root(spec: JailSpec) -> None:
    root = spec.scratch
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for top in SYSTEM_DIRS:
        if os.path.islink(top):
            os.symlink(os.readlink(top), root + top)
        elif os.path.isdir(top):
            _bind(root, top)
    # The private /tmp first: the exported tree usually lives under the host's /tmp and is bound inside it.
    private_tmp = root + "/tmp"  # noqa: S108 - a fresh tmpfs inside the new root, not the host's /tmp
    os.makedirs(private_tmp, exist_ok=True)
    _mount("tmpfs", private_tmp, "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec.limits.tmp_bytes},mode=1777")
    for path in spec.binds:
        _bind(root, path)
    os.makedirs(root + "/dev", exist_ok=True)
    for dev in DEVICES:
        _bind(root, dev, device=True)
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise SetupError(f"pivot_root: no syscall number known for {platform.machine()}")
    os.chdir(root)
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _check(_libc.sethostname(b"sandbox", 7), "sethostname")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges(limits: Limits) -> None:
    """Limits, no capabilities now or after exec, no new privileges; dies with its parent."""
    for kind, value in (
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_FSIZE, limits.file_bytes),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(kind, (value, value))
    _prctl(PR_SET_SECUREBITS, SECUREBITS, "set securebits")
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "clear ambient capabilities")
    _prctl(PR_SET_NO_NEW_PRIVS, 1, "set no_new_privs")
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "drop capabilities")
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "set parent-death signal")


# --------------------------------------------------------------------------------------------------
# the three processes


def _report(fd: int, frame: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (json.dumps(frame) + "\n").encode())


def _others_alive() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit() and name != "1")


def _become_sandbox_user() -> None:
    """Inner uid/gid 0, which is the caller's uid (or nobody, when the caller is host root)."""
    if os.getuid() != 0:
        os.setgroups([])  # the host's supplementary groups stay outside (allowed: root wrote the maps)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)


def _pid1(spec: JailSpec) -> int:
    """PID 1: build the view, run the program, reap, report what was left, exit (the kernel kills the rest)."""
    fd = spec.collector_fd
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "set parent-death signal")
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # an init without handlers cannot be signalled from inside
        build_root(spec)
    except (SetupError, OSError) as exc:
        _report(fd, {"op": "setup-error", "message": f"building the sandbox's filesystem view: {exc}"})
        return SETUP_FAILED
    program = os.fork()
    if program == 0:
        try:
            _become_sandbox_user()
            drop_privileges(spec.limits)
            os.chdir(spec.cwd)
            os.execve(spec.argv[0], spec.argv, spec.env)  # noqa: S606 - the sandboxed program, by path
        except (SetupError, OSError) as exc:
            _report(fd, {"op": "setup-error", "message": f"starting the program: {exc}"})
        os._exit(SETUP_FAILED)
    _prctl(PR_SET_DUMPABLE, 0, "make PID 1 undumpable")  # the program cannot ptrace or read its reaper
    status = 0
    while True:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        if pid == program:
            status = wait_status
            break
    leftovers = _others_alive()
    frame: dict[str, Any] = {"op": "exit", "leftovers": leftovers}
    if os.WIFSIGNALED(status):
        frame["signal"] = signal.Signals(os.WTERMSIG(status)).name
    else:
        frame["status"] = os.waitstatus_to_exitcode(status)
    _report(fd, frame)
    return 0


def _write_maps(pid: int) -> None:
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        # The program runs as nobody; host root appears as inner 1 so PID 1 can still reach 0700 bind sources.
        Path(f"/proc/{pid}/uid_map").write_text(f"0 {NOBODY} 1\n1 0 1\n")
        Path(f"/proc/{pid}/gid_map").write_text(f"0 {NOBODY} 1\n1 0 1\n")
    else:
        Path(f"/proc/{pid}/setgroups").write_text("deny")
        Path(f"/proc/{pid}/uid_map").write_text(f"0 {uid} 1\n")
        Path(f"/proc/{pid}/gid_map").write_text(f"0 {gid} 1\n")


def launch(spec: JailSpec) -> int:
    fd = spec.collector_fd
    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(to_parent_r)
        os.close(to_child_w)
        with contextlib.suppress(OSError):
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "set parent-death signal")
        if _libc.unshare(NAMESPACES) != 0:
            os.write(to_parent_w, str(ctypes.get_errno()).encode())
            os._exit(SETUP_FAILED)
        os.write(to_parent_w, b"0")
        os.close(to_parent_w)
        if os.read(to_child_r, 1) != b"1":
            os._exit(SETUP_FAILED)
        init = os.fork()
        if init == 0:
            os._exit(_pid1(spec))
        _, status = os.waitpid(init, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    os.close(to_parent_w)
    os.close(to_child_r)
    answer = os.read(to_parent_r, 32)
    if answer != b"0":
        code = int(answer or b"0") or errno.EPERM
        sysctls = {
            name: _sysctl(name)
            for name in (
                "kernel.apparmor_restrict_unprivileged_userns",
                "kernel.unprivileged_userns_clone",
                "user.max_user_namespaces",
            )
        }
        _report(fd, {"op": "setup-error", "message": explain_unshare_failure(code, sysctls)})
        os.waitpid(child, 0)
        return SETUP_FAILED
    try:
        _write_maps(child)
    except OSError as exc:
        _report(fd, {"op": "setup-error", "message": f"writing the user namespace's uid/gid maps: {exc}"})
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        return SETUP_FAILED
    os.write(to_child_w, b"1")
    os.close(to_child_w)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) & 0xFF


def main() -> int:
    return launch(JailSpec.load(sys.argv[1]))


if __name__ == "__main__":
    raise SystemExit(main())
