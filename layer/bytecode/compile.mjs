// Writes one target Python's bytecode for every .py file under a directory, with that Python's own compiler:
// a pinned Pyodide build (CPython compiled to WebAssembly) from package.json, so the bytes depend on the pinned
// compiler and the sources only, never on the machine's Python.
// Usage: node compile.mjs <python version, e.g. 3.12> <directory> <path the directory has at run time>
const [version, dir, runtimePath] = process.argv.slice(2);
if (!version || !dir || !runtimePath) {
  console.error("usage: node compile.mjs <version> <directory> <runtime path>");
  process.exit(2);
}
const { loadPyodide } = await import(`python${version}/pyodide.mjs`);
// A fixed hash seed keeps set and frozenset constants in the same order on every build.
const pyodide = await loadPyodide({ env: { PYTHONHASHSEED: "0" }, stdout: () => {}, stderr: (line) => console.error(line) });
pyodide.FS.mkdirTree("/layer");
pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: dir }, "/layer");
pyodide.globals.set("runtime_path", runtimePath);
const result = pyodide.runPython(`
import compileall, py_compile, sys
assert sys.flags.hash_randomization == 0
# Unchecked hash-based bytecode: valid wherever the zip is unpacked, whatever the files' timestamps.
ok = compileall.compile_dir("/layer", ddir=runtime_path, quiet=1, workers=1,
                            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
f"{sys.version.split()[0]} {int(ok)}"
`);
const [compiler, ok] = result.split(" ");
if (!compiler.startsWith(`${version}.`) || ok !== "1") {
  console.error(`bytecode for ${version} failed (compiler ${compiler})`);
  process.exit(1);
}
console.log(compiler);
