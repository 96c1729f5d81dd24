#!/usr/bin/env python3
"""Compare admf with ninja, make, Snakemake and DVC on identical DAGs.

For every shape x size x tool this script generates the DAG (bench/gen_dag.py)
into its own directory under bench/out/, then measures, with 2 jobs:

  cold   first build from nothing
  noop   rebuild with nothing changed (median of 5 in a row, 1 with --quick;
         the first of them is also reported alone)
  leaf   rebuild after appending a line to one input that few nodes read
  root   rebuild after appending a line to in/n0.txt (root of everything)

and the peak RSS of each run (GNU time %M: the largest single process of the
tool's process tree). After each run it records how many out/ files were
rewritten and a digest of all outputs, so a tool that skips work it must do,
or produces different bytes, shows up in the results.

Raw figures go to bench/results/build_tools.json, a Markdown table with
ratios against admf to bench/results/build_tools.md and to stdout.

Peers are installed on demand: ninja and GNU time with apt-get, Snakemake and
DVC with pip into bench/.venv. admf is built with `cargo build --release`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
VENV = os.path.join(BENCH, ".venv")
sys.path.insert(0, BENCH)
import gen_dag  # noqa: E402

ALL_TOOLS = ["admf", "ninja", "make", "snakemake", "dvc"]
SLOW_TOOLS = {"snakemake", "dvc"}
TIME_BIN = "/usr/bin/time"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- installing

_apt_updated = False


def apt_install(pkg: str) -> bool:
    global _apt_updated
    if os.geteuid() != 0:
        log(f"cannot install {pkg}: not root")
        return False
    if not _apt_updated:
        log("apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
        _apt_updated = True
    log(f"apt-get install -y {pkg}")
    r = subprocess.run(
        ["apt-get", "install", "-y", "-qq", pkg],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdout=subprocess.DEVNULL,
    )
    return r.returncode == 0


def venv_bin(name: str) -> str:
    return os.path.join(VENV, "bin", name)


def ensure_venv_pkgs(pkgs: list[str]) -> None:
    missing = [p for p in pkgs if not os.path.exists(venv_bin(p))]
    if not missing:
        return
    if not os.path.exists(venv_bin("python")):
        log(f"creating virtualenv {VENV}")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    log(f"pip install {' '.join(missing)}")
    subprocess.run([venv_bin("pip"), "install", "-q", *missing], check=False)


def install_peers(tools: list[str], admf_bin: str, cargo_build: bool) -> dict[str, str]:
    """Install what is missing; return {tool: reason} for tools unavailable."""
    bad: dict[str, str] = {}
    if not os.path.exists(TIME_BIN):
        apt_install("time")
    if not os.path.exists(TIME_BIN):
        raise SystemExit("GNU time (/usr/bin/time) is required")
    if shutil.which("timeout") is None:
        raise SystemExit("coreutils timeout is required")
    if "ninja" in tools and shutil.which("ninja") is None:
        apt_install("ninja-build")
    if "make" in tools and shutil.which("make") is None:
        apt_install("make")
    venv_pkgs = [t for t in ("snakemake", "dvc") if t in tools]
    if venv_pkgs:
        ensure_venv_pkgs(venv_pkgs)
    for t in ("ninja", "make"):
        if t in tools and shutil.which(t) is None:
            bad[t] = "not installed"
    for t in venv_pkgs:
        if not os.path.exists(venv_bin(t)):
            bad[t] = "pip install failed"
    if "admf" in tools:
        if cargo_build:
            log("cargo build --release")
            r = subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO)
            if r.returncode != 0:
                bad["admf"] = "cargo build --release failed"
        if "admf" not in bad and not os.path.exists(admf_bin):
            bad["admf"] = f"{admf_bin} missing"
    return bad


def tool_version(tool: str, admf_bin: str) -> str:
    cmd = {
        "admf": [admf_bin, "--version"],
        "ninja": ["ninja", "--version"],
        "make": ["make", "--version"],
        "snakemake": [venv_bin("snakemake"), "--version"],
        "dvc": [venv_bin("dvc"), "--version"],
    }[tool]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        out = (r.stdout or r.stderr).strip().splitlines()
        return out[0] if out else "?"
    except Exception as e:  # noqa: BLE001
        return f"? ({e})"


# ---------------------------------------------------------------- running


def tool_cmd(tool: str, jobs: int, admf_bin: str) -> list[str]:
    return {
        "admf": [admf_bin, "build", "workflow.yaml", "-j", str(jobs)],
        "ninja": ["ninja", f"-j{jobs}"],
        "make": ["make", f"-j{jobs}"],
        "snakemake": [venv_bin("snakemake"), "--cores", str(jobs), "--quiet"],
        # DVC has no parallelism flag: stages run one at a time.
        "dvc": [venv_bin("dvc"), "repro"],
    }[tool]


def setup_dir(tool: str, d: str) -> None:
    if tool == "dvc":
        env = tool_env(d)
        subprocess.run(["git", "init", "-q"], cwd=d, check=True)
        subprocess.run([venv_bin("dvc"), "init", "-q"], cwd=d, check=True, env=env)
        subprocess.run(
            [venv_bin("dvc"), "config", "core.analytics", "false"], cwd=d, check=True, env=env
        )


def tool_env(d: str) -> dict[str, str]:
    env = dict(os.environ)
    env["NO_COLOR"] = "1"
    env["DVC_NO_ANALYTICS"] = "1"
    env["ADMF_CACHE_DIR"] = os.path.join(d, ".admf-cache")
    return env


def snapshot(d: str, outputs: list[str]) -> dict[str, tuple]:
    snap = {}
    for rel in outputs:
        try:
            st = os.stat(os.path.join(d, rel))
            snap[rel] = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            snap[rel] = None
    return snap


def outputs_digest(d: str, outputs: list[str]) -> tuple[str, int]:
    h = hashlib.blake2b(digest_size=16)
    missing = 0
    for rel in outputs:
        h.update(rel.encode() + b"\0")
        try:
            with open(os.path.join(d, rel), "rb") as f:
                h.update(f.read())
        except FileNotFoundError:
            missing += 1
            h.update(b"<missing>")
        h.update(b"\0")
    return h.hexdigest(), missing


def run_once(tool: str, d: str, cmd: list[str], cap: float, label: str, meta: dict) -> dict:
    outputs = meta["outputs"]
    before = snapshot(d, outputs)
    logf = os.path.join(d, f"bench-{label}.log")
    tf = os.path.join(d, f"bench-{label}.time")
    full = ["timeout", "-k", "10", str(int(cap)), TIME_BIN, "-f", "%M %U %S", "-o", tf, *cmd]
    t0 = time.perf_counter()
    with open(logf, "w") as lf:
        r = subprocess.run(full, cwd=d, stdout=lf, stderr=subprocess.STDOUT, env=tool_env(d))
    wall = time.perf_counter() - t0
    rec: dict = {"wall_s": round(wall, 4), "exit": r.returncode}
    rss = None
    cpu = None
    try:
        with open(tf) as f:
            # The last line is "<peak RSS KB> <user s> <sys s>" (a line
            # before it may say the command exited non-zero).
            fields = f.read().strip().splitlines()[-1].split()
            if len(fields) == 3 and fields[0].isdigit():
                rss = int(fields[0])
                cpu = round(float(fields[1]) + float(fields[2]), 3)
    except (FileNotFoundError, IndexError, ValueError):
        pass
    rec["peak_rss_kb"] = rss
    # user + sys of the tool and its children: on a loaded machine wall
    # time mostly measures the wait for a core.
    rec["cpu_s"] = cpu
    if r.returncode == 124 or r.returncode == 137:
        rec["status"] = "timeout"
    elif r.returncode != 0:
        rec["status"] = "failed"
        with open(logf, errors="replace") as f:
            rec["log_tail"] = f.read()[-1500:]
    else:
        rec["status"] = "ok"
    after = snapshot(d, outputs)
    rec["rewritten"] = sum(1 for k in outputs if before[k] != after[k])
    rec["digest"], rec["missing_outputs"] = outputs_digest(d, outputs)
    if rec["status"] == "ok" and rec["missing_outputs"]:
        rec["status"] = "incomplete"  # exit 0 but declared outputs are missing
    return rec


def append_line(path: str, label: str) -> None:
    # Same bytes for every tool, so their outputs stay comparable.
    with open(path, "a") as f:
        f.write(f"{label} edit\n")


def bench_tool(tool, shape, n, args, admf_bin, meta_only=False) -> dict:
    d = os.path.join(args.work, f"{shape}-{n}", tool)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    meta = gen_dag.generate(shape, n, [tool], d, args.noop_command)
    setup_dir(tool, d)
    cmd = tool_cmd(tool, args.jobs, admf_bin)
    res: dict = {"tool": tool, "shape": shape, "nodes": n, "cap_s": args.cap,
                 "dir": os.path.relpath(d, REPO),
                 "command": " ".join(os.path.relpath(c, REPO) if c.startswith(REPO) else c
                                     for c in cmd)}
    log(f"  {tool}: cold")
    cold = run_once(tool, d, cmd, args.cap, "cold", meta)
    res["cold"] = cold
    if cold["status"] != "ok":
        log(f"  {tool}: cold build {cold['status']}, skipping the rebuilds")
        return res
    noops = []
    for i in range(args.noop_runs):
        log(f"  {tool}: noop {i + 1}/{args.noop_runs}")
        noops.append(run_once(tool, d, cmd, args.cap, f"noop{i}", meta))
    ok = [r for r in noops if r["status"] == "ok"]
    res["noop"] = {
        "runs": noops,
        "status": "ok" if len(ok) == len(noops) else noops[-1]["status"],
        "wall_s": round(statistics.median(r["wall_s"] for r in ok), 4) if ok else None,
        "cpu_s": (round(statistics.median(r["cpu_s"] for r in ok), 3)
                  if ok and all(r.get("cpu_s") is not None for r in ok) else None),
        "peak_rss_kb": max((r["peak_rss_kb"] or 0) for r in noops),
        "rewritten": max(r["rewritten"] for r in noops),
        "digest": noops[-1]["digest"],
        "missing_outputs": noops[-1]["missing_outputs"],
    }
    for label in ("leaf", "root"):
        edit = meta[f"{label}_edit"]
        append_line(os.path.join(d, edit["file"]), label)
        log(f"  {tool}: {label} edit ({edit['file']}, {edit['reruns']} nodes downstream)")
        r = run_once(tool, d, cmd, args.cap, label, meta)
        r["expected_reruns"] = edit["reruns"]
        res[label] = r
        if r["status"] != "ok":
            break
    return res


# ---------------------------------------------------------------- reporting

STEPS = ("cold", "noop", "leaf", "root")


def fmt_s(x: float) -> str:
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 10:
        return f"{x:.1f} s"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x * 1000:.0f} ms"


def cell(rec: dict | None, base: dict | None, cap: float) -> str:
    if rec is None:
        return "—"
    st = rec.get("status")
    if st == "timeout":
        return f"> {int(cap)} s (cap)"
    if st in ("failed", "incomplete"):
        return st
    if st == "skipped":
        return "skipped"
    w = rec.get("wall_s")
    if w is None:
        return "—"
    s = fmt_s(w)
    if base and base.get("status") == "ok" and base.get("wall_s"):
        s += f" ({w / base['wall_s']:.2g}×)"
    c = rec.get("cpu_s")
    if c is not None:
        s += f"; CPU {fmt_s(c)}"
        if base and base.get("status") == "ok" and base.get("cpu_s"):
            s += f" ({c / base['cpu_s']:.2g}×)"
    return s


def first_noop(rec: dict | None) -> dict | None:
    """The first no-op rebuild after the cold build, on its own: admf answers
    repeated no-ops from its up-to-date record, which a build right after
    files changed cannot write yet."""
    runs = ((rec or {}).get("noop") or {}).get("runs")
    return runs[0] if runs else None


def render_md(doc: dict) -> str:
    cap = doc["config"]["cap_s"]
    out = []
    out.append("# Build tool comparison\n")
    c = doc["config"]
    caps = sorted({int(r.get("cap_s", cap)) for r in doc["results"]} or {int(cap)})
    nruns = sorted({len(r["noop"]["runs"]) for r in doc["results"] if "noop" in r}
                   or {c["noop_runs"]})
    out.append(
        f"{c['date']} · {c['machine']} · -j{c['jobs']} · "
        f"cap {' or '.join(map(str, caps))} s per run · "
        f"no-op = median of {' or '.join(map(str, nruns))} runs in a row, the first of them also "
        f"shown alone · node command: "
        f"{'`: > out/nK.txt` (no-op command)' if c['noop_command'] else '`cksum` of inputs (see gen_dag.py)'}\n"
    )
    out.append("Times are wall clock, then CPU (user + sys of the tool and its children, "
               "what a loaded machine cannot inflate much); (N×) is the time relative to admf "
               "on the same row group (below 1 means faster than admf). RSS is the peak resident set of the largest "
               "process. `rewritten` counts out/ files rewritten by the leaf / root edit "
               "rebuilds; `expected` is the number of nodes downstream of the edited input.\n")
    out.append("Versions: " + ", ".join(f"{t} `{v}`" for t, v in doc["versions"].items()) + "\n")
    groups: dict[tuple, list] = {}
    for r in doc["results"]:
        groups.setdefault((r["shape"], r["nodes"]), []).append(r)
    for (shape, n), rows in groups.items():
        base = next((r for r in rows if r["tool"] == "admf"), None)
        exp = None
        for r in rows:
            if "leaf" in r:
                exp = (r["leaf"].get("expected_reruns"), r.get("root", {}).get("expected_reruns"))
        out.append(f"\n## {shape}, {n} nodes\n")
        out.append("| tool | cold | first no-op | no-op | leaf edit | root edit | peak RSS | "
                   "rewritten leaf / root"
                   + (f" (expected {exp[0]} / {exp[1]})" if exp else "") + " | outputs |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        digests = {}
        for r in rows:
            if r.get("root", {}).get("status") == "ok":
                digests.setdefault(r["root"]["digest"], []).append(r["tool"])
        majority = max(digests.items(), key=lambda kv: len(kv[1]))[0] if digests else None
        for r in rows:
            rcap = r.get("cap_s", cap)
            cells = [cell(r.get(s), base.get(s) if base else None, rcap) for s in STEPS]
            cells.insert(1, cell(first_noop(r), first_noop(base), rcap))
            if r.get("cold", {}).get("status") == "skipped":
                cells = [r["cold"].get("reason", "skipped")] + ["—"] * 4
            rss = max((r.get(s) or {}).get("peak_rss_kb") or 0 for s in STEPS)
            rss_s = f"{rss / 1024:.0f} MiB" if rss else "—"
            rw = "/".join(str((r.get(s) or {}).get("rewritten", "—")) for s in ("leaf", "root"))
            if r.get("root", {}).get("status") == "ok":
                same = r["root"]["digest"] == majority
                outs = ("identical" if same else "DIFFERENT") + (
                    f", {r['root']['missing_outputs']} missing" if r["root"]["missing_outputs"] else "")
            else:
                outs = "—"
            out.append(f"| {r['tool']} | " + " | ".join(cells) + f" | {rss_s} | {rw} | {outs} |")
    out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--shapes", default="chain,fanout,lattice")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS))
    ap.add_argument("--quick", action="store_true",
                    help="sizes 1000, chain only, one no-op run, cap 60 s (unless given)")
    ap.add_argument("--jobs", "-j", type=int, default=2)
    ap.add_argument("--cap", type=float, default=None, help="per-run time cap in seconds (300)")
    ap.add_argument("--noop-runs", type=int, default=None, help="no-op rebuild repeats (5)")
    ap.add_argument("--slow-max-nodes", type=int, default=1000,
                    help="run snakemake and dvc only up to this many nodes (1000)")
    ap.add_argument("--noop-command", action="store_true",
                    help="every node runs ': > out/nK.txt' (scheduling overhead)")
    ap.add_argument("--work", default=os.path.join(BENCH, "out"))
    ap.add_argument("--results", default=os.path.join(BENCH, "results"))
    ap.add_argument("--name", default=None, help="results file stem (build_tools[_noop])")
    ap.add_argument("--admf", default=os.path.join(REPO, "target", "release", "admf"))
    ap.add_argument("--no-cargo-build", action="store_true")
    ap.add_argument("--merge", action="store_true",
                    help="keep results of other shape/size/tool combinations in the JSON")
    args = ap.parse_args()
    argv_sizes = any(a.startswith("--sizes") for a in sys.argv)
    argv_shapes = any(a.startswith("--shapes") for a in sys.argv)
    if args.quick:
        if not argv_sizes:
            args.sizes = "1000"
        if not argv_shapes:
            args.shapes = "chain"
    if args.cap is None:
        args.cap = 60.0 if args.quick else 300.0
    if args.noop_runs is None:
        args.noop_runs = 1 if args.quick else 5
    sizes = [int(s) for s in args.sizes.split(",") if s]
    shapes = [s for s in args.shapes.split(",") if s]
    tools = [t for t in args.tools.split(",") if t]
    for t in tools:
        if t not in ALL_TOOLS:
            ap.error(f"unknown tool {t!r} (known: {', '.join(ALL_TOOLS)})")
    for s in shapes:
        if s not in gen_dag.SHAPES:
            ap.error(f"unknown shape {s!r}")
    args.work = os.path.abspath(args.work)
    admf_bin = os.path.abspath(args.admf)

    unavailable = install_peers(tools, admf_bin, not args.no_cargo_build)
    versions = {t: tool_version(t, admf_bin) for t in tools if t not in unavailable}

    stem = args.name or ("build_tools_noop" if args.noop_command else "build_tools")
    os.makedirs(args.results, exist_ok=True)
    json_path = os.path.join(args.results, stem + ".json")
    old_results: list = []
    if args.merge and os.path.exists(json_path):
        with open(json_path) as f:
            old = json.load(f)
        old_results = old.get("results", [])
        versions = {**old.get("versions", {}), **versions}
    config = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "jobs": args.jobs,
        "cap_s": args.cap,
        "noop_runs": args.noop_runs,
        "noop_command": args.noop_command,
        "sizes": sizes,
        "shapes": shapes,
        "tools": tools,
    }
    order = {t: i for i, t in enumerate(ALL_TOOLS)}
    shape_order = {s: i for i, s in enumerate(gen_dag.SHAPES)}

    def save(results: list, final: bool) -> None:
        new_keys = {(r["shape"], r["nodes"], r["tool"]) for r in results}
        rows = [r for r in old_results if (r["shape"], r["nodes"], r["tool"]) not in new_keys]
        rows += results
        rows.sort(key=lambda r: (shape_order[r["shape"]], r["nodes"], order[r["tool"]]))
        doc = {"config": config, "versions": versions, "results": rows}
        with open(json_path + ".tmp", "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        os.replace(json_path + ".tmp", json_path)
        md = render_md(doc)
        with open(os.path.join(args.results, stem + ".md"), "w") as f:
            f.write(md)
        if final:
            print(md)

    results: list = []
    for shape in shapes:
        for n in sizes:
            log(f"== {shape}, {n} nodes")
            for tool in tools:
                if tool in unavailable:
                    results.append({"tool": tool, "shape": shape, "nodes": n,
                                    "cold": {"status": "skipped", "reason": unavailable[tool]}})
                elif tool in SLOW_TOOLS and n > args.slow_max_nodes:
                    results.append({"tool": tool, "shape": shape, "nodes": n,
                                    "cold": {"status": "skipped",
                                             "reason": f"not run above {args.slow_max_nodes} nodes"}})
                else:
                    results.append(bench_tool(tool, shape, n, args, admf_bin))
                save(results, final=False)
    save(results, final=True)
    log(f"wrote {json_path} and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
