"""Run a real Apache Kafka 4.x broker on this machine, without Docker (design.md section 6).

Standard library only: it runs before any virtualenv exists, and the test fixtures import it.

    python3 dev/kafka/launcher.py jars                  # resolve the broker's jars (cached)
    python3 dev/kafka/launcher.py up [--port 9092]      # format storage if needed, start, wait
    python3 dev/kafka/launcher.py status                # exit 0 if running, 1 if not
    python3 dev/kafka/launcher.py down                  # SIGTERM, then SIGKILL after 20 s

The jars come from Maven Central through ``dev/kafka/pom.xml`` into the git-ignored
``dev/kafka/cache/libs``; a stamp holding the pom's hash makes that step a no-op once done.
The broker runs in KRaft combined mode (broker and controller, node 1) on 127.0.0.1, as its
own session (process group), with everything under one data directory:

    <data-dir>/server.properties   <data-dir>/log4j2.properties   <data-dir>/kraft/ (log.dirs)
    <data-dir>/broker.log          <data-dir>/broker.pid

Errors: ``LauncherError`` is the root; ``ToolMissingError`` (java or mvn absent, exit code 2),
``JarResolutionError`` (Maven failed twice), ``BrokerStartError`` (carries the log's tail).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
CACHE_DIR = HERE / "cache"
DEFAULT_DATA_DIR = CACHE_DIR / "run"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
HOST = "127.0.0.1"
NODE_ID = 1
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
MIN_JAVA = 17
MARKER = "-Dcallstream.kafka.dataDir="  # tags our JVMs, so a stray one can be found in /proc
LOG_TAIL_LINES = 40


class LauncherError(Exception):
    """Root of the launcher's errors; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ToolMissingError(LauncherError):
    """``java`` (17+) or ``mvn`` is not installed: nothing to retry, install it."""

    exit_code = 2


class JarResolutionError(LauncherError):
    """Maven could not resolve the broker's jars (it was tried twice)."""


class BrokerStartError(LauncherError):
    """The broker did not come up; the message ends with the tail of its log."""


@dataclass(frozen=True)
class Broker:
    """A running broker started by this launcher (or found running in ``data_dir``)."""

    pid: int
    port: int
    controller_port: int
    data_dir: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        stop(self.data_dir, timeout=timeout)
        if self._proc is not None:  # reap our child, so no zombie nor ResourceWarning is left
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)


# --- tools -----------------------------------------------------------------------------------


def find_java() -> str:
    """Return the ``java`` to run (``$JAVA_HOME/bin/java`` first); raise if absent or < 17."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if java is None:
        raise ToolMissingError(
            "java not found: Kafka 4.x needs a Java 17+ runtime on PATH or in JAVA_HOME "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=30, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if match and major == 1 and match.group(2):  # "1.8.0_x" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise ToolMissingError(f"{java} is Java {major or '?'}; Kafka 4.x needs Java {MIN_JAVA}+")
    return java


def find_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissingError(
            "mvn not found: Maven 3.8+ resolves the Kafka jars from Maven Central "
            "(Debian: apt-get install maven)"
        )
    return mvn


# --- jars ------------------------------------------------------------------------------------


def _pom_hash(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so concurrent launchers resolve or format only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def jars_complete(cache_dir: Path = CACHE_DIR, pom: Path = POM) -> bool:
    """True if ``cache_dir/libs`` holds every jar the stamp lists, for this very pom."""
    stamp = cache_dir / "libs.stamp"
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    libs = cache_dir / "libs"
    return (
        data.get("pom_sha256") == _pom_hash(pom)
        and bool(data.get("jars"))
        and all((libs / name).is_file() for name in data["jars"])
    )


def ensure_jars(cache_dir: Path = CACHE_DIR, pom: Path = POM) -> Path:
    """Resolve the broker's jars into ``cache_dir/libs`` unless already there; return that dir."""
    libs = cache_dir / "libs"
    if jars_complete(cache_dir, pom):
        return libs
    mvn = find_mvn()
    with _locked(cache_dir / ".lock"):
        if jars_complete(cache_dir, pom):  # another process did it while we waited
            return libs
        staging = cache_dir / "libs.partial"
        cmd = [
            mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom),
            "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]  # fmt: skip
        output = ""
        for attempt in (1, 2):  # Maven Central hiccups: retry once
            shutil.rmtree(staging, ignore_errors=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
            output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr).strip()
            if proc.returncode == 0 and any(staging.glob("*.jar")):
                break
            if attempt == 1:
                time.sleep(3)
        else:
            raise JarResolutionError(f"mvn failed twice: {' '.join(cmd)}\n{output[-4000:]}")
        shutil.rmtree(libs, ignore_errors=True)
        shutil.rmtree(cache_dir / "cds", ignore_errors=True)  # archives of the old jars
        staging.rename(libs)
        jars = sorted(p.name for p in libs.glob("*.jar"))
        stamp = {"pom_sha256": _pom_hash(pom), "jars": jars}
        (cache_dir / "libs.stamp").write_text(json.dumps(stamp, indent=1) + "\n")
    return libs


# --- configuration ---------------------------------------------------------------------------


def new_cluster_id() -> str:
    """A random cluster id as Kafka makes them (URL-safe base64 of 16 bytes), never starting with
    '-': the storage tool would read such an id as an option (as Kafka's ``Uuid.randomUuid``
    does, draw again; it happened here once in a few dozen formats)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(port: int, controller_port: int, log_dir: Path) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        # a dynamic single-voter quorum: what `StorageTool format --standalone` requires
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "log.dirs": str(log_dir),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",  # callstream creates its topics explicitly
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",  # the default 50 slows the first group join
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        "default.replication.factor": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.segment.bytes": str(16 * 1024 * 1024),
        "log.retention.hours": "24",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


LOG4J2_PROPERTIES = """\
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def _read_ports(data_dir: Path) -> tuple[int, int] | None:
    try:
        text = (data_dir / "server.properties").read_text()
    except OSError:
        return None
    listeners = re.search(r"^listeners=(.*)$", text, re.M)
    ports = dict(re.findall(r"(\w+)://[^:,]+:(\d+)", listeners.group(1) if listeners else ""))
    if "PLAINTEXT" not in ports or "CONTROLLER" not in ports:
        return None
    return int(ports["PLAINTEXT"]), int(ports["CONTROLLER"])


# --- processes -------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is no zombie (reaps it when it is our own child)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def broker_pids(data_dir: Path) -> list[int]:
    """Pids of live JVMs that this launcher started for ``data_dir`` (found through /proc)."""
    tag = f"{MARKER}{data_dir.resolve()}"
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [pid for pid in pids if tag in _cmdline(pid) and _pid_alive(pid)]


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """Child side of ``start(die_with_parent=True)``: SIGTERM the JVM when its parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG, kept across exec


def log_tail(data_dir: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = (data_dir / "broker.log").read_text(errors="replace")
    except OSError:
        return "(no broker.log)"
    return "\n".join(text.splitlines()[-lines:]) or "(broker.log is empty)"


# --- class-data sharing: an AppCDS archive roughly halves the JVM's start on a busy machine ---


def _cds_archive(java: str, cache_dir: Path = CACHE_DIR, pom: Path = POM) -> Path:
    key = hashlib.sha256(f"{_pom_hash(pom)} {os.path.realpath(java)}".encode()).hexdigest()
    return cache_dir / "cds" / f"kafka-{key[:16]}.jsa"


def _cds_flags(java: str, data_dir: Path) -> list[str]:
    """Use the archive if there is one; else have this JVM write one when it exits."""
    archive = _cds_archive(java)
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}"]
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f"{archive.name}.partial-{uuid.uuid4().hex[:8]}")
    (data_dir / "cds.partial").write_text(f"{partial}\n")
    return [f"-XX:ArchiveClassesAtExit={partial}"]


def _adopt_cds_archive(data_dir: Path) -> None:
    """Once the JVM is gone, move the archive it wrote at exit into place (if it wrote one)."""
    marker = data_dir / "cds.partial"
    with contextlib.suppress(OSError):
        partial = Path(marker.read_text().strip())
        if partial.is_file() and partial.stat().st_size > 0:
            partial.replace(partial.with_name(partial.name.split(".partial-")[0]))
        partial.unlink(missing_ok=True)
    marker.unlink(missing_ok=True)


# --- readiness: ApiVersions + Metadata over the Kafka wire protocol ---------------------------


def _request(sock: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
    client = b"callstream-launcher"
    header = struct.pack(">hhih", api_key, version, 7, len(client)) + client
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv(sock, 4))
    return _recv(sock, size)[4:]  # drop the correlation id (response header v0)


def _recv(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def probe(port: int, timeout: float = 3.0) -> bool:
    """True once the broker at ``port`` answers Metadata with itself registered as broker 1."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            resp = _request(sock, 18, 0, b"")  # ApiVersions v0: every broker answers it
            error, count = struct.unpack(">hi", resp[:6])
            versions = {}
            for i in range(count):
                key, low, high = struct.unpack(">hhh", resp[6 + 6 * i : 12 + 6 * i])
                versions[key] = (low, high)
            if error or 3 not in versions:
                return False
            low, high = versions[3]
            version = max(low, 4)
            if version > min(high, 8):  # no non-flexible Metadata version left: trust ApiVersions
                return True
            body = struct.pack(">i?", 0, False) + (b"\0\0" if version >= 8 else b"")
            resp = _request(sock, 3, version, body)
            (_throttle, brokers) = struct.unpack(">ii", resp[:8])
            node_id = struct.unpack(">i", resp[8:12])[0] if brokers else -1
            return brokers >= 1 and node_id == NODE_ID
    except (OSError, struct.error):
        return False


# --- start / stop / status -------------------------------------------------------------------


def status(data_dir: Path = DEFAULT_DATA_DIR) -> Broker | None:
    """The broker running for ``data_dir``, or None."""
    data_dir = data_dir.resolve()
    pids = broker_pids(data_dir)
    ports = _read_ports(data_dir)
    if not pids or ports is None:
        return None
    return Broker(pid=pids[0], port=ports[0], controller_port=ports[1], data_dir=data_dir)


def start(
    port: int = DEFAULT_PORT,
    controller_port: int = DEFAULT_CONTROLLER_PORT,
    data_dir: Path = DEFAULT_DATA_DIR,
    log_dir: Path | None = None,
    *,
    timeout: float = START_TIMEOUT_S,
    heap: tuple[str, ...] = ("-Xms256m", "-Xmx512m"),
    fresh: bool = False,
    die_with_parent: bool = False,
    cds: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Broker:
    """Start a broker (formatting storage first if needed) and wait until it serves metadata.

    ``log_dir`` is Kafka's ``log.dirs`` (the partitions' data), ``data_dir/kraft`` by default.
    If a broker already runs for ``data_dir`` on the same ports, it is returned as is
    (unless ``fresh``, which wipes ``data_dir`` first and so needs it stopped).
    ``die_with_parent`` makes the kernel SIGTERM the JVM when the calling thread's process
    dies (test sessions use it as a last resort).
    ``cds`` uses the class-data-sharing archive in the cache or, when there is none yet, has
    this JVM write one as it exits (``stop`` moves it into place): later starts are faster.
    """
    say = progress or (lambda _msg: None)
    data_dir = data_dir.resolve()
    kraft_dir = (log_dir or data_dir / "kraft").resolve()
    java = find_java()
    libs = ensure_jars()
    running = status(data_dir)
    if running is None:
        _adopt_cds_archive(data_dir)  # a broker that died without `stop` may have left one
    if running is not None:
        if not fresh and (running.port, running.controller_port) == (port, controller_port):
            return running
        raise BrokerStartError(
            f"a broker already runs for {data_dir} on port {running.port}: stop it first"
        )
    if fresh:
        shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    for p in (port, controller_port):
        if not _free(p):
            raise BrokerStartError(f"port {HOST}:{p} is already in use (another broker?)")
    previous = _read_ports(data_dir)
    if (kraft_dir / "meta.properties").exists() and previous not in (None, (port, controller_port)):
        raise BrokerStartError(
            f"{data_dir} was formatted for ports {previous}; use those, or --fresh to wipe it"
        )
    props = data_dir / "server.properties"
    props.write_text(server_properties(port, controller_port, kraft_dir))
    (data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
    classpath = f"{libs}/*"
    if not (kraft_dir / "meta.properties").exists():
        cluster_id = new_cluster_id()
        say(f"formatting {kraft_dir} (cluster id {cluster_id})")
        archive = _cds_archive(java)
        share = [f"-XX:SharedArchiveFile={archive}"] if cds and archive.is_file() else []
        fmt = subprocess.run(
            [java, *share, "-cp", classpath, "kafka.tools.StorageTool", "format", "--standalone",
             "-t", cluster_id, "-c", str(props)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise BrokerStartError(f"StorageTool format failed:\n{fmt.stdout}{fmt.stderr}")
    log_file = data_dir / "broker.log"
    if log_file.exists():
        log_file.replace(data_dir / "broker.log.1")
    cmd = [
        java, *heap, *(_cds_flags(java, data_dir) if cds else []),
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}",
        f"{MARKER}{data_dir}", "-cp", classpath, "kafka.Kafka", str(props),
    ]  # fmt: skip
    say(f"starting broker on {HOST}:{port} (log: {log_file})")
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
    (data_dir / "broker.pid").write_text(f"{proc.pid}\n")
    broker = Broker(proc.pid, port, controller_port, data_dir, proc)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerStartError(
                    f"broker exited with code {proc.returncode} while starting; "
                    f"{log_file} ends with:\n{log_tail(data_dir)}"
                )
            if probe(port):
                return broker
            time.sleep(0.25)
    except BaseException:  # e.g. Ctrl-C while waiting: leave no half-started JVM behind
        broker.stop()
        raise
    broker.stop()
    raise BrokerStartError(
        f"broker not ready on {HOST}:{port} after {timeout:.0f} s; "
        f"{log_file} ends with:\n{log_tail(data_dir)}"
    )


def stop(data_dir: Path = DEFAULT_DATA_DIR, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop the broker of ``data_dir``: SIGTERM its process group, SIGKILL after ``timeout``.

    Returns True if something was running. Finds the JVM through the pid file and through
    /proc (the marker on its command line), so a lost pid file leaves no stray java behind.
    """
    data_dir = data_dir.resolve()
    pid_file = data_dir / "broker.pid"
    pids = set(broker_pids(data_dir))
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        if f"{MARKER}{data_dir}" in _cmdline(pid) and _pid_alive(pid):
            pids.add(pid)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        live = [pid for pid in pids if _pid_alive(pid)]
        if not live:
            break
        for pid in live:
            try:
                os.killpg(pid, sig)  # the JVM leads its own session: pgid == pid
            except (ProcessLookupError, PermissionError):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_pid_alive(pid) for pid in live):
            time.sleep(0.1)
    if any(_pid_alive(pid) for pid in pids):
        raise LauncherError(f"could not stop broker pid(s) {sorted(pids)}")
    pid_file.unlink(missing_ok=True)
    _adopt_cds_archive(data_dir)
    return bool(pids)


# --- CLI -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "jars"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--controller-port", type=int, default=DEFAULT_CONTROLLER_PORT)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--timeout", type=float, default=START_TIMEOUT_S)
    parser.add_argument("--fresh", action="store_true", help="up: wipe the data dir first")
    args = parser.parse_args(argv)

    def say(msg: str) -> None:
        print(f"kafka: {msg}", file=sys.stderr, flush=True)

    try:
        if args.command == "jars":
            t0 = time.monotonic()
            libs = ensure_jars()
            say(f"{len(list(libs.glob('*.jar')))} jars in {libs} ({time.monotonic() - t0:.1f} s)")
        elif args.command == "up":
            t0 = time.monotonic()
            broker = start(
                args.port, args.controller_port, args.data_dir,
                timeout=args.timeout, fresh=args.fresh, progress=say,
            )  # fmt: skip
            say(f"up: pid {broker.pid}, bootstrap {broker.bootstrap_servers} "
                f"({time.monotonic() - t0:.1f} s)")  # fmt: skip
            print(broker.bootstrap_servers)
        elif args.command == "down":
            say("stopped" if stop(args.data_dir) else "not running")
        else:
            found = status(args.data_dir)
            if found is None:
                say(f"not running (data dir {args.data_dir.resolve()})")
                return 1
            ready = "ready" if probe(found.port) else "not answering yet"
            say(f"running: pid {found.pid}, bootstrap {found.bootstrap_servers}, {ready}")
    except LauncherError as exc:
        say(f"error: {exc}")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
