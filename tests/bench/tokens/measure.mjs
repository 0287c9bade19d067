// Compares textstat's token estimate (ts_scan, through ./estimate.c) with the
// real cl100k_base and o200k_base counts of js-tiktoken on corpora taken from
// the Debian files installed on this machine. Prints a Markdown table for
// docs/token-estimate.md. Nothing is downloaded: install the corpora with
//   apt-get install -y man-db manpages manpages-zh manpages-ja manpages-ru \
//     manpages-uk manpages-de manpages-fr manpages-es manpages-it manpages-pt-br \
//     manpages-el iso-codes
// then, from the repository root:
//   (cd tests/bench/tokens && npm ci) && node tests/bench/tokens/measure.mjs
// Options: --bench (also time ts_scan / ts_language on each sample's first
//          ~2,000 estimated tokens),
//          --list (print the files each sample was built from),
//          --limit BYTES (UTF-8 bytes per sample, default 120000).
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { getEncoding } from "js-tiktoken";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../..");
const args = process.argv.slice(2);
const BENCH = args.includes("--bench");
const LIST = args.includes("--list");
const limitArg = args.indexOf("--limit");
const LIMIT = limitArg >= 0 ? Number(args[limitArg + 1]) : 120000;

// ---- the estimator under test -------------------------------------------------
const estimateBin = path.join(root, "build/bench/estimate");
function buildEstimate() {
  fs.mkdirSync(path.dirname(estimateBin), { recursive: true });
  execFileSync("cc", ["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
    "-I" + path.join(root, "include"), path.join(here, "estimate.c"),
    path.join(root, "src/textstat.c"), "-o", estimateBin, "-lpthread"], { stdio: "inherit" });
}
function estimate(text, bench = false) {
  const file = path.join(os.tmpdir(), `ts-measure-${process.pid}.txt`);
  fs.writeFileSync(file, text);
  const a = bench ? ["-b", "4000", file] : [file];
  const out = execFileSync(estimateBin, a, { encoding: "utf8" });
  fs.unlinkSync(file);
  return JSON.parse(out);
}
// The per-class factors, read from the header so the implied factors below are
// computed against the constants actually compiled in.
function readFactors() {
  const h = fs.readFileSync(path.join(root, "include/textstat.h"), "utf8");
  const k = {};
  for (const m of h.matchAll(/#define TS_K_(\w+) (\d+)/g)) k[m[1]] = Number(m[2]);
  return k;
}
const K = readFactors();
const classK = {
  latin: K.LATIN, latin_ext: K.LATIN_EXT, cyrillic: K.CYRILLIC, greek: K.GREEK, arabic: K.ARABIC,
  hebrew: K.HEBREW, devanagari: K.DEVANAGARI, thai: K.THAI, han: K.HAN, kana: K.HAN,
  hangul: K.HANGUL, other: K.OTHER, symbols: K.SYMBOL, // (4-byte symbols cost K.EMOJI: ignored here)
};

// Non-ASCII symbols alone (not from a corpus): what one costs by kind, to set
// TS_K_SYMBOL and TS_K_EMOJI. Measured as tokens("word" + s + " word") minus
// tokens("word word"), i.e. in context.
const symbolKinds = {
  "typographic punctuation (2-3 bytes)": "“ ” ‘ ’ — – … • « » · ° € £ © ® ™ § ¶ ¿ ¡ \u00a0",
  "CJK punctuation (3 bytes)": "： ， 。 、 「 」 （ ） ！ ？ 【 】 ・ 〜 　",
  "maths and arrows (3 bytes)": "→ ← ≤ ≥ ≠ × ÷ ± √ ∞ ∑ ≈",
  "box drawing and shapes (3 bytes)": "─ │ ┌ ┐ └ ┘ ├ ┤ ═ ║ ▶ ■ ● ★",
  "emoji (4 bytes, some with U+FE0F)": "😀 👍 🎉 🚀 ❤️ ✅ ❌ 🔥 💡 🙏 😂 🤔",
  "flags (2 regional indicators, 4 bytes each)": "🇫🇷 🇩🇪 🇯🇵 🇺🇸",
};

// ---- corpora -------------------------------------------------------------------
// Rendered man pages: man-db formats them (no hyphenation, no justification,
// very wide lines so paragraphs stay whole); indentation and runs of blanks are
// squeezed so the text looks like prose rather than a terminal layout.
function renderMan(file) {
  const r = spawnSync("man", ["--nh", "--nj", "-E", "UTF-8", "-l", file], {
    encoding: "utf8", env: { ...process.env, MANWIDTH: "2000", MAN_KEEP_FORMATTING: "", LC_ALL: "C.UTF-8" },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) return "";
  return r.stdout.split("\n").map((l) => l.replace(/[ \t]+/g, " ").trim()).join("\n")
    .replace(/\n{3,}/g, "\n\n");
}
function walk(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}
// msgstr texts of a gettext .mo file (plural forms on separate lines).
function moStrings(file) {
  const b = fs.readFileSync(file);
  let rd;
  if (b.readUInt32LE(0) === 0x950412de) rd = (o) => b.readUInt32LE(o);
  else if (b.readUInt32BE(0) === 0x950412de) rd = (o) => b.readUInt32BE(o);
  else return [];
  const n = rd(8), orig = rd(12), trans = rd(16), out = [];
  for (let i = 0; i < n; i++) {
    if (rd(orig + 8 * i) === 0) continue; // the header entry
    const len = rd(trans + 8 * i), off = rd(trans + 8 * i + 4);
    out.push(b.subarray(off, off + len).toString("utf8").replaceAll("\0", "\n"));
  }
  return out;
}
// Concatenates pieces from files (in sorted order) until LIMIT bytes.
function collect(files, render) {
  let text = "", used = [];
  for (const f of files) {
    if (Buffer.byteLength(text) >= LIMIT) break;
    const t = render(f);
    if (!t.trim()) continue;
    text += t + "\n";
    used.push(f);
  }
  // cut at a line boundary near LIMIT bytes
  const buf = Buffer.from(text);
  if (buf.length > LIMIT) {
    let cut = buf.lastIndexOf(0x0a, LIMIT);
    if (cut <= 0) cut = LIMIT;
    text = buf.subarray(0, cut).toString("utf8");
  }
  return { text, used };
}
const man = (dir) => () => collect(walk(dir).filter((f) => /\.\d\w*(\.gz)?$/.test(f)), renderMan);
const manPages = (files) => () => collect(files.filter((f) => fs.existsSync(f)), renderMan);
const files = (list) => () => collect(list, (f) => fs.readFileSync(f, "utf8"));
const mo = (lang) => () => collect(
  walk(`/usr/share/locale/${lang}/LC_MESSAGES`).filter((f) => f.endsWith(".mo") && !/\/iso_/.test(f)),
  (f) => moStrings(f).join("\n"));

const samples = [
  ["English prose (GPL-3)", files(["/usr/share/common-licenses/GPL-3"])],
  ["English technical (man bash)", manPages(["/usr/share/man/man1/bash.1.gz"])],
  ["C headers (/usr/include/*.h)", files(walk("/usr/include").filter((f) => /^\/usr\/include\/[^/]+\.h$/.test(f)))],
  ["Python source (/usr/lib/python3.11)", files(walk("/usr/lib/python3.11").filter((f) => /^\/usr\/lib\/python3\.11\/[^/]+\.py$/.test(f)))],
  ["JSON (iso-codes iso_3166-1.json)", files(["/usr/share/iso-codes/json/iso_3166-1.json"])],
  ["Chinese (man zh_CN)", man("/usr/share/man/zh_CN")],
  ["Chinese (.mo zh_CN)", mo("zh_CN")],
  ["Japanese (man ja)", man("/usr/share/man/ja")],
  ["Japanese (.mo ja)", mo("ja")],
  ["Korean (man ko)", man("/usr/share/man/ko")],
  ["Korean (.mo ko)", mo("ko")],
  ["Russian (man ru)", man("/usr/share/man/ru")],
  ["Russian (.mo ru)", mo("ru")],
  ["Ukrainian (man uk)", man("/usr/share/man/uk")],
  ["German (man de)", man("/usr/share/man/de")],
  ["French (man fr)", man("/usr/share/man/fr")],
  ["Spanish (man es)", man("/usr/share/man/es")],
  ["Italian (man it)", man("/usr/share/man/it")],
  ["Portuguese (man pt_BR)", man("/usr/share/man/pt_BR")],
  ["Polish (.mo pl)", mo("pl")],
  ["Czech (.mo cs)", mo("cs")],
  ["Turkish (.mo tr)", mo("tr")],
  ["Vietnamese (.mo vi)", mo("vi")],
  ["Greek (man el)", man("/usr/share/man/el")],
  ["Greek (.mo el)", mo("el")],
  ["Arabic (.mo ar)", mo("ar")],
  ["Persian (.mo fa)", mo("fa")],
  ["Hebrew (.mo he)", mo("he")],
  ["Hindi (.mo hi)", mo("hi")],
  ["Thai (.mo th)", mo("th")],
  ["Bengali (.mo bn, other)", mo("bn")],
  ["Tamil (.mo ta, other)", mo("ta")],
  ["Georgian (.mo ka, other)", mo("ka")],
  ["Armenian (.mo hy, other)", mo("hy")],
];

// ---- measure -------------------------------------------------------------------
buildEstimate();
const enc = { cl100k: getEncoding("cl100k_base"), o200k: getEncoding("o200k_base") };
const count = (e, t) => e.encode(t, [], []).length; // special tokens as plain text
const pct = (est, real) => `${est >= real ? "+" : "−"}${(Math.abs(est - real) / real * 100).toFixed(1)}%`;
const fmt = (n) => n.toLocaleString("en-US").replaceAll(",", " ");

// Implied factor of the sample's main non-ASCII class: what k would have made
// the estimate exact, given ASCII at 1/4 and the other classes at their k.
function implied(real, st, text) {
  // ts_stats has Latin letters beyond Latin-1 under "latin"; they cost
  // TS_K_LATIN_EXT, so split them out here
  const ext = (text.match(/[^\u0000-\u00ff]/gu) || []).filter((c) => /\p{Script=Latin}/u.test(c)).length;
  const classes = { ...st.letters, latin: st.letters.latin - ext, latin_ext: ext, symbols: st.symbols };
  let main = null;
  for (const [c, n] of Object.entries(classes)) if (n > 0 && (!main || n > classes[main])) main = c;
  if (!main || classes[main] < 200) return { main: "-", k: "-" };
  let rest = st.ascii * K.ASCII;
  for (const [c, n] of Object.entries(classes)) if (c !== main) rest += n * classK[c];
  return { main, k: ((real * 1000 - rest) / classes[main] / 1000).toFixed(2) };
}

const rows = [];
const header = "| Sample | bytes | chars | ASCII | cl100k | o200k | estimate | err cl100k | err o200k | main non-ASCII class | implied k cl100k | implied k o200k | lang |";
console.log(header);
console.log("|" + "---|".repeat(13));
for (const [name, get] of samples) {
  const { text, used } = get();
  if (!text.trim()) {
    console.log(`| ${name} | (not installed) ||||||||||||`);
    continue;
  }
  const st = estimate(text, BENCH);
  const chars = [...text].length;
  const real = { cl100k: count(enc.cl100k, text), o200k: count(enc.o200k, text) };
  const ic = implied(real.cl100k, st, text), io = implied(real.o200k, st, text);
  rows.push({ name, st, real });
  console.log(`| ${name} | ${fmt(st.bytes)} | ${fmt(chars)} | ${(st.ascii / st.bytes * 100).toFixed(0)}% | ` +
    `${fmt(real.cl100k)} | ${fmt(real.o200k)} | ${fmt(st.tokens)} | ${pct(st.tokens, real.cl100k)} | ` +
    `${pct(st.tokens, real.o200k)} | ${ic.main} | ${ic.k} | ${io.k} | ${st.language} |`);
  if (LIST) console.error(`${name}: ${used.length} files: ${used.join(" ")}`);

}
console.log("\n| Symbols | items | code points | cl100k per item | o200k per item | estimate per item |");
console.log("|---|---|---|---|---|---|");
for (const [kind, list] of Object.entries(symbolKinds)) {
  const items = list.split(" ").filter((x) => x);
  let c = 0, o = 0, cps = 0, e = 0;
  for (const x of items) {
    c += count(enc.cl100k, "word" + x + " word") - count(enc.cl100k, "word word");
    o += count(enc.o200k, "word" + x + " word") - count(enc.o200k, "word word");
    cps += [...x].length;
    const st = estimate(x);
    e += st.tokens;
  }
  const n = items.length;
  console.log(`| ${kind} | ${n} | ${cps} | ${(c / n).toFixed(2)} | ${(o / n).toFixed(2)} | ${(e / n).toFixed(2)} |`);
}
if (BENCH) {
  console.log("\n| Sample (first ~2,000 estimated tokens) | bytes | tokens | ts_scan µs | ts_language µs |");
  console.log("|---|---|---|---|---|");
  for (const { name, st } of rows)
    console.log(`| ${name} | ${fmt(st.bench_bytes)} | ${fmt(st.bench_tokens)} | ` +
      `${(st.scan_ns / 1000).toFixed(1)} | ${(st.language_ns / 1000).toFixed(1)} |`);
}
console.log(`\nFactors compiled in (thousandths of a token per code point): ${Object.entries(K).map(([k, v]) => `${k}=${v}`).join(", ")}`);
