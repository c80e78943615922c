#!/usr/bin/env node
// A `solc` look-alike around the npm package `solc` (solc-js), for py-solc-x's `solc_binary`.
//
// No solc binary can be downloaded on these machines; solc-js works offline. py-solc-x runs
//   solc-shim.js --version
//   solc-shim.js --standard-json [--base-path DIR] [--allow-paths A,B] [--include-path DIR]...
// and parses stdout as the version banner or the standard-JSON output, so NOTHING but that may reach
// stdout: every other message goes to stderr.
//
// Imports that are not given by content in the input are resolved by the import callback, in this
// order: the base path and include paths from the command line, then the project root (the folder
// above this script), each as-is and then under node_modules/ (walking up, as Node does). So
// "@openzeppelin/contracts/access/AccessControl.sol" resolves to
// node_modules/@openzeppelin/contracts/access/AccessControl.sol with that same source unit name, the
// one Hardhat uses, which keeps the metadata hash (and so the bytecode) identical to Hardhat's.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

// Keep a handle on the real stdout and send everything else (console.log from solc-js or emscripten
// included) to stderr.
const writeStdout = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
console.log = console.error;
console.info = console.error;
console.warn = console.error;

const PROJECT_ROOT = path.resolve(__dirname, "..");

function usageError(message) {
  // py-solc-x maps "unrecognised option '<flag>'" on stderr to UnknownOption.
  process.stderr.write(`${message}\n`);
  process.exitCode = 1;
}

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, help: false, basePath: null, allowPaths: [], includePaths: [] };
  const takesValue = new Set(["--base-path", "--allow-paths", "--include-path", "--output-dir"]);
  for (let i = 0; i < argv.length; i += 1) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq !== -1) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (takesValue.has(arg) && value === undefined) {
      i += 1;
      if (i >= argv.length) {
        throw new Error(`option '${arg}' requires a value`);
      }
      value = argv[i];
    }
    switch (arg) {
      case "--version":
        opts.version = true;
        break;
      case "--help":
        opts.help = true;
        break;
      case "--standard-json":
        opts.standardJson = true;
        break;
      case "--base-path":
        opts.basePath = value;
        break;
      case "--allow-paths":
        opts.allowPaths.push(...value.split(",").filter(Boolean));
        break;
      case "--include-path":
        opts.includePaths.push(value);
        break;
      case "--output-dir":
      case "--overwrite":
        // Meaningless for standard JSON on stdout; accepted so py-solc-x's defaults never break us.
        break;
      case "-":
        break;
      default:
        throw new Error(`unrecognised option '${arg}'`);
    }
  }
  return opts;
}

function readStdin() {
  return fs.readFileSync(0, "utf8");
}

function nodeModulesCandidates(start, importPath) {
  const found = [];
  let dir = path.resolve(start);
  for (;;) {
    found.push(path.join(dir, "node_modules", importPath));
    const parent = path.dirname(dir);
    if (parent === dir) {
      return found;
    }
    dir = parent;
  }
}

function makeImportCallback(opts) {
  const roots = [opts.basePath, ...opts.includePaths, PROJECT_ROOT].filter(Boolean).map((p) => path.resolve(p));
  const uniqueRoots = [...new Set(roots)];
  return function importCallback(importPath) {
    const candidates = [];
    if (path.isAbsolute(importPath)) {
      candidates.push(importPath);
    } else {
      for (const root of uniqueRoots) {
        candidates.push(path.join(root, importPath));
      }
      for (const root of uniqueRoots) {
        candidates.push(...nodeModulesCandidates(root, importPath));
      }
    }
    for (const candidate of new Set(candidates)) {
      try {
        if (fs.statSync(candidate).isFile()) {
          return { contents: fs.readFileSync(candidate, "utf8") };
        }
      } catch {
        // not there: try the next candidate
      }
    }
    return {
      error: `File not found: ${importPath} (looked under ${uniqueRoots.join(", ")} and their node_modules; run npm ci?)`,
    };
  };
}

function loadSolc() {
  // Resolved relative to this file, so the project's node_modules is used wherever we are run from.
  return require("solc");
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    usageError(err.message);
    return;
  }

  if (opts.help) {
    process.stderr.write("usage: solc-shim.js --version | --standard-json [--base-path DIR] [--allow-paths A,B]\n");
    return;
  }

  if (opts.version) {
    const solc = loadSolc();
    writeStdout(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return;
  }

  if (!opts.standardJson) {
    usageError("only --version and --standard-json are supported by this shim");
    return;
  }

  const input = readStdin();
  const solc = loadSolc();
  const output = solc.compile(input, { import: makeImportCallback(opts) });
  // Like solc --standard-json: exit 0 even when the output carries compile errors.
  writeStdout(`${output}\n`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`solc-shim: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
}
