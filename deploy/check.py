#!/usr/bin/env python3
"""Validates deploy/ (run through deploy/check.sh).

1. Every YAML file under deploy/ parses; the dashboard is valid JSON.
2. Every metric name in the Prometheus rules, the Grafana dashboard and the
   KEDA ScaledObject exists: usher_* in the Go code (with the right type for
   _bucket/_sum/_count), usher:* as a recording rule, anything else in the
   EXTERNAL list below with its source.
3. The kustomizations render (kubectl kustomize or kustomize build), and the
   rendered fleet keeps its invariants: slots = max contexts = KEDA targets,
   terminationGracePeriodSeconds > drain timeout + hand-off time, /dev/shm in
   memory, non-root, probes, known environment variables and Secret keys,
   the KEDA trigger on stream JOBS / consumer workers (read from the Go code).
4. promtool, when found: check rules, the rules' unit tests, and the PromQL of
   every dashboard panel and KEDA query.

Missing optional tools (kustomize, promtool) are reported as "skip"; with
USHER_DEPLOY_CHECK_STRICT=1 a skip fails the check.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover - environment check
    print("FAIL python3 module 'yaml' (PyYAML) is missing: apt-get install python3-yaml or pip install pyyaml")
    sys.exit(1)

DEPLOY = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DEPLOY)
STRICT = os.environ.get("USHER_DEPLOY_CHECK_STRICT", "") not in ("", "0", "false")

# Metrics that do not come from Usher's Go code, with where they come from.
EXTERNAL = {
    "nats_consumer_num_pending": "prometheus-nats-exporter -jsz=all -prefix=nats (NATS Helm chart promExporter)",
    "nats_consumer_num_ack_pending": "prometheus-nats-exporter -jsz=all -prefix=nats (NATS Helm chart promExporter)",
    "kube_horizontalpodautoscaler_status_current_replicas": "kube-state-metrics",
    "kube_horizontalpodautoscaler_status_desired_replicas": "kube-state-metrics",
    "kube_horizontalpodautoscaler_spec_max_replicas": "kube-state-metrics",
    "kube_pod_container_resource_limits": "kube-state-metrics",
}

# Environment variables the manifests may set that no Go Config declares.
EXTRA_ENV = {"HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "GOMEMLIMIT", "TMPDIR"}
SECRET_KEYS = {"USHER_API_KEYS", "USHER_SECRET_KEYS", "USHER_CALLBACK_SECRETS", "REDIS_URL"}
# Time a worker needs after its drain timeout: leaving (~20s), hand-off
# publishes and events (op timeouts of 5s, retried), NATS and HTTP shutdown.
HANDOFF_MARGIN_SECONDS = 90

results = {"ok": 0, "fail": 0, "skip": 0}


def ok(msg):
    results["ok"] += 1
    print(f"ok   {msg}")


def fail(msg):
    results["fail"] += 1
    print(f"FAIL {msg}")


def skip(msg):
    if STRICT:
        fail(f"{msg} (USHER_DEPLOY_CHECK_STRICT=1)")
        return
    results["skip"] += 1
    print(f"skip {msg}")


def rel(path):
    return os.path.relpath(path, ROOT)


# ---------------------------------------------------------------- Go facts

def go_files():
    for top in ("services", "shared"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d not in ("testdata", "vendor")]
            for f in filenames:
                if f.endswith(".go") and not f.endswith("_test.go"):
                    yield os.path.join(dirpath, f)


def go_facts():
    """Metric names with their types, env variable names, topology names."""
    metrics = {}  # name -> type ("counter", "gauge", "histogram", "summary", None if unknown)
    env = set()
    templated = []  # (suffix, type) of "usher_" + service + suffix
    services = set()
    typed = re.compile(r'(Counter|Gauge|Histogram|Summary)Opts\{\s*Name:\s*"(usher_[a-z0-9_]+)"')
    templ = re.compile(r'(Counter|Gauge|Histogram|Summary)Opts\{\s*Name:\s*"usher_"\s*\+\s*service\s*\+\s*"(_[a-z0-9_]+)"')
    anyname = re.compile(r'"(usher_[a-z][a-z0-9_]*_[a-z0-9_]+)"')
    newhttp = re.compile(r'NewHTTP\(\s*[^,()]+,\s*"([a-z]+)"\s*\)')
    envtag = re.compile(r'env:"([A-Z][A-Z0-9_]*)"')
    for path in go_files():
        with open(path, encoding="utf-8") as f:
            src = f.read()
        for kind, name in typed.findall(src):
            metrics[name] = kind.lower()
        for name in anyname.findall(src):
            metrics.setdefault(name, None)
        for kind, suffix in templ.findall(src):
            templated.append((suffix, kind.lower()))
        services.update(newhttp.findall(src))
        env.update(envtag.findall(src))
    for svc in services:
        for suffix, kind in templated:
            metrics[f"usher_{svc}{suffix}"] = kind
    topo = {}
    with open(os.path.join(ROOT, "shared", "topology", "topology.go"), encoding="utf-8") as f:
        src = f.read()
    for const in ("StreamJobs", "ConsumerWorkers"):
        m = re.search(const + r'\s*=\s*"([^"]+)"', src)
        topo[const] = m.group(1) if m else None
    return metrics, env, topo


# ---------------------------------------------------------------- PromQL

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "atan2", "inf", "nan", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
TOKEN = re.compile(r"(?P<num>\d[\w.]*)|(?P<id>[A-Za-z_:][A-Za-z0-9_:]*)")


def grafana_to_promql(expr):
    """Grafana's interval variables become a duration; other variables only
    appear inside label matcher strings, which PromQL accepts as they are."""
    return re.sub(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}", "5m", expr)


def metric_names(expr):
    """Metric names referenced by a PromQL expression (a tokenizer, not a
    parser: strings, matchers, ranges and grouping labels are removed first)."""
    s = grafana_to_promql(expr)
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', s)
    s = re.sub(r"\{[^{}]*\}", "{}", s)
    s = re.sub(r"\[[^\[\]]*\]", "[]", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", r"\1 ()", s)
    names = set()
    for m in TOKEN.finditer(s):
        word = m.group("id")
        if not word:
            continue
        rest = s[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def check_metric(name, where, go_metrics, recorded):
    if name.startswith("usher:"):
        if name not in recorded:
            fail(f"{where}: {name} is not a recording rule in deploy/prometheus/rules.yaml")
            return False
        return True
    if name.startswith("usher_"):
        if name in go_metrics:
            if go_metrics[name] == "histogram":
                fail(f"{where}: histogram {name} used without _bucket, _sum or _count")
                return False
            return True
        for suffix, kinds in (("_bucket", {"histogram"}), ("_sum", {"histogram", "summary"}), ("_count", {"histogram", "summary"})):
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                if base in go_metrics:
                    if go_metrics[base] in kinds or go_metrics[base] is None:
                        return True
                    fail(f"{where}: {name}: {base} is a {go_metrics[base]}, not a histogram")
                    return False
        fail(f"{where}: {name} is not defined in the Go code (services/, shared/)")
        return False
    if name in EXTERNAL:
        return True
    fail(f"{where}: {name} is neither an Usher metric nor a known external one (EXTERNAL in deploy/check.py)")
    return False


# ---------------------------------------------------------------- files

def load_yaml_files():
    docs = {}
    bad = 0
    count = 0
    for dirpath, dirnames, filenames in os.walk(DEPLOY):
        dirnames.sort()
        for f in sorted(filenames):
            if not f.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(dirpath, f)
            count += 1
            try:
                with open(path, encoding="utf-8") as fh:
                    docs[path] = [d for d in yaml.safe_load_all(fh) if d is not None]
            except yaml.YAMLError as e:
                bad += 1
                fail(f"{rel(path)} is not valid YAML: {e}")
    if bad == 0:
        ok(f"{count} YAML files under deploy/ parse")
    return docs


def check_rules(rules_path, go_metrics):
    with open(rules_path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    recorded = set()
    exprs = []
    alerts = 0
    problems = 0
    for g in doc.get("groups", []):
        for r in g.get("rules", []):
            if "record" in r:
                recorded.add(r["record"])
                exprs.append((f"rule {r['record']}", r["expr"]))
            elif "alert" in r:
                alerts += 1
                exprs.append((f"alert {r['alert']}", r["expr"]))
                sev = (r.get("labels") or {}).get("severity")
                ann = r.get("annotations") or {}
                if sev not in ("critical", "warning", "info"):
                    problems += 1
                    fail(f"alert {r['alert']}: labels.severity must be critical, warning or info, got {sev!r}")
                if not ann.get("summary") or not ann.get("description"):
                    problems += 1
                    fail(f"alert {r['alert']}: annotations summary and description are required")
            else:
                problems += 1
                fail(f"{rel(rules_path)}: a rule without record or alert in group {g.get('name')}")
    if problems == 0:
        ok(f"{rel(rules_path)}: {len(recorded)} recording rules, {alerts} alerts, each alert with severity, summary, description")
    return recorded, exprs


def check_dashboard(path):
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{rel(path)} is not valid JSON: {e}")
        return []
    problems = 0

    def bad(msg):
        nonlocal problems
        problems += 1
        fail(f"{rel(path)}: {msg}")

    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 38:
        bad(f"schemaVersion must be >= 38, got {d.get('schemaVersion')!r}")
    for key in ("uid", "title"):
        if not d.get(key):
            bad(f"{key} is missing")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        bad('templating needs a "datasource" variable of type datasource for prometheus')
    exprs = []
    for name, v in variables.items():
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.match(r"\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,", q or "")
            if m:
                exprs.append((f"dashboard variable {name}", m.group(1)))
            if (v.get("datasource") or {}).get("uid") != "${datasource}":
                bad(f"variable {name} must use the ${{datasource}} variable")
    ids = set()
    rects = []
    panels = 0
    for p in d.get("panels", []):
        pid = p.get("id")
        if pid in ids:
            bad(f"panel id {pid} is used twice")
        ids.add(pid)
        g = p.get("gridPos") or {}
        if g.get("x", 0) + g.get("w", 0) > 24 or g.get("w", 0) <= 0 or g.get("h", 0) <= 0:
            bad(f"panel {p.get('title')!r} has an invalid gridPos {g}")
        for (ox, oy, ow, oh, ot) in rects:
            if g["x"] < ox + ow and ox < g["x"] + g["w"] and g["y"] < oy + oh and oy < g["y"] + g["h"]:
                bad(f"panels {ot!r} and {p.get('title')!r} overlap")
        rects.append((g.get("x", 0), g.get("y", 0), g.get("w", 0), g.get("h", 0), p.get("title")))
        if p.get("type") == "row":
            continue
        panels += 1
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            bad(f"panel {p.get('title')!r} must use the ${{datasource}} variable")
        refs = set()
        for t in p.get("targets", []):
            if (t.get("datasource") or {}).get("uid") != "${datasource}":
                bad(f"panel {p.get('title')!r} target {t.get('refId')} must use the ${{datasource}} variable")
            if not t.get("expr"):
                bad(f"panel {p.get('title')!r} target {t.get('refId')} has no expr")
                continue
            if t.get("refId") in refs:
                bad(f"panel {p.get('title')!r} repeats refId {t.get('refId')}")
            refs.add(t.get("refId"))
            exprs.append((f"dashboard panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
        if not refs:
            bad(f"panel {p.get('title')!r} has no query")
    if problems == 0:
        ok(f"{rel(path)}: valid JSON, schemaVersion {d['schemaVersion']}, {panels} panels on ${{datasource}}, no overlaps")
    return exprs


# ---------------------------------------------------------------- kustomize

def renderer():
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def kustomizations():
    out = [os.path.join(DEPLOY, "k8s", "base")]
    overlays = os.path.join(DEPLOY, "k8s", "overlays")
    if os.path.isdir(overlays):
        for name in sorted(os.listdir(overlays)):
            if os.path.isfile(os.path.join(overlays, name, "kustomization.yaml")):
                out.append(os.path.join(overlays, name))
    return out


def duration_seconds(s):
    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise ValueError(f"not a Go duration: {s!r}")
    for num, unit in parts:
        total += float(num) * units[unit]
    return total


def check_rendered(name, objs, go_env, topo, go_metrics, recorded, dashboard_path):
    problems = 0

    def bad(msg):
        nonlocal problems
        problems += 1
        fail(f"{name}: {msg}")

    by_kind = {}
    for o in objs:
        by_kind.setdefault(o.get("kind"), {})[o["metadata"]["name"]] = o
    cms = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    deps = by_kind.get("Deployment", {})
    for required in ("usher-ingest", "usher-worker"):
        if required not in deps:
            bad(f"Deployment {required} is missing")
    if problems:
        return

    def container_env(dep):
        c = dep["spec"]["template"]["spec"]["containers"][0]
        env = {}
        for ef in c.get("envFrom", []):
            ref = (ef.get("configMapRef") or {}).get("name")
            if ref is None:
                bad(f"{dep['metadata']['name']}: envFrom other than a ConfigMap")
                continue
            if ref not in cms:
                bad(f"{dep['metadata']['name']}: envFrom ConfigMap {ref} is not in the build")
                continue
            env.update(cms[ref].get("data") or {})
        for e in c.get("env", []):
            vf = e.get("valueFrom") or {}
            if "secretKeyRef" in vf:
                ref = vf["secretKeyRef"]
                if ref["key"] not in SECRET_KEYS:
                    bad(f"{dep['metadata']['name']}: secret key {ref['key']} is not one of {sorted(SECRET_KEYS)}")
                if ref["name"] in secrets and ref["key"] not in (secrets[ref["name"]].get("data") or {}):
                    bad(f"{dep['metadata']['name']}: Secret {ref['name']} has no key {ref['key']}")
                if not ref["name"].startswith("usher-secrets"):
                    bad(f"{dep['metadata']['name']}: secrets come from usher-secrets, not {ref['name']}")
            env[e["name"]] = e.get("value", "<from " + ",".join(vf) + ">")
        for k in env:
            if k not in go_env and k not in EXTRA_ENV:
                bad(f"{dep['metadata']['name']}: {k} is not a variable any Go Config reads (typo?)")
        return c, env

    for dname in ("usher-ingest", "usher-worker"):
        dep = deps[dname]
        pod = dep["spec"]["template"]["spec"]
        c, _ = container_env(dep)
        psc = pod.get("securityContext") or {}
        csc = c.get("securityContext") or {}
        if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
            bad(f"{dname}: runAsNonRoot is not set")
        if csc.get("allowPrivilegeEscalation") is not False:
            bad(f"{dname}: allowPrivilegeEscalation must be false")
        if csc.get("readOnlyRootFilesystem") is not True:
            bad(f"{dname}: readOnlyRootFilesystem must be true")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            bad(f"{dname}: capabilities must drop ALL")
        if (c.get("livenessProbe") or {}).get("httpGet", {}).get("path") != "/healthz":
            bad(f"{dname}: livenessProbe must GET /healthz")
        if (c.get("readinessProbe") or {}).get("httpGet", {}).get("path") != "/readyz":
            bad(f"{dname}: readinessProbe must GET /readyz")
        if "memory" not in ((c.get("resources") or {}).get("limits") or {}):
            bad(f"{dname}: no memory limit")
        ann = dep["spec"]["template"]["metadata"].get("annotations") or {}
        ports = {str(p["containerPort"]) for p in c.get("ports", [])}
        if ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") not in ports:
            bad(f"{dname}: prometheus.io/port {ann.get('prometheus.io/port')} is not a container port")

    worker = deps["usher-worker"]
    wpod = worker["spec"]["template"]["spec"]
    wc, wenv = container_env(worker)
    if "replicas" in worker["spec"]:
        bad("usher-worker sets spec.replicas: KEDA owns it (re-applying would reset the fleet and scale in busy workers)")
    try:
        slots = int(wenv["USHER_WORKER_SLOTS"])
        contexts = int(wenv["USHER_BROWSER_MAX_CONTEXTS"])
        drain = duration_seconds(wenv["USHER_WORKER_DRAIN_TIMEOUT"])
    except (KeyError, ValueError) as e:
        bad(f"usher-worker needs USHER_WORKER_SLOTS, USHER_BROWSER_MAX_CONTEXTS and USHER_WORKER_DRAIN_TIMEOUT: {e}")
        return
    if contexts != slots:
        bad(f"USHER_BROWSER_MAX_CONTEXTS ({contexts}) != USHER_WORKER_SLOTS ({slots})")
    grace = wpod.get("terminationGracePeriodSeconds", 30)
    if grace < drain + HANDOFF_MARGIN_SECONDS:
        bad(f"usher-worker terminationGracePeriodSeconds {grace} < USHER_WORKER_DRAIN_TIMEOUT {drain:g}s + {HANDOFF_MARGIN_SECONDS}s for leaving and hand-offs")
    shm = [m for m in wc.get("volumeMounts", []) if m.get("mountPath") == "/dev/shm"]
    vols = {v["name"]: v for v in wpod.get("volumes", [])}
    if not shm or (vols.get(shm[0]["name"], {}).get("emptyDir") or {}).get("medium") != "Memory":
        bad("usher-worker: /dev/shm must be an emptyDir with medium Memory")
    if wenv.get("USHER_WORKER_DRIVER", "browser") != "browser":
        bad("usher-worker: the KEDA formula counts browser bots (usher_worker_browser_bots_in_meeting); USHER_WORKER_DRIVER must be browser")

    sos = [o for o in by_kind.get("ScaledObject", {}).values() if o["spec"]["scaleTargetRef"]["name"] == "usher-worker"]
    if len(sos) != 1:
        bad(f"expected one ScaledObject for usher-worker, found {len(sos)}")
        return
    so = sos[0]["spec"]
    triggers = so.get("triggers", [])
    names = {t.get("name") for t in triggers}
    js = [t for t in triggers if t["type"] == "nats-jetstream"]
    if len(js) != 1:
        bad("the ScaledObject needs one nats-jetstream trigger")
    else:
        md = js[0]["metadata"]
        if md.get("stream") != topo["StreamJobs"] or md.get("consumer") != topo["ConsumerWorkers"]:
            bad(f"nats-jetstream trigger must watch stream {topo['StreamJobs']} consumer {topo['ConsumerWorkers']} (shared/topology), got {md.get('stream')}/{md.get('consumer')}")
        if str(md.get("lagThreshold")) != str(slots):
            bad(f"lagThreshold {md.get('lagThreshold')} != USHER_WORKER_SLOTS {slots}")
        for field in ("natsServerMonitoringEndpoint", "account"):
            if not md.get(field):
                bad(f"nats-jetstream trigger: {field} is empty")
    ns = worker["metadata"].get("namespace")
    for t in triggers:
        if t["type"] == "prometheus":
            md = t["metadata"]
            if str(md.get("threshold")) != str(slots):
                bad(f"prometheus trigger {t.get('name')}: threshold {md.get('threshold')} != USHER_WORKER_SLOTS {slots}")
            qns = set(re.findall(r'namespace\s*=\s*"([^"]*)"', md.get("query", "")))
            if qns != {ns}:
                bad(f"prometheus trigger {t.get('name')}: query selects namespace {sorted(qns)}, the workers run in {ns!r}")
            for m in sorted(metric_names(md.get("query", ""))):
                if not check_metric(m, f"{name} KEDA query", go_metrics, recorded):
                    problems += 1
    mods = (so.get("advanced") or {}).get("scalingModifiers")
    if mods:
        if str(mods.get("target")) != str(slots):
            bad(f"scalingModifiers.target {mods.get('target')} != USHER_WORKER_SLOTS {slots}")
        used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", mods.get("formula", "")))
        if not used or not used <= names:
            bad(f"scalingModifiers.formula {mods.get('formula')!r} must use only named triggers {sorted(n for n in names if n)}")
        if mods.get("metricType", "AverageValue") != "AverageValue":
            bad("scalingModifiers.metricType must be AverageValue (replicas = demand / slots)")
    if so.get("minReplicaCount", 0) < 1:
        bad("minReplicaCount must be >= 1: with 0 workers nobody reaps lost leases or takes hand-offs")
    for cm in cms.values():
        if "usher-dashboard.json" in (cm.get("data") or {}):
            with open(dashboard_path, encoding="utf-8") as f:
                if json.loads(cm["data"]["usher-dashboard.json"]) != json.load(f):
                    bad("the dashboard ConfigMap differs from deploy/grafana/usher-dashboard.json")
    if problems == 0:
        ok(f"{name}: renders; slots {slots} = max contexts = KEDA targets; grace {grace}s >= drain {drain:g}s + {HANDOFF_MARGIN_SECONDS}s; "
           f"KEDA on {topo['StreamJobs']}/{topo['ConsumerWorkers']}; non-root, probes, /dev/shm, env names known")


# ---------------------------------------------------------------- promtool

def promtool():
    p = os.environ.get("PROMTOOL") or shutil.which("promtool")
    return p if p and os.access(p, os.X_OK) else None


def run(cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def main():
    go_metrics, go_env, topo = go_facts()
    if not go_metrics or not go_env or None in topo.values():
        fail("could not read metric names, env tags or topology names from the Go code")
        return
    ok(f"read {len(go_metrics)} usher_* metrics, {len(go_env)} env variables and stream {topo['StreamJobs']}/consumer {topo['ConsumerWorkers']} from the Go code")

    load_yaml_files()
    rules_path = os.path.join(DEPLOY, "prometheus", "rules.yaml")
    dashboard_path = os.path.join(DEPLOY, "grafana", "usher-dashboard.json")
    recorded, rule_exprs = check_rules(rules_path, go_metrics)
    dash_exprs = check_dashboard(dashboard_path)

    rc, out = run([os.path.join(DEPLOY, "prometheus", "prometheusrule.sh")])
    try:
        wrapped = yaml.safe_load(out) if rc == 0 else None
        with open(rules_path, encoding="utf-8") as f:
            same = wrapped and wrapped.get("kind") == "PrometheusRule" and wrapped.get("spec") == yaml.safe_load(f)
    except yaml.YAMLError:
        same = False
    if same:
        ok("prometheus/prometheusrule.sh wraps rules.yaml in a PrometheusRule unchanged")
    else:
        fail(f"prometheus/prometheusrule.sh does not reproduce rules.yaml: {out[:300]}")

    seen = set()
    bad_before = results["fail"]
    for where, expr in rule_exprs + dash_exprs:
        for m in sorted(metric_names(expr)):
            check_metric(m, where, go_metrics, recorded)
            seen.add(m)
    if results["fail"] == bad_before:
        usher = {re.sub(r"_(bucket|sum|count)$", "", m) if re.sub(r"_(bucket|sum|count)$", "", m) in go_metrics else m
                 for m in seen if m.startswith("usher_")}
        ext = sorted(m for m in seen if m in EXTERNAL)
        ok(f"{len(usher)} usher_* metrics used by rules and dashboard exist in the Go code; "
           f"{len([m for m in seen if m.startswith('usher:')])} recording rules defined; external: {', '.join(ext)}")
    unused = sorted(n for n, t in go_metrics.items()
                    if n.startswith(("usher_ingest_", "usher_worker_")) and n not in seen
                    and not any(s.startswith(n + "_") for s in seen))
    if unused:
        print(f"note ingest/worker metrics on neither dashboard nor rules: {', '.join(unused)}")

    r = renderer()
    keda_exprs = []
    if r is None:
        skip("kustomize rendering and manifest invariants: neither kustomize nor kubectl found")
    else:
        for k in kustomizations():
            rc, out = run(r + [k])
            name = rel(k)
            if rc != 0:
                fail(f"{name}: {' '.join(r)} failed: {out[:500]}")
                continue
            objs = [o for o in yaml.safe_load_all(out) if o]
            check_rendered(name, objs, go_env, topo, go_metrics, recorded, dashboard_path)
            for o in objs:
                if o.get("kind") == "ScaledObject":
                    for t in o["spec"].get("triggers", []):
                        if t["type"] == "prometheus":
                            keda_exprs.append((f"{name} KEDA trigger {t.get('name')}", t["metadata"]["query"]))

    pt = promtool()
    if pt is None:
        skip("promtool check/test rules and dashboard PromQL: promtool not found (set PROMTOOL=/path/to/promtool)")
        return
    rc, out = run([pt, "check", "rules", rules_path])
    (ok if rc == 0 else fail)(f"promtool check rules prometheus/rules.yaml" + ("" if rc == 0 else f": {out}"))
    rc, out = run([pt, "test", "rules", "rules_test.yaml"], cwd=os.path.join(DEPLOY, "prometheus"))
    (ok if rc == 0 else fail)("promtool test rules prometheus/rules_test.yaml" + ("" if rc == 0 else f":\n{out}"))
    exprs = [(w, e) for w, e in dash_exprs if not w.startswith("dashboard variable")] + keda_exprs
    group = {"groups": [{"name": "dashboard_and_keda", "rules": [
        {"record": f"usher_check:expr_{i}", "expr": grafana_to_promql(e)} for i, (_, e) in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
        yaml.safe_dump(group, tmp)
    try:
        rc, out = run([pt, "check", "rules", tmp.name])
    finally:
        os.unlink(tmp.name)
    if rc == 0:
        ok(f"promtool parses the PromQL of {len(exprs)} dashboard and KEDA queries")
        return
    named = False
    for i, (where, expr) in enumerate(exprs):
        for line in out.splitlines():
            if f'"usher_check:expr_{i}"' in line:
                named = True
                fail(f"{where} does not parse: {line.split(': ', 1)[-1]}\n     {expr}")
    if not named:
        fail(f"dashboard/KEDA PromQL does not parse: {out}")


if __name__ == "__main__":
    main()
    print(f"deploy check: {results['ok']} ok, {results['fail']} failed, {results['skip']} skipped")
    sys.exit(1 if results["fail"] else 0)
