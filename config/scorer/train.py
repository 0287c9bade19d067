#!/usr/bin/env python3
"""Trains and evaluates llmrouter's complexity scorer (src/route/scorer.c).

The features are NOT computed here: the script pipes every prompt through
`llmrouter score --features`, so training and serving share one
implementation. Python 3 standard library only; deterministic (no random
numbers, a fixed number of Newton iterations, fixed fold assignment, floats
written with 6 decimals), so rerunning it rebuilds the shipped files byte for
byte.

  python3 config/scorer/train.py            # writes config/scorer/weights.txt and
                                            # src/route/scorer_weights.c (the built-in copy)
  python3 config/scorer/train.py --eval     # held-out PGR tables (docs/routing.md)
  python3 config/scorer/train.py --check    # retrains in memory: exit 1 unless the shipped
                                            # files are reproduced exactly and the binary's
                                            # scores equal this script's

Data (../shared/data, see its READMEs):
  routellm-mmlu/  57 MMLU subjects: Mixtral-8x7B (weak) vs GPT-4 (strong), correct or not.
                  high_school_mathematics is excluded: the strong model is marked right on
                  3% of it against 32% for the weak one, which looks like a labelling fault.
  llmrouter-nim/  nine tasks: Llama-3.1-8B (weak) vs Nemotron-51B (strong), scores in [0, 1].

Label: the strong model's advantage, max(0, strong - weak): for MMLU 1 exactly when the
weak model is wrong and the strong one right (the prompts where routing to the strong
model buys something), for nim the share of the score the strong model adds. Prompts the
weak model already gets right and prompts both get wrong are both 0: sending them to the
strong model buys nothing.
"""
import argparse
import csv
import json
import math
import operator
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
if not os.path.isdir(DEFAULT_DATA):
    DEFAULT_DATA = "/work/shared/data"
WEIGHTS = os.path.join(HERE, "weights.txt")
BUILTIN_C = os.path.join(ROOT, "src", "route", "scorer_weights.c")

EXCLUDED_SUBJECTS = ["high_school_mathematics"]
FOLDS = 5
ITERATIONS = 12   # Newton steps; the loss is convex, 12 is far past convergence
L2 = 1e-3         # ridge on the standardised weights
SHARES = (0.20, 0.35, 0.50)
ONLY = None       # --only: learn just these features (experiments)

# Features whose weight may come out negative: a few text statistics whose direction
# the data decides (the share of digits against the count of numbers, word length,
# capitalised names, units). Every other feature is a sign of a hard request the
# issue names (length, code, math operators and vocabulary, LaTeX, questions,
# sub-tasks, reasoning and constraint markers, a long or structured answer) and may
# only raise the score: a negative weight learned for, say, math vocabulary or a
# numbered list fits MMLU's subjects, not traffic (held out, it also did worse on
# nim). --may-lower changes the set for experiments; docs/routing.md gives the
# figures of the alternatives.
MAY_LOWER = {"digits", "units", "word_length", "long_words", "names", "output_short"}
LABEL = "gap"   # or "weak_wrong" (--label): 1 - weak

# Features the data cannot teach: every training prompt is one English user message
# with no system prompt, no earlier turns and no max_tokens. They get these fixed
# weights (on the raw feature scale; a feature is about 0..1), chosen by hand, small,
# and say so in the weights file. Everything else is learned.
HAND_SET = {
    "context_tokens": 0.30,  # a long conversation before the question
    "system_tokens": 0.20,   # a long system prompt: instructions to follow
    "depth": 0.30,           # many turns
    "max_output": 0.20,      # a large max_tokens: a long answer wanted
    "non_english": 0.20,     # small models lose more outside English
    "non_latin": 0.0,        # already in non_english; no evidence for more
}


def load_mmlu(data):
    rows = []
    d = os.path.join(data, "routellm-mmlu")
    for name in sorted(os.listdir(d)):
        m = re.match(r"mmlu_(.+)\.csv$", name)
        if not m or m.group(1) in EXCLUDED_SUBJECTS:
            continue
        with open(os.path.join(d, name), newline="", encoding="utf-8") as f:
            r = csv.reader(f)
            next(r)
            for prompt, weak, strong in r:
                rows.append({"prompt": prompt, "weak": float(weak == "True"),
                             "strong": float(strong == "True"), "group": m.group(1),
                             "set": "mmlu"})
    return rows


def load_nim(data):
    rows = []
    with open(os.path.join(data, "llmrouter-nim", "weak-vs-strong.jsonl"), encoding="utf-8") as f:
        for line in f:
            j = json.loads(line)
            rows.append({"prompt": j["prompt"], "weak": float(j["weak"]),
                         "strong": float(j["strong"]), "group": j["task"], "set": "nim"})
    return rows


def norm(p):
    return " ".join(p.lower().split())


def features(binary, rows):
    inp = "".join(json.dumps({"prompt": r["prompt"]}) + "\n" for r in rows)
    p = subprocess.run([binary, "score", "--features"], input=inp.encode(), capture_output=True,
                       check=False)
    if p.returncode != 0:
        sys.exit(f"train.py: {binary} score --features failed: {p.stderr.decode()[-500:]}")
    out = [list(map(float, l.split())) for l in p.stdout.decode().splitlines()]
    if len(out) != len(rows):
        sys.exit("train.py: the binary returned %d vectors for %d prompts" % (len(out), len(rows)))
    return out


def feature_names(binary):
    p = subprocess.run([binary, "score", "--help"], capture_output=True, text=True, check=True)
    lines = p.stdout.splitlines()
    i = next(k for k, l in enumerate(lines) if "feature vector" in l)
    return lines[i + 1].split()


def label(r):
    if LABEL == "weak_wrong":
        return 1.0 - r["weak"]
    return max(0.0, min(1.0, r["strong"] - r["weak"]))


def solve(a, b):
    """Gaussian elimination with partial pivoting (a is small and symmetric positive definite)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            if f:
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    x = [0.0] * n
    for c in range(n - 1, -1, -1):
        x[c] = (m[c][n] - sum(m[c][k] * x[k] for k in range(c + 1, n))) / m[c][c]
    return x


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def fit(names, X, rows):
    """fit_once, with every feature but those in MAY_LOWER held to a weight
    >= 0: a feature whose weight comes out negative is dropped (weight 0) and
    the rest refitted, until none is. Each feature is a sign of complexity the
    issue names; letting MMLU decide that, say, long words or a numbered list
    make a prompt easier fits that benchmark's template, not traffic."""
    dropped = set()
    while True:
        bias, weights = fit_once(names, X, rows, dropped)
        neg = {names[j] for j, w in enumerate(weights)
               if w < 0 and names[j] not in MAY_LOWER and names[j] not in HAND_SET}
        if not neg:
            return bias, weights
        dropped |= neg


def fit_once(names, X, rows, dropped):
    """Weighted L2 logistic regression by Newton's method on standardised
    features; returns (bias, weights) on the raw feature scale. Each dataset
    weighs as much as the other in total, so MMLU's 14,000 knowledge questions
    do not drown nim's code, math and reasoning tasks."""
    n, d = len(X), len(names)
    per_set = {}
    for r in rows:
        per_set[r["set"]] = per_set.get(r["set"], 0) + 1
    c = [n / (len(per_set) * per_set[r["set"]]) for r in rows]
    y = [label(r) for r in rows]
    only = ONLY
    learn = [j for j in range(d) if names[j] not in HAND_SET and names[j] not in dropped
             and (not only or names[j] in only.split(","))]
    cols, mean, sd = [], {}, {}
    for j in learn:
        col = [x[j] for x in X]
        mu = sum(col) / n
        s = math.sqrt(sum((v - mu) ** 2 for v in col) / n)
        if s < 1e-9:
            continue  # constant in this data: nothing to learn
        mean[j], sd[j] = mu, s
        cols.append([(v - mu) / s for v in col])
    used = [j for j in learn if j in sd]
    cols.append([1.0] * n)  # bias last
    k = len(cols)
    theta = [0.0] * k
    offset = [sum(HAND_SET.get(names[j], 0.0) * x[j] for j in range(d)) for x in X]
    total = sum(c)
    for _ in range(ITERATIONS):
        z = offset[:]
        for t, col in zip(theta, cols):
            if t:
                z = list(map(lambda a, b: a + t * b, z, col))
        p = [sigmoid(v) for v in z]
        r = [ci * (pi - yi) / total for ci, pi, yi in zip(c, p, y)]
        w = [ci * pi * (1 - pi) / total for ci, pi in zip(c, p)]
        g = [sum(map(operator.mul, r, col)) for col in cols]
        h = [[0.0] * k for _ in range(k)]
        for a in range(k):
            wa = list(map(operator.mul, w, cols[a]))
            for b in range(a, k):
                h[a][b] = h[b][a] = sum(map(operator.mul, wa, cols[b]))
        for a in range(k - 1):
            g[a] += L2 * theta[a]
            h[a][a] += L2
        step = solve(h, g)
        theta = [t - s for t, s in zip(theta, step)]
    weights = [HAND_SET.get(names[j], 0.0) for j in range(d)]
    bias = theta[-1]
    for t, j in zip(theta, used):
        weights[j] = t / sd[j]
        bias -= t * mean[j] / sd[j]
    return bias, weights


def score(bias, weights, x):
    return sigmoid(bias + sum(w * v for w, v in zip(weights, x)))


def routed_order(scores):
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def pgr(rows, scores, share):
    """PGR when the top `share` of prompts by score go to the strong model."""
    order = routed_order(scores)
    k = round(share * len(rows))
    strong = set(order[:k])
    q = sum(r["strong"] if i in strong else r["weak"] for i, r in enumerate(rows))
    qw = sum(r["weak"] for r in rows)
    qs = sum(r["strong"] for r in rows)
    return (q - qw) / (qs - qw) if qs != qw else float("nan")


def fold_pgr(rows, scores, idx, fold_of, share):
    """PGR over idx when each fold's model routes the top `share` of that
    fold's held-out prompts to the strong model (each fold is scored by its
    own model, whose scores are not comparable with another fold's); the
    quality sums over the folds. Returns (PGR, thresholds per fold)."""
    q = qw = qs = 0.0
    th = []
    for k in sorted({fold_of(i) for i in idx}):
        part = [i for i in idx if fold_of(i) == k]
        sc = [scores[i] for i in part]
        order = routed_order(sc)
        strong = set(order[:round(share * len(part))])
        q += sum(rows[i]["strong"] if n in strong else rows[i]["weak"] for n, i in enumerate(part))
        qw += sum(rows[i]["weak"] for i in part)
        qs += sum(rows[i]["strong"] for i in part)
        th.append(threshold(sc, share))
    return (q - qw) / (qs - qw), th


def threshold(scores, share):
    """The score at or above which `share` of these prompts fall."""
    order = routed_order(scores)
    k = max(1, round(share * len(scores)))
    return scores[order[k - 1]]


def fmt(v):
    s = "%.6f" % v
    return "0.000000" if s == "-0.000000" else s


def weights_text(names, bias, weights, rows, scores):
    lines = [
        "# llmrouter complexity scorer weights - generated by config/scorer/train.py; do not edit.",
        "# Rebuild: python3 config/scorer/train.py   Check: python3 config/scorer/train.py --check",
        "# score = 1 / (1 + exp(-(bias + sum of weight * feature))); features: `llmrouter score --help`",
        "# Trained on %d MMLU and %d nim prompts (MMLU subject %s excluded: mislabelled);"
        % (sum(r["set"] == "mmlu" for r in rows), sum(r["set"] == "nim" for r in rows),
           ", ".join(EXCLUDED_SUBJECTS)),
        "# label max(0, strong - weak). Set by hand, not learned (the data has no such prompts): "
        + ", ".join(sorted(HAND_SET)) + ".",
        "# Score thresholds for a share of these prompts at or above them: "
        + ", ".join("%d%%: %.3f" % (s * 100, threshold(scores, s)) for s in SHARES) + ".",
        "llmrouter-scorer 1",
        "bias " + fmt(bias),
    ]
    lines += ["%s %s" % (n, fmt(w)) for n, w in zip(names, weights)]
    return "\n".join(lines) + "\n"


def c_text(weights_txt):
    out = ["/* Generated by config/scorer/train.py from the data in ../shared/data/:",
           " * the text of config/scorer/weights.txt, compiled in as the default",
           " * weights (a unit test checks that the two are identical). Do not edit. */",
           "const char scorer_default_weights[] ="]
    for line in weights_txt.splitlines():
        out.append('    "%s\\n"' % line.replace("\\", "\\\\").replace('"', '\\"'))
    out[-1] += ";"
    return "\n".join(out) + "\n"


def read_weights(text):
    bias, w = None, {}
    for line in text.splitlines():
        if not line or line.startswith("#") or line.startswith("llmrouter-scorer"):
            continue
        k, v = line.split()
        if k == "bias":
            bias = float(v)
        else:
            w[k] = float(v)
    return bias, w


def train_all(binary, data):
    names = feature_names(binary)
    rows = load_mmlu(data) + load_nim(data)
    X = features(binary, rows)
    bias, weights = fit(names, X, rows)
    # the shipped text's rounded weights decide the shipped scores
    text0 = weights_text(names, bias, weights, rows, [0.0] * len(rows))
    b, w = read_weights(text0)
    scores = [score(b, [w[n] for n in names], x) for x in X]
    return names, rows, X, weights_text(names, bias, weights, rows, scores)


def evaluate(binary, data):
    names = feature_names(binary)
    rows = load_mmlu(data) + load_nim(data)
    X = features(binary, rows)
    fold = {}
    for s in ("mmlu", "nim"):
        groups = sorted({r["group"] for r in rows if r["set"] == s})
        for i, g in enumerate(groups):
            fold[(s, g)] = i % FOLDS
    oof = [0.0] * len(rows)
    for k in range(FOLDS):
        held = [i for i, r in enumerate(rows) if fold[(r["set"], r["group"])] == k]
        held_prompts = {norm(rows[i]["prompt"]) for i in held}
        # a prompt that also appears in a held-out task is not trained on (99 nim
        # prompts are duplicated across tasks)
        train = [i for i, r in enumerate(rows) if fold[(r["set"], r["group"])] != k
                 and norm(r["prompt"]) not in held_prompts]
        b, w = fit(names, [X[i] for i in train], [rows[i] for i in train])
        for i in held:
            oof[i] = score(b, w, X[i])
        print("fold %d: %d held out (%s), %d trained on" % (
            k, len(held), ", ".join(sorted({rows[i]["group"] for i in held if rows[i]["set"] == "nim"})),
            len(train)), file=sys.stderr)
    print("Held-out PGR (k=%d folds by whole MMLU subject and whole nim task; random = share):\n" % FOLDS)
    print("| set | prompts | share s | PGR | lift (PGR - s) | thresholds per fold |")
    print("|---|---|---|---|---|---|")
    for name, sel in (("MMLU", "mmlu"), ("nim", "nim"), ("pooled", None)):
        idx = [i for i, r in enumerate(rows) if sel is None or r["set"] == sel]
        for s in SHARES:
            p, th = fold_pgr(rows, oof, idx, lambda i: fold[(rows[i]["set"], rows[i]["group"])], s)
            print("| %s | %d | %d%% | %.3f | %+.3f | %s |" % (name, len(idx), s * 100, p, p - s,
                                                               " ".join("%.3f" % t for t in th)))
    print("\nPer nim task, held out, at 35%:\n")
    print("| task | prompts | weak | strong | PGR at 35% |")
    print("|---|---|---|---|---|")
    for t in sorted({r["group"] for r in rows if r["set"] == "nim"}):
        idx = [i for i, r in enumerate(rows) if r["group"] == t]
        rs = [rows[i] for i in idx]
        print("| %s | %d | %.3f | %.3f | %.3f |" % (
            t, len(idx), sum(r["weak"] for r in rs) / len(rs), sum(r["strong"] for r in rs) / len(rs),
            pgr(rs, [oof[i] for i in idx], 0.35)))
    return oof


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "llmrouter"))
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--eval", action="store_true", help="print held-out PGR tables")
    ap.add_argument("--check", action="store_true",
                    help="retrain in memory and compare with the shipped files")
    ap.add_argument("--label", choices=("gap", "weak_wrong"), help="experiment: another label")
    ap.add_argument("--may-lower", help="experiment: comma-separated features allowed a "
                    "negative weight ('all' for every one)")
    ap.add_argument("--only", help="experiment: comma-separated features to learn")
    a = ap.parse_args()
    global LABEL, MAY_LOWER, ONLY
    if a.label or a.may_lower or a.only:
        if not a.eval:
            ap.error("--label, --may-lower and --only are for --eval only: the shipped "
                     "weights use the settings written in this script")
        LABEL = a.label or LABEL
        ONLY = a.only
        if a.may_lower:
            MAY_LOWER = set(feature_names(a.bin)) if a.may_lower == "all" else set(a.may_lower.split(","))
    if a.eval:
        evaluate(a.bin, a.data)
        return 0
    names, rows, X, text = train_all(a.bin, a.data)
    ctext = c_text(text)
    if a.check:
        bad = []
        for path, want in ((WEIGHTS, text), (BUILTIN_C, ctext)):
            with open(path, encoding="utf-8") as f:
                if f.read() != want:
                    bad.append(path)
        # the binary's scores (built-in weights) against this script's
        b, w = read_weights(text)
        sample = list(range(0, len(rows), 97))
        inp = "".join(json.dumps({"prompt": rows[i]["prompt"]}) + "\n" for i in sample)
        p = subprocess.run([a.bin, "score"], input=inp.encode(), capture_output=True, check=True)
        got = [float(v) for v in p.stdout.split()]
        worst = max(abs(g - score(b, [w[n] for n in names], X[i])) for g, i in zip(got, sample))
        if bad:
            print("train.py --check: retraining does not reproduce " + ", ".join(bad))
            return 1
        if worst > 2e-6:
            print("train.py --check: the binary's scores differ from the script's by %.2g" % worst)
            return 1
        print("train.py --check: weights.txt and scorer_weights.c reproduced byte for byte; "
              "%d binary scores agree (max difference %.1g)" % (len(sample), worst))
        return 0
    with open(WEIGHTS, "w", encoding="utf-8") as f:
        f.write(text)
    with open(BUILTIN_C, "w", encoding="utf-8") as f:
        f.write(ctext)
    print("wrote %s and %s; rebuild the binary (make) to compile the new weights in"
          % (os.path.relpath(WEIGHTS), os.path.relpath(BUILTIN_C)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
