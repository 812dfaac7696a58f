// End-to-end test of a running `kakehashi devnet evm` with ethers.js (a client kakehashi did not
// write) and an independent Merkle-Patricia verifier (@ethereumjs/trie).
// Run by crates/cli/tests/ethers_e2e.rs with KH_RPC_URL set; by hand:
//   kakehashi devnet evm --instant &  KH_RPC_URL=http://127.0.0.1:8545 node --test contracts/e2e/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ethers } from "ethers";
import { Trie } from "@ethereumjs/trie";

const here = dirname(fileURLToPath(import.meta.url));
const artifact = JSON.parse(readFileSync(join(here, "..", "artifacts", "KhNft.json"), "utf8"));
const url = process.env.KH_RPC_URL;
const MNEMONIC = "test test test test test test test test test test test junk";
const OWNERS_SLOT = 4n; // KhNft._owners (see KhNft.sol)

// ethers caches identical requests for a moment, so back-to-back transactions of one sender on
// an instant-mining chain would reuse a nonce: a NonceManager counts them locally.
function wallet(index, provider) {
  const w = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${index}`).connect(provider);
  return new ethers.NonceManager(w);
}

async function verify(rootHex, key, proofHex) {
  const trie = await Trie.create({ useKeyHashing: true });
  return trie.verifyProof(ethers.getBytes(rootHex), key, proofHex.map((p) => ethers.getBytes(p)));
}

test("deploy, mint, transfer, events and eth_getProof through ethers", { timeout: 120_000 }, async () => {
  assert.ok(url, "KH_RPC_URL must point at a running kakehashi devnet");
  const provider = new ethers.JsonRpcProvider(url, undefined, { staticNetwork: true, polling: true, pollingInterval: 100 });
  const network = await provider.getNetwork();
  assert.equal(network.chainId, 1337n);
  const accounts = await provider.send("eth_accounts", []);
  const deployer = wallet(0, provider);
  const alice = wallet(1, provider);
  const bob = wallet(2, provider);
  assert.equal(accounts[0].toLowerCase(), (await deployer.getAddress()).toLowerCase());
  assert.equal((await deployer.getAddress()), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

  // Deploy from the committed artifact.
  const factory = new ethers.ContractFactory(artifact.abi, artifact.bytecode, deployer);
  const nft = await factory.deploy("Kakehashi NFT", "KHN", "kh://nft/");
  await nft.waitForDeployment();
  const address = await nft.getAddress();
  assert.equal(await nft.name(), "Kakehashi NFT");

  // Mint to alice, transfer alice -> bob.
  const tokenId = 42n;
  await (await nft.mint((await alice.getAddress()), tokenId)).wait();
  assert.equal(await nft.ownerOf(tokenId), (await alice.getAddress()));
  const receipt = await (await nft.connect(alice).transferFrom((await alice.getAddress()), (await bob.getAddress()), tokenId)).wait();
  assert.equal(receipt.status, 1);
  assert.equal(await nft.ownerOf(tokenId), (await bob.getAddress()));
  assert.equal(await nft.balanceOf((await bob.getAddress())), 1n);
  assert.equal(await nft.balanceOf((await alice.getAddress())), 0n);

  // A failing call reverts with the custom error, decoded by ethers.
  await assert.rejects(nft.connect(alice).transferFrom((await bob.getAddress()), (await alice.getAddress()), tokenId), (e) => {
    return nft.interface.parseError(e.data)?.name === "NotAuthorized";
  });

  // Events through eth_getLogs.
  const transfers = await nft.queryFilter(nft.filters.Transfer(), 0, "latest");
  assert.equal(transfers.length, 2);
  assert.deepEqual(transfers.map((e) => [e.args.from, e.args.to, e.args.tokenId]), [
    [ethers.ZeroAddress, (await alice.getAddress()), tokenId],
    [(await alice.getAddress()), (await bob.getAddress()), tokenId],
  ]);
  assert.equal(transfers[1].transactionHash, receipt.hash);

  // eth_getProof at the transfer's block, checked against that block's stateRoot.
  const block = await provider.send("eth_getBlockByNumber", [ethers.toQuantity(receipt.blockNumber), false]);
  const slot = ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["uint256", "uint256"], [tokenId, OWNERS_SLOT]));
  const proof = await provider.send("eth_getProof", [address, [slot], ethers.toQuantity(receipt.blockNumber)]);
  const accountRlp = await verify(block.stateRoot, ethers.getBytes(address), proof.accountProof);
  assert.ok(accountRlp, "the account proof proves the contract exists");
  const [nonce, balance, storageRoot, codeHash] = ethers.decodeRlp(accountRlp);
  assert.equal(storageRoot, proof.storageHash);
  assert.equal(codeHash, ethers.keccak256(await provider.getCode(address, receipt.blockNumber)));
  assert.equal(BigInt(nonce), BigInt(proof.nonce));
  assert.equal(BigInt(balance === "0x" ? 0 : balance), BigInt(proof.balance));
  const valueRlp = await verify(storageRoot, ethers.getBytes(slot), proof.storageProof[0].proof);
  assert.ok(valueRlp, "the storage proof proves the slot");
  // A storage value is the RLP of the word without leading zeros: an address here.
  const owner = ethers.getAddress(ethers.dataSlice(ethers.zeroPadValue(ethers.decodeRlp(valueRlp), 32), 12));
  assert.equal(owner, await bob.getAddress());
  assert.equal(owner, await nft.ownerOf(tokenId, { blockTag: receipt.blockNumber }));
  assert.equal(BigInt(proof.storageProof[0].value), BigInt(await bob.getAddress()));

  // The slot of a token never minted: the devnet answers 0 with an exclusion proof, which the
  // independent verifier accepts as "absent" (null) against the same storage root.
  const absentSlot = ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["uint256", "uint256"], [7n, OWNERS_SLOT]));
  const absent = await provider.send("eth_getProof", [address, [absentSlot], ethers.toQuantity(receipt.blockNumber)]);
  assert.equal(absent.storageHash, proof.storageHash);
  assert.equal(BigInt(absent.storageProof[0].value), 0n);
  assert.equal(await verify(storageRoot, ethers.getBytes(absentSlot), absent.storageProof[0].proof), null);

  // Tampered proofs fail: a flipped byte in the account proof's root node, and in the storage
  // proof's leaf.
  const flip = (nodes, index) => {
    const out = [...nodes];
    const bytes = ethers.getBytes(out[index]);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    out[index] = ethers.hexlify(bytes);
    return out;
  };
  await assert.rejects(verify(block.stateRoot, ethers.getBytes(address), flip(proof.accountProof, 0)));
  const storageNodes = proof.storageProof[0].proof;
  await assert.rejects(verify(storageRoot, ethers.getBytes(slot), flip(storageNodes, storageNodes.length - 1)));
  // The right proof against another block's root fails too (the state moved on since deploy).
  const deployBlock = await provider.send("eth_getBlockByNumber", [ethers.toQuantity((await nft.deploymentTransaction().wait()).blockNumber), false]);
  assert.notEqual(deployBlock.stateRoot, block.stateRoot);
  await assert.rejects(verify(deployBlock.stateRoot, ethers.getBytes(address), proof.accountProof));

  // Every mined block is sealed: its extraData carries committed seals.
  const head = await provider.getBlock("latest");
  assert.ok(head.extraData.length > 2 + 64);

  // contract.on over plain HTTP without `polling: true`: ethers installs eth_newFilter and
  // polls eth_getFilterChanges.
  const filterProvider = new ethers.JsonRpcProvider(url, undefined, { staticNetwork: true, pollingInterval: 100 });
  const watched = new ethers.Contract(address, artifact.abi, filterProvider);
  const seen = new Promise((resolve) => {
    watched.on("Transfer", (from, to, id) => resolve([from, to, id]));
  });
  // Let ethers install its filter before the event happens.
  while ((await filterProvider.listenerCount()) === 0) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 500));
  await (await nft.mint((await alice.getAddress()), 43n)).wait();
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("no Transfer event through filters")), 20_000));
  const [from, to, id] = await Promise.race([seen, timeout]);
  assert.deepEqual([from, to, id], [ethers.ZeroAddress, (await alice.getAddress()), 43n]);
  await watched.removeAllListeners();
  filterProvider.destroy();
  provider.destroy();
});
