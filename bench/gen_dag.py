#!/usr/bin/env python3
"""Generate one DAG for several build tools (admf, ninja, make, Snakemake, DVC).

Every tool gets the same graph and the same shell command per node, so their
timings are comparable and their outputs are byte-identical.

Layout of a generated directory (all tools run with it as cwd):

    in/nK.txt        one input file per node (the generator creates them)
    out/             created by the generator; every node writes out/nK.txt
    lists/nK.txt     only for nodes with many dependencies: the files the
                     node reads, one per line (keeps the command short)
    meta.json        the graph and the two edit scenarios (see below)
    workflow.yaml    admf      (--tool admf)
    build.ninja      ninja     (--tool ninja)
    Makefile         make      (--tool make)
    Snakefile + snake_dag.json   Snakemake (--tool snakemake)
    dvc.yaml         DVC       (--tool dvc; run `git init && dvc init` first)

Node command (K the node, D... the outputs of its dependencies):

    cksum in/nK.txt out/nD1.txt ... > out/nK.txt && echo K >> out/nK.txt

`cksum` prints one constant-size line per file, so outputs stay small on
every shape (plain `cat` would grow exponentially on the lattice) while each
output still depends on the content of everything upstream. A node with more
than MANY_DEPS dependencies reads its file list from lists/nK.txt via
`xargs cksum < lists/nK.txt`, so the command stays far below ARG_MAX.

With --noop-command every node runs `: > out/nK.txt` instead (scheduling
overhead only; the dependency edges and declared inputs are unchanged).

Shapes (N nodes, named n0..n{N-1} in topological declaration order):
  chain    n0 -> n1 -> ... -> n{N-1}
  fanout   n0 -> {n1..n{N-2}} -> n{N-1} (the sink reads all middle nodes)
  lattice  layers of width W = round(sqrt(N)); node i of layer l>0 depends
           on nodes i and (i+1) mod W of layer l-1 (the last layer may be
           partial)

Edit scenarios (recorded in meta.json for the benchmark driver):
  root edit  append a line to in/n0.txt: n0 and everything downstream reruns
  leaf edit  append a line to the input of a node with a minimal downstream
             cone: chain and lattice: the last node (1 node reruns);
             fanout: middle node n1 (n1 and the sink rerun)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

TOOLS = ("admf", "ninja", "make", "snakemake", "dvc")
SHAPES = ("chain", "fanout", "lattice")
MANY_DEPS = 16


def build_graph(shape: str, n: int) -> list[list[int]]:
    """Return deps[k] = list of dependency node ids of node k."""
    if n < 3:
        raise SystemExit("--nodes must be at least 3")
    if shape == "chain":
        return [[]] + [[k - 1] for k in range(1, n)]
    if shape == "fanout":
        return [[]] + [[0] for _ in range(1, n - 1)] + [list(range(1, n - 1))]
    if shape == "lattice":
        w = max(2, round(math.sqrt(n)))
        deps: list[list[int]] = []
        for k in range(n):
            layer, i = divmod(k, w)
            if layer == 0:
                deps.append([])
            else:
                base = (layer - 1) * w
                a, b = base + i, base + (i + 1) % w
                deps.append(sorted({a, b}))
        return deps
    raise SystemExit(f"unknown shape {shape!r}")


def downstream_count(deps: list[list[int]], start: int) -> int:
    """Number of nodes that rerun when node `start`'s input changes."""
    children: list[list[int]] = [[] for _ in deps]
    for k, ds in enumerate(deps):
        for d in ds:
            children[d].append(k)
    seen = {start}
    stack = [start]
    while stack:
        for c in children[stack.pop()]:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return len(seen)


def node_inputs(k: int, ds: list[int]) -> list[str]:
    """Files node k reads, in the order its command reads them."""
    return [f"in/n{k}.txt"] + [f"out/n{d}.txt" for d in ds]


def node_command(k: int, ds: list[int], noop: bool) -> str:
    if noop:
        return f": > out/n{k}.txt"
    if len(ds) > MANY_DEPS:
        return f"xargs cksum < lists/n{k}.txt > out/n{k}.txt && echo {k} >> out/n{k}.txt"
    files = " ".join(node_inputs(k, ds))
    return f"cksum {files} > out/n{k}.txt && echo {k} >> out/n{k}.txt"


def static_inputs(k: int, ds: list[int]) -> list[str]:
    """Source files (not produced by another node) that node k reads."""
    files = [f"in/n{k}.txt"]
    if len(ds) > MANY_DEPS:
        files.append(f"lists/n{k}.txt")
    return files


def yq(s: str) -> str:
    """Quote a string for YAML (JSON strings are valid YAML scalars)."""
    return json.dumps(s)


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def gen_admf(out: str, deps, cmds) -> None:
    lines = ["phases:"]
    for k, ds in enumerate(deps):
        lines.append(f"  - name: n{k}")
        lines.append("    mode: command")
        lines.append(f"    run: {yq(cmds[k])}")
        lines.append(f"    inputs: [{', '.join(static_inputs(k, ds))}]")
        lines.append(f"    outputs: [out/n{k}.txt]")
        lines.append(f"    depends_on: [{', '.join(f'n{d}' for d in ds)}]")
    write(os.path.join(out, "workflow.yaml"), "\n".join(lines) + "\n")


def ninja_escape(s: str) -> str:
    return s.replace("$", "$$")


def gen_ninja(out: str, deps, cmds) -> None:
    lines = ["ninja_required_version = 1.5", "", "rule run", "  command = $cmd", ""]
    for k, ds in enumerate(deps):
        ins = " ".join(static_inputs(k, ds) + [f"out/n{d}.txt" for d in ds])
        lines.append(f"build out/n{k}.txt: run {ins}")
        lines.append(f"  cmd = {ninja_escape(cmds[k])}")
    lines.append("")
    write(os.path.join(out, "build.ninja"), "\n".join(lines))


def gen_make(out: str, deps, cmds) -> None:
    lines = [".SUFFIXES:", ".DELETE_ON_ERROR:", ""]
    lines.append("all: " + " ".join(f"out/n{k}.txt" for k in range(len(deps))))
    lines.append(".PHONY: all")
    lines.append("")
    for k, ds in enumerate(deps):
        ins = " ".join(static_inputs(k, ds) + [f"out/n{d}.txt" for d in ds])
        lines.append(f"out/n{k}.txt: {ins}")
        lines.append("\t" + cmds[k].replace("$", "$$"))
    lines.append("")
    write(os.path.join(out, "Makefile"), "\n".join(lines))


SNAKEFILE = '''\
# Generated by bench/gen_dag.py: one wildcard rule, the per-node inputs and
# command come from snake_dag.json (equivalent to one rule per node, but
# Snakemake parses it in constant time).
import json

BENCH_NODES = json.load(open("snake_dag.json"))

wildcard_constraints:
    k="[0-9]+"

rule all:
    input: [f"out/n{k}.txt" for k in range(len(BENCH_NODES))]

rule node:
    input: lambda wc: BENCH_NODES[int(wc.k)]["input"]
    output: "out/n{k}.txt"
    params: cmd=lambda wc: BENCH_NODES[int(wc.k)]["cmd"]
    shell: "{params.cmd}"
'''


def gen_snakemake(out: str, deps, cmds) -> None:
    dag = [
        {"input": static_inputs(k, ds) + [f"out/n{d}.txt" for d in ds], "cmd": cmds[k]}
        for k, ds in enumerate(deps)
    ]
    write(os.path.join(out, "snake_dag.json"), json.dumps(dag))
    write(os.path.join(out, "Snakefile"), SNAKEFILE)


def gen_dvc(out: str, deps, cmds) -> None:
    lines = ["stages:"]
    for k, ds in enumerate(deps):
        lines.append(f"  n{k}:")
        lines.append(f"    cmd: {yq(cmds[k])}")
        lines.append("    deps:")
        for f in static_inputs(k, ds) + [f"out/n{d}.txt" for d in ds]:
            lines.append(f"      - {f}")
        lines.append("    outs:")
        lines.append(f"      - out/n{k}.txt")
    write(os.path.join(out, "dvc.yaml"), "\n".join(lines) + "\n")


GENERATORS = {
    "admf": gen_admf,
    "ninja": gen_ninja,
    "make": gen_make,
    "snakemake": gen_snakemake,
    "dvc": gen_dvc,
}


def generate(shape: str, n: int, tools: list[str], out: str, noop: bool) -> dict:
    deps = build_graph(shape, n)
    cmds = [node_command(k, ds, noop) for k, ds in enumerate(deps)]
    os.makedirs(os.path.join(out, "in"), exist_ok=True)
    os.makedirs(os.path.join(out, "out"), exist_ok=True)
    for k, ds in enumerate(deps):
        write(os.path.join(out, "in", f"n{k}.txt"), f"input {k}\n")
        if len(ds) > MANY_DEPS:
            os.makedirs(os.path.join(out, "lists"), exist_ok=True)
            write(
                os.path.join(out, "lists", f"n{k}.txt"),
                "\n".join(node_inputs(k, ds)) + "\n",
            )
    for t in tools:
        GENERATORS[t](out, deps, cmds)
    leaf = 1 if shape == "fanout" else n - 1
    meta = {
        "shape": shape,
        "nodes": n,
        "edges": sum(len(ds) for ds in deps),
        "noop_command": noop,
        "tools": tools,
        "root_edit": {"file": "in/n0.txt", "reruns": downstream_count(deps, 0)},
        "leaf_edit": {"file": f"in/n{leaf}.txt", "reruns": downstream_count(deps, leaf)},
        "outputs": [f"out/n{k}.txt" for k in range(n)],
    }
    write(os.path.join(out, "meta.json"), json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=SHAPES, required=True)
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--tool", default="all", help="admf|ninja|make|snakemake|dvc|all or a comma list")
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--noop-command", action="store_true", help="every node runs ': > out/nK.txt'")
    a = ap.parse_args(argv)
    tools = list(TOOLS) if a.tool == "all" else a.tool.split(",")
    for t in tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}")
    meta = generate(a.shape, a.nodes, tools, a.out, a.noop_command)
    print(
        f"{a.out}: {a.shape} {meta['nodes']} nodes, {meta['edges']} edges, tools {','.join(tools)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
