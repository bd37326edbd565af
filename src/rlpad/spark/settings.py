"""Spark settings: the master URL parser, SparkSettings and the spark.* conf they give."""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

MASTER_SETTING = "RLPAD_SPARK_MASTER"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_LOCAL_RE = re.compile(r"^local(?:\[(?P<threads>\*|[1-9][0-9]*)(?:,(?P<failures>[1-9][0-9]*))?\])?$")
_HOSTPORT_RE = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                          r":(?P<port>[0-9]{1,5})$")
_K8S_RE = re.compile(r"^k8s://(?:(?P<scheme>https?)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|"
                     r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(?P<port>[0-9]{1,5}))?/?$")
_MEMORY_RE = re.compile(r"^[1-9][0-9]*[kmgtp]?b?$", re.IGNORECASE)
_TRIAL_FN_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_MASTER_FORMS = ("local, local[*], local[N], local[N,F] (F = attempts per task), "
                 "spark://HOST:PORT[,HOST:PORT...] or k8s://https://HOST[:PORT]")


class SparkSettingsError(ValueError):
    """A malformed Spark setting; the message names the setting."""


# ---- settings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Master:
    """A parsed master URL."""
    url: str
    kind: str                                   # "local" | "spark" | "k8s"
    threads: str = ""                           # local: "*" or N
    failures: int | None = None                 # local[N,F]: F
    endpoints: tuple[tuple[str, int], ...] = ()  # spark:// (several for HA) or the k8s API server

    @property
    def is_cluster(self) -> bool:
        return self.kind != "local"

    @property
    def is_loopback(self) -> bool:
        return self.kind == "local" or (
            self.kind == "spark" and all(h in _LOOPBACK for h, _ in self.endpoints))


def parse_master(url: str) -> Master:
    """Parse a master URL or raise SparkSettingsError naming RLPAD_SPARK_MASTER."""
    def bad(why: str) -> SparkSettingsError:
        return SparkSettingsError(
            f"{MASTER_SETTING}={url!r} is not a usable Spark master URL ({why}); "
            f"expected one of: {_MASTER_FORMS}")

    if not isinstance(url, str) or not url.strip():
        raise bad("empty")
    url = url.strip()
    if url.startswith("local"):
        m = _LOCAL_RE.match(url)
        if not m:
            raise bad("local needs a thread count >= 1 or '*', and optionally ',F' with F >= 1")
        return Master(url, "local", m["threads"] or "1",
                      int(m["failures"]) if m["failures"] else None)
    if url.startswith("spark://"):
        rest = url[len("spark://"):]
        endpoints = []
        for part in rest.split(","):
            m = _HOSTPORT_RE.match(part)
            if not m:
                raise bad(f"{part!r} is not HOST:PORT")
            port = int(m["port"])
            if not 0 < port < 65536:
                raise bad(f"port {port} is out of range")
            endpoints.append((m["host"].strip("[]"), port))
        return Master(url, "spark", endpoints=tuple(endpoints))
    if url.startswith("k8s://"):
        m = _K8S_RE.match(url)
        if not m:
            raise bad("k8s needs the API server, e.g. k8s://https://10.0.0.1:6443")
        port = int(m["port"]) if m["port"] else (80 if m["scheme"] == "http" else 443)
        if not 0 < port < 65536:
            raise bad(f"port {port} is out of range")
        return Master(url, "k8s", endpoints=((m["host"].strip("[]"), port),))
    raise bad("unknown scheme")


@dataclass(frozen=True)
class SparkSettings:
    """Where and how stage 4 runs. Field names map to RLPAD_SPARK_<FIELD> in config.sh."""
    master: str = "local[*]"
    executors: int = 2                 # cluster modes: executor count
    executor_cores: int = 1            # task slots per executor (one trial per slot)
    executor_memory: str = "2g"
    driver_memory: str = ""            # "" = Spark's default; applies when the JVM starts
    max_failures: int = 4              # spark.task.maxFailures for cluster masters (local: local[N,F])
    image: str = ""                    # k8s: container image holding rlpad and its venv
    namespace: str = "default"         # k8s
    service_account: str = "spark"     # k8s: driver pod's service account (needs pod create/delete)
    k8s_entry: str = "local:///opt/rlpad/src/rlpad/spark/submit_entry.py"  # k8s: submit_entry.py in the image
    python: str = ""                   # worker/driver python; "" = sys.executable ("python3" on k8s)
    app_name: str = "rlpad"
    ui: bool = False                   # Spark web UI (off: faster start, no port clashes)
    connect_timeout_s: float = 5.0     # TCP probe of a spark:// master before starting
    executor_wait_s: float = 120.0     # cluster masters: wait this long for a first executor
    conf: dict[str, str] = field(default_factory=dict)  # extra spark.* settings, applied last

    def validate(self) -> Master:
        """Check every field; return the parsed master. Errors name the setting."""
        master = parse_master(self.master)

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise SparkSettingsError(
                    f"RLPAD_SPARK_{name.upper()}={getattr(self, name)!r}: {what}")

        for name in ("executors", "executor_cores", "max_failures"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name,
                 "must be an integer >= 1")
        need(bool(_MEMORY_RE.match(str(self.executor_memory))), "executor_memory",
             "must be a JVM memory size like 512m or 2g")
        need(self.driver_memory == "" or bool(_MEMORY_RE.match(str(self.driver_memory))),
             "driver_memory", "must be empty or a JVM memory size like 512m or 2g")
        need(bool(self.app_name.strip()), "app_name", "must not be empty")
        need(self.connect_timeout_s > 0, "connect_timeout_s", "must be > 0")
        need(self.executor_wait_s > 0, "executor_wait_s", "must be > 0")
        for k in self.conf:
            need(isinstance(k, str) and k.startswith("spark."), "conf",
                 f"key {k!r} is not a spark.* setting")
        if master.kind == "k8s":
            need(bool(self.image), "image", f"is required for a k8s master ({self.master})")
            need(bool(re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", self.namespace)), "namespace",
                 "must be a Kubernetes namespace name")
            need(self.k8s_entry.startswith(("local://", "/", "http://", "https://", "s3a://",
                                             "gs://")), "k8s_entry",
                 "must be a path in the image (local:///...) or a URL")
        return master

    def python_exec(self, master: Master) -> str:
        return self.python or ("python3" if master.kind == "k8s" else sys.executable)


def spark_conf(settings: SparkSettings, master: Master | None = None) -> dict[str, str]:
    """The spark.* settings shared by `session` and `spark_submit_command`."""
    master = master or settings.validate()
    conf = {
        # One Python worker per task slot, kept alive between trials: the trial function's
        # imports (TF ~3 s) and worker_cache entries survive from one trial to the next.
        "spark.python.worker.reuse": "true",
        "spark.ui.enabled": str(settings.ui).lower(),
        # run_grid reports trials done/total, rate and ETA itself; Spark's bar only garbles it.
        "spark.ui.showConsoleProgress": "false",
        "spark.app.name": settings.app_name,
        # WARN from the SparkContext's start on (under spark-submit the default is INFO).
        "spark.log.level": "WARN",
    }
    if settings.driver_memory:
        conf["spark.driver.memory"] = settings.driver_memory
    if master.is_cluster:
        conf["spark.task.maxFailures"] = str(settings.max_failures)
        conf["spark.executor.cores"] = str(settings.executor_cores)
        conf["spark.executor.memory"] = settings.executor_memory
        if master.kind == "spark":
            # Standalone has no executor count; capping the app's cores gives the same.
            conf["spark.cores.max"] = str(settings.executors * settings.executor_cores)
        else:
            conf["spark.executor.instances"] = str(settings.executors)
    if master.is_loopback:
        # Executors on a loopback cluster must reach the driver on 127.0.0.1, even if the
        # machine's hostname resolves elsewhere (or nowhere).
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    if master.kind == "k8s":
        conf.update({
            "spark.kubernetes.container.image": settings.image,
            "spark.kubernetes.namespace": settings.namespace,
            "spark.kubernetes.authenticate.driver.serviceAccountName": settings.service_account,
        })
    conf.update({str(k): str(v) for k, v in settings.conf.items()})
    return conf
