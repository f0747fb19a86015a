"""Keeps the container image and the Kubernetes manifests honest where neither a Docker engine
nor a cluster is available (scripts/check-deploy.sh installs the tools and runs this).

The Dockerfile is linted (hadolint) and read: every file it COPYs from the build context must be
committed and let through by .dockerignore, the assets must come from scripts/setup.sh (the script
local runs and CI use), the runtime base must have a glibc the ONNX Runtime wheel accepts, and
its ENTRYPOINT, CMD and default config must be accepted by the real binary.

The manifests are rendered with `kubectl kustomize` and validated against the Kubernetes JSON
schemas (kubernetes-validate, strict: unknown fields fail), then checked against the binary: the
ConfigMap's TOML passes `cachet check-config` with the container's environment, the container's
arguments parse, the probes hit the port that serves grpc.health.v1 on an address the kubelet can
reach, the secrets named by the config come from Secrets, and the data directory is on a
writable volume.

Usage: check_deploy.py CACHET_BINARY
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
KUSTOMIZE_DIR = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes with native sidecars on by default (SidecarContainers, beta in 1.29),
# and the newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.29.0", "1.37.0"]
# glibc of the Debian releases a runtime stage may use.
DEBIAN_GLIBC = {"bullseye": (2, 31), "bookworm": (2, 36), "trixie": (2, 41)}
# The [server] keys whose ports serve grpc.health.v1 (src/server/mod.rs registers the health
# service on both gRPC ports).
HEALTH_KEYS = ["listen", "admin_listen"]
# The ports that take no credentials: in a pod only the app, over loopback, may reach them.
CLIENT_KEYS = ["listen", "http_listen"]
# Keys the pod's config must state rather than inherit, because the manifests depend on them.
EXPLICIT_KEYS = [
    ("server", "listen"),
    ("server", "admin_listen"),
    ("server", "http_listen"),
    ("server", "metrics_listen"),
    ("storage", "data_dir"),
    ("storage", "max_entries"),
    ("upstream", "api_key_env"),
    ("upstream", "timeout_secs"),
    ("admin", "token_env"),
]
# hadolint, kubectl and kubernetes-validate, installed beside this interpreter by check-deploy.sh
# (never whatever else is on PATH, such as a cloud SDK's kubectl).
TOOLS = Path(sys.executable).parent
PROBES = ["startupProbe", "readinessProbe", "livenessProbe"]
# Resident memory measured with the release binary (README, "Deploy as a sidecar"): a base
# (model, ONNX Runtime, load peak) and a slope per 1,000 entries kept.
MEMORY_BASE_MIB = 230
MEMORY_MIB_PER_1000_ENTRIES = 6.5
# Time a drain needs beyond the longest in-flight upstream call: checkpoint and flush.
DRAIN_MARGIN_SECS = 10


class Checks:
    """Counts checks and collects failures, so one run reports everything that is wrong."""

    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok    {what}")
        else:
            self.failed.append(what)
            print(f"FAIL  {what}{': ' + detail if detail else ''}")
        return ok


def run(cmd, env=None, cwd=ROOT):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def clean_env(extra):
    """The binary's environment: nothing of this machine's CACHET_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHET_")}
    env.update(extra, RUST_BACKTRACE="0")
    return env


# --- Dockerfile -----------------------------------------------------------------------------


@dataclass
class Image:
    """What the manifests inherit from the image: its environment and its user."""

    env: dict
    uid: str


@dataclass
class Stage:
    image: str
    name: str
    instructions: list = field(default_factory=list)  # (keyword, argument text)

    def all(self, keyword):
        return [arg for kw, arg in self.instructions if kw == keyword]

    def env(self):
        values = {}
        for arg in self.all("ENV"):
            for token in shlex.split(arg):
                key, _, value = token.partition("=")
                values[key] = value
        return values


def parse_dockerfile(text):
    """Stages with their instructions; continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    stages = []
    for line in logical:
        keyword, _, arg = line.partition(" ")
        keyword, arg = keyword.upper(), arg.strip()
        if keyword == "FROM":
            words = arg.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, arg))
    return stages


def copy_parts(arg):
    """(flags, sources, destination) of a COPY."""
    words = shlex.split(arg)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    if words and words[0].startswith("["):
        words = json.loads(" ".join(words))
    return flags, words[:-1], words[-1]


def dockerignore_allows(patterns, path):
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    allowed = True
    parts = path.split("/")
    for negate, regex in patterns:
        if any(regex.fullmatch("/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            allowed = negate
    return allowed


def dockerignore_patterns(text):
    """(negated, regex) per line of a .dockerignore: `*` and `?` stay within one path segment,
    `**` crosses them."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((negate, re.compile(regex)))
    return patterns


def tracked_files(path):
    """The committed files at or below `path`: what a fresh clone, and so a build, has."""
    return run(["git", "ls-files", "--", path]).stdout.split()


def glibc_of(image):
    """The glibc of a Debian-based image, from its release codename; None if unknown."""
    for codename, version in DEBIAN_GLIBC.items():
        if codename in image:
            return version
    return None


def check_dockerfile(checks, binary):
    """Lints and reads the Dockerfile; returns what the pod inherits from the image."""
    text = (ROOT / "Dockerfile").read_text()
    stages = parse_dockerfile(text)
    names = {s.name for s in stages}
    lint = run([TOOLS / "hadolint", "--no-color", "Dockerfile"])
    checks.check(lint.returncode == 0, "hadolint Dockerfile", lint.stdout + lint.stderr)

    ignore = dockerignore_patterns((ROOT / ".dockerignore").read_text())
    for stage in stages:
        for arg in stage.all("COPY"):
            flags, sources, _ = copy_parts(arg)
            if "from" in flags:
                checks.check(
                    flags["from"] in names, f"COPY --from={flags['from']} names an earlier stage"
                )
                continue
            for source in sources:
                files = tracked_files(source)
                blocked = [f for f in files if not dockerignore_allows(ignore, f)]
                checks.check(
                    files and not blocked,
                    f"COPY {source}: committed and in the build context",
                    "missing from git" if not files else f".dockerignore drops {blocked[:3]}",
                )

    build = next((s for s in stages if any("cargo build" in r for r in s.all("RUN"))), None)
    if checks.check(build is not None, "a stage runs cargo build"):
        runs = " ".join(build.all("RUN"))
        checks.check("--release" in runs and "--locked" in runs, "cargo build --release --locked")
        rust = re.match(r"rust:(\d+)\.(\d+)", build.image)
        wanted = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["rust-version"]
        need = tuple(int(x) for x in wanted.split(".")[:2])
        checks.check(
            rust and (int(rust[1]), int(rust[2])) >= need,
            f"build image {build.image} has Rust >= rust-version {wanted}",
        )

    # The assets: one stage copies scripts/setup.sh in and runs it with CACHET_ASSETS_DIR set.
    assets = None
    for stage in stages:
        for arg in stage.all("COPY"):
            flags, sources, dest = copy_parts(arg)
            if "from" not in flags and "scripts/setup.sh" in sources:
                if any(dest in r and "setup.sh" in r for r in stage.all("RUN")):
                    assets = stage
    checks.check(assets is not None, "a stage runs the shared scripts/setup.sh")
    assets_dir = assets.env().get("CACHET_ASSETS_DIR") if assets else None
    checks.check(bool(assets_dir), "the assets stage sets CACHET_ASSETS_DIR for setup.sh")

    runtime = stages[-1]
    runtime_env = runtime.env()
    copies = [copy_parts(a) for a in runtime.all("COPY")]
    carried = [d for f, s, d in copies if assets and f.get("from") == assets.name and s == [assets_dir]]
    checks.check(
        bool(carried) and runtime_env.get("CACHET_ASSETS_DIR") in carried,
        "the runtime stage carries the assets and points CACHET_ASSETS_DIR at them",
    )

    setup = (ROOT / "scripts" / "setup.sh").read_text()
    manylinux = re.search(r"manylinux_(\d+)_(\d+)", setup)
    glibc = glibc_of(runtime.image)
    checks.check(
        manylinux and glibc and glibc >= (int(manylinux[1]), int(manylinux[2])),
        f"runtime base {runtime.image} (glibc {glibc}) runs the onnxruntime {manylinux and manylinux[0]} library",
    )
    build_glibc = glibc_of(build.image) if build else None
    checks.check(
        build_glibc and glibc and build_glibc <= glibc,
        f"the binary is linked against a glibc no newer than the runtime's ({build and build.image})",
    )

    user = runtime.all("USER")
    uid = user[-1].split(":")[0] if user else "root"
    checks.check(uid not in ("0", "root"), f"the runtime stage runs as a non-root user ({uid})")

    entrypoint = json.loads(runtime.all("ENTRYPOINT")[-1])
    cmd = json.loads(runtime.all("CMD")[-1]) if runtime.all("CMD") else []
    binary_dest = [d for f, s, d in copies if f.get("from") == (build.name if build else None)]
    checks.check(entrypoint[0] in binary_dest, f"ENTRYPOINT {entrypoint[0]} is the built binary")

    config_dest = runtime_env.get("CACHET_CONFIG")
    config_src = next((s[0] for f, s, d in copies if "from" not in f and d == config_dest), None)
    image = Image(runtime_env, uid)
    if not checks.check(config_src is not None, f"CACHET_CONFIG={config_dest} is copied in"):
        return image
    env = clean_env({**runtime_env, "CACHET_CONFIG": str(ROOT / config_src)})
    parsed = run([binary, *entrypoint[1:], *cmd, "--help"], env=env)
    checks.check(
        parsed.returncode == 0 and cmd[:1] == ["serve"],
        f"the binary accepts CMD {cmd}",
        parsed.stderr,
    )
    # `check-config` reads the config exactly as `serve` does (CACHET_CONFIG, then CACHET_*).
    checked = run([binary, "check-config", *cmd[1:]], env=env)
    checks.check(
        checked.returncode == 0, f"{config_src} passes cachet check-config", checked.stderr
    )
    if not (ROOT / config_src).is_file():
        return image
    config = tomllib.loads((ROOT / config_src).read_text())
    data_dir = config.get("storage", {}).get("data_dir", "")
    volumes = [v for arg in runtime.all("VOLUME") for v in json.loads(arg)]
    checks.check(
        any(is_under(data_dir, v) for v in volumes),
        f"storage.data_dir {data_dir} is on a VOLUME {volumes}",
    )
    exposed = {int(p.split("/")[0]) for arg in runtime.all("EXPOSE") for p in arg.split()}
    for key, addr in listeners(config):
        if addr and not ip_address(addr[0]).is_loopback:
            checks.check(addr[1] in exposed, f"server.{key} port {addr[1]} is EXPOSEd")
    return image


def is_under(path, directory):
    return bool(path) and (path == directory or path.startswith(directory.rstrip("/") + "/"))


def listeners(config):
    """(key, (host, port) or None) for every listening address in a config's [server]."""
    out = []
    for key, value in config.get("server", {}).items():
        if key == "listen" or key.endswith("_listen"):
            host, _, port = str(value).rpartition(":")
            out.append((key, (host.strip("[]"), int(port)) if value else None))
    return out


# --- Kubernetes -----------------------------------------------------------------------------


def quantity(text):
    """Bytes of a Kubernetes memory quantity (Mi, Gi, M, G, plain bytes)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(text))
    if not m:
        return None
    scale = {None: 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    scale.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})
    return float(m[1]) * scale[m[2]]


def check_kubernetes(checks, binary, image):
    """Renders the kustomization, validates it against the schemas, then checks the sidecar."""
    rendered = run([TOOLS / "kubectl", "kustomize", str(KUSTOMIZE_DIR)])
    if not checks.check(rendered.returncode == 0, "kubectl kustomize deploy/kubernetes", rendered.stderr):
        return
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "rendered.yaml"
        manifest.write_text(rendered.stdout)
        for version in KUBERNETES_VERSIONS:
            valid = run([TOOLS / "kubernetes-validate", "--strict", "--quiet", "-k", version, str(manifest)])
            checks.check(
                valid.returncode == 0,
                f"manifests valid against the Kubernetes {version} schemas (strict)",
                valid.stdout + valid.stderr,
            )
        docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        check_sidecar(checks, binary, docs, Path(tmp), image)


def check_sidecar(checks, binary, docs, tmp, image):
    """The rendered pod against the binary and its config: what only cachet's own rules know."""
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    if not checks.check(len(workloads) == 1, "one workload carries the sidecar"):
        return
    pod = workloads[0]["spec"]["template"]["spec"]
    sidecars = [c for c in pod.get("initContainers", []) if c["name"] == "cachet"]
    if not checks.check(len(sidecars) == 1, "cachet is an init container"):
        return
    c = sidecars[0]
    checks.check(c.get("restartPolicy") == "Always", "cachet is a native sidecar (restartPolicy: Always)")

    # The config as the container sees it: the ConfigMap's files where the pod mounts them.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    args = list(c.get("args", []))
    local_args, config_file = [], None
    for arg in args:
        for path, mount in mounts.items():
            source = volumes[mount["name"]].get("configMap")
            if source and is_under(arg, path):
                data = configmaps[source["name"]]["data"]
                name = arg[len(path) :].lstrip("/")
                if checks.check(name in data, f"{arg} is in ConfigMap {source['name']}"):
                    config_file = tmp / name
                    config_file.write_text(data[name])
                    arg = str(config_file)
        local_args.append(arg)
    if not checks.check(config_file is not None, "the sidecar's config comes from a ConfigMap"):
        return
    env = {}
    for var in c.get("env", []):
        env[var["name"]] = var.get("value", "from-a-secret" if "valueFrom" in var else "")
    parsed = run([binary, *local_args, "--help"], env=clean_env({**image.env, **env}))
    checks.check(
        parsed.returncode == 0 and local_args[:1] == ["serve"],
        f"the binary accepts the sidecar's args {args}",
        parsed.stderr,
    )
    checked = run(
        [binary, "check-config", *local_args[1:]], env=clean_env({**image.env, **env})
    )
    checks.check(
        checked.returncode == 0,
        "the ConfigMap's TOML passes cachet check-config with the sidecar's environment",
        checked.stderr,
    )

    config = tomllib.loads(config_file.read_text())
    for section, key in EXPLICIT_KEYS:
        checks.check(key in config.get(section, {}), f"the pod's config states {section}.{key}")
    ports = dict(listeners(config))

    # Probes: the kubelet connects to the pod IP, without TLS or a token, to a port with health.
    probed = {c.get(p, {}).get("grpc", {}).get("port") for p in PROBES}
    checks.check(len(probed) == 1 and None not in probed, f"{', '.join(PROBES)} are gRPC probes on one port")
    port = probed.pop()
    health = next((k for k in HEALTH_KEYS if ports.get(k) and ports[k][1] == port), None)
    checks.check(health is not None, f"the probed port {port} serves grpc.health.v1 ({' or '.join(HEALTH_KEYS)})")
    if health is not None:
        checks.check(
            not ip_address(ports[health][0]).is_loopback,
            f"server.{health} {ports[health]} is reachable from the kubelet",
        )
    checks.check(
        not (health == "listen" and "tls" in config.get("server", {})),
        "the probed port is plain gRPC (kubelet probes speak no TLS)",
    )
    for probe in PROBES:
        service = c.get(probe, {}).get("grpc", {}).get("service", "")
        checks.check(service == "", f"{probe} asks the overall health (service \"\")")
    container_ports = {p["containerPort"] for p in c.get("ports", [])}
    for key, addr in ports.items():
        if addr is None:
            continue
        if ip_address(addr[0]).is_loopback:
            continue
        checks.check(addr[1] in container_ports, f"server.{key} port {addr[1]} is a containerPort")
    for key in CLIENT_KEYS:
        addr = ports.get(key)
        checks.check(
            addr is None or ip_address(addr[0]).is_loopback,
            f"server.{key} (no credentials) stays on loopback in the pod",
        )

    # What the app is pointed at must be what cachet listens on.
    local_ports = {addr[1] for addr in ports.values() if addr}
    for app in pod.get("containers", []):
        for var in app.get("env", []):
            m = re.match(r"https?://(?:127\.0\.0\.1|localhost):(\d+)", str(var.get("value", "")))
            if m:
                checks.check(
                    int(m[1]) in local_ports,
                    f"{app['name']}: {var['name']} points at a port cachet listens on ({m[1]})",
                )

    # Secrets: the variables the config names come from Secrets, not from values in the manifest.
    secret_vars = {
        v["name"] for v in c.get("env", []) if "secretKeyRef" in v.get("valueFrom", {})
    }
    for section, key in (("upstream", "api_key_env"), ("admin", "token_env")):
        name = config[section][key]
        checks.check(name in secret_vars, f"{section}.{key} = {name} comes from a Secret")

    # Storage and security.
    data_dir = config["storage"]["data_dir"]
    data_mount = [
        m for path, m in mounts.items() if is_under(data_dir, path) and not m.get("readOnly")
    ]
    checks.check(
        bool(data_mount)
        and any(k in volumes[data_mount[0]["name"]] for k in ("emptyDir", "persistentVolumeClaim", "ephemeral")),
        f"storage.data_dir {data_dir} is on a writable data volume",
    )
    security = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
    checks.check(security.get("runAsNonRoot") is True, "the sidecar runs as non-root")
    checks.check(
        str(security.get("runAsUser")) == image.uid,
        f"runAsUser {security.get('runAsUser')} is the image's user {image.uid}",
    )
    if security.get("readOnlyRootFilesystem"):
        checks.check("/tmp" in mounts, "a read-only root filesystem has /tmp mounted")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    timeout = config["upstream"]["timeout_secs"]
    checks.check(
        grace >= timeout + DRAIN_MARGIN_SECS,
        f"terminationGracePeriodSeconds {grace} covers a drain (upstream.timeout_secs {timeout} + {DRAIN_MARGIN_SECS})",
    )
    resources = c.get("resources", {})
    request = quantity(resources.get("requests", {}).get("memory"))
    limit = quantity(resources.get("limits", {}).get("memory"))
    checks.check(
        request is not None and limit is not None and limit >= request,
        f"memory request {resources.get('requests', {}).get('memory')} and limit "
        f"{resources.get('limits', {}).get('memory')} are quantities, limit >= request",
    )
    entries = config["storage"].get("max_entries", 0)
    needed = MEMORY_BASE_MIB + MEMORY_MIB_PER_1000_ENTRIES * entries / 1000
    checks.check(
        entries > 0 and limit is not None and limit >= needed * 2**20,
        f"storage.max_entries {entries} bounds the cache within the memory limit "
        f"(needs about {needed:.0f} MiB by the measured rule)",
    )


def main():
    binary = str(Path(sys.argv[1]).resolve())
    checks = Checks()
    image = check_dockerfile(checks, binary)
    check_kubernetes(checks, binary, image)
    print(f"deploy checks: {checks.passed} passed, {len(checks.failed)} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
