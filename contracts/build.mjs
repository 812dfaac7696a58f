// Compiles every contracts/solidity/**/*.sol with the pinned solc (package.json), links the
// external libraries they use, and writes one deterministic artifact per deployable contract to
// contracts/artifacts/<Name>.json (ABI, linked creation and runtime bytecode, link references,
// library addresses, storage layout). Artifacts of contracts that no longer exist are removed.
//
// Imports: relative paths, and the remappings of contracts/remappings.txt (`prefix=target`, the
// target relative to contracts/). Source unit names are paths relative to contracts/
// (`solidity/KhNft.sol`); an import outside contracts/ is refused.
//
// Libraries: an external library is deployed with CREATE2 through the deterministic deployment
// proxy (DEPLOYER below, salt 0), so its address follows from its creation code alone and the
// contracts using it are linked at that address here, at build time. A library's artifact
// records the deployer, salt and address; a contract's artifact records the libraries it links.
//
// Usage: node contracts/build.mjs   (CI then checks `git diff --exit-code contracts/artifacts`)
import { readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";
import { getCreate2Address, keccak256, ZeroHash } from "ethers";

const root = dirname(fileURLToPath(import.meta.url));
const srcDir = join(root, "solidity");
const outDir = join(root, "artifacts");

/** The deterministic deployment proxy (calldata salt(32) ‖ initcode; CREATE2; returns the address). */
export const DEPLOYER = "0x4e59b44847b379578588920ca78fbf26c0b4956c";
/** The CREATE2 salt of every library. */
export const LIBRARY_SALT = ZeroHash;

function fail(message) {
  console.error(`build.mjs: ${message}`);
  process.exit(1);
}

/** Every .sol file under `dir`, as paths relative to contracts/ with forward slashes, sorted. */
function solidityFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...solidityFiles(path));
    else if (entry.endsWith(".sol")) out.push(relative(root, path).split(sep).join("/"));
  }
  return out.sort();
}

/** `prefix=target` lines of remappings.txt (blank lines and `#` comments skipped). */
function remappings() {
  let text;
  try {
    text = readFileSync(join(root, "remappings.txt"), "utf8");
  } catch {
    return [];
  }
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  for (const line of lines) {
    if (!/^[^=\s]+=[^=\s]*$/.test(line)) fail(`remappings.txt: not prefix=target: ${line}`);
  }
  return lines;
}

/** solc's import callback: files under contracts/ only. */
function findImports(path) {
  const full = normalize(join(root, path));
  if (path.startsWith("/") || relative(root, full).startsWith("..")) {
    return { error: `import outside contracts/ refused: ${path}` };
  }
  try {
    return { contents: readFileSync(full, "utf8") };
  } catch (e) {
    return { error: `cannot read ${path}: ${e.message}` };
  }
}

const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none", appendCBOR: false },
  remappings: remappings(),
  outputSelection: {
    "*": {
      "": ["ast"],
      "*": [
        "abi",
        "evm.bytecode.object",
        "evm.bytecode.linkReferences",
        "evm.deployedBytecode.object",
        "evm.deployedBytecode.linkReferences",
        "storageLayout",
      ],
    },
  },
};

const sources = {};
for (const file of solidityFiles(srcDir)) {
  sources[file] = { content: readFileSync(join(root, file), "utf8") };
}

const output = JSON.parse(
  solc.compile(JSON.stringify({ language: "Solidity", sources, settings }), { import: findImports }),
);
for (const e of output.errors || []) console.error(e.formattedMessage);
if ((output.errors || []).some((e) => e.severity === "error")) process.exit(1);

/** The kind (contract, library, interface) and abstractness of every contract, by `file:Name`. */
const kinds = {};
for (const file of Object.keys(output.sources)) {
  for (const node of output.sources[file].ast.nodes) {
    if (node.nodeType === "ContractDefinition") {
      kinds[`${file}:${node.name}`] = { kind: node.contractKind, abstract: node.abstract };
    }
  }
}

const compiled = (fq) => {
  const i = fq.lastIndexOf(":");
  const c = output.contracts[fq.slice(0, i)]?.[fq.slice(i + 1)];
  if (!c) fail(`no compiled contract ${fq}`);
  return c;
};

/** `file:Name` of every library referenced by `linkReferences`. */
const referenced = (linkReferences) =>
  Object.entries(linkReferences || {}).flatMap(([file, libs]) =>
    Object.keys(libs).map((n) => `${file}:${n}`),
  );

/** Links `object` (hex without 0x): writes each library's address at the byte offsets solc's
 * `linkReferences` give for it ({file: {Name: [{start, length}]}}). */
function link(object, linkReferences, addresses) {
  let linked = object;
  for (const [file, libs] of Object.entries(linkReferences || {})) {
    for (const [name, refs] of Object.entries(libs)) {
      const address = addresses[`${file}:${name}`];
      if (!address) fail(`no address for library ${file}:${name}`);
      for (const { start, length } of refs) {
        if (length !== 20) fail(`link reference of ${length} bytes for ${file}:${name}`);
        const at = start * 2;
        if (!linked.slice(at, at + 40).startsWith("__$")) {
          fail(`no placeholder at byte ${start} for ${file}:${name}`);
        }
        linked = linked.slice(0, at) + address.slice(2).toLowerCase() + linked.slice(at + 40);
      }
    }
  }
  if (linked.includes("__$")) fail("unresolved library placeholder after linking");
  return linked;
}

/** The CREATE2 address of every library, resolved in dependency order (cycles refused). */
const libraryAddresses = {};
function resolveLibrary(fq, trail = []) {
  if (libraryAddresses[fq]) return;
  if (trail.includes(fq)) fail(`library link cycle: ${[...trail, fq].join(" -> ")}`);
  if (kinds[fq]?.kind !== "library") fail(`${fq} is linked but is not a library`);
  const c = compiled(fq);
  for (const dep of referenced(c.evm.bytecode.linkReferences)) resolveLibrary(dep, [...trail, fq]);
  const { object, linkReferences } = c.evm.bytecode;
  const initcode = "0x" + link(object, linkReferences, libraryAddresses);
  libraryAddresses[fq] = getCreate2Address(DEPLOYER, LIBRARY_SALT, keccak256(initcode)).toLowerCase();
}
for (const file of Object.keys(output.contracts).sort()) {
  for (const name of Object.keys(output.contracts[file]).sort()) {
    const c = output.contracts[file][name];
    for (const fq of referenced(c.evm.bytecode.linkReferences)) resolveLibrary(fq);
    for (const fq of referenced(c.evm.deployedBytecode.linkReferences)) resolveLibrary(fq);
  }
}

mkdirSync(outDir, { recursive: true });
const written = new Set();
for (const file of Object.keys(output.contracts).sort()) {
  for (const name of Object.keys(output.contracts[file]).sort()) {
    const fq = `${file}:${name}`;
    const c = output.contracts[file][name];
    const { kind, abstract } = kinds[fq];
    if (kind === "interface" || abstract || c.evm.bytecode.object === "") continue;
    // A library that nothing links and that has no external function (only internal code and
    // constants, inlined into its users) is never deployed: no artifact.
    if (kind === "library" && !libraryAddresses[fq] && c.abi.length === 0) continue;
    if (written.has(name)) fail(`two contracts named ${name}: artifacts are named by contract`);
    written.add(name);
    const bytecode = link(c.evm.bytecode.object, c.evm.bytecode.linkReferences, libraryAddresses);
    const deployed = link(
      c.evm.deployedBytecode.object,
      c.evm.deployedBytecode.linkReferences,
      libraryAddresses,
    );
    const libraries = {};
    const linked = [
      ...referenced(c.evm.bytecode.linkReferences),
      ...referenced(c.evm.deployedBytecode.linkReferences),
    ];
    for (const lib of [...new Set(linked)].sort()) {
      libraries[lib] = libraryAddresses[lib];
    }
    const artifact = {
      contractName: name,
      sourceName: file,
      kind,
      abi: c.abi,
      bytecode: "0x" + bytecode,
      deployedBytecode: "0x" + deployed,
      linkReferences: c.evm.bytecode.linkReferences,
      deployedLinkReferences: c.evm.deployedBytecode.linkReferences,
      libraries,
      ...(kind === "library" && libraryAddresses[fq]
        ? { create2: { deployer: DEPLOYER, salt: LIBRARY_SALT, address: libraryAddresses[fq] } }
        : {}),
      storageLayout: c.storageLayout,
      compiler: { version: solc.version(), settings: { ...settings, outputSelection: undefined } },
    };
    writeFileSync(join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    console.log(`wrote artifacts/${name}.json`);
  }
}
for (const entry of readdirSync(outDir)) {
  if (entry.endsWith(".json") && !written.has(entry.slice(0, -5))) {
    rmSync(join(outDir, entry));
    console.log(`removed artifacts/${entry} (no such contract)`);
  }
}
