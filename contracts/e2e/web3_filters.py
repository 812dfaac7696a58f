"""End-to-end test of a running `kakehashi devnet evm --instant` with web3.py (a client kakehashi
did not write): its POA middleware reading QBFT blocks, and its polling filter API (block
filters, log filters, contract event filters, get_new_entries / get_all_entries,
uninstall_filter) over HTTP.

Run by crates/cli/tests/web3py_e2e.rs with KH_RPC_URL set; by hand:
  kakehashi devnet evm --instant &
  KH_RPC_URL=http://127.0.0.1:8545 .venv-kh/bin/python contracts/e2e/web3_filters.py
Prints "web3.py filters: ok" when every check passed; any failure raises.
"""

import json
import os
from pathlib import Path

from eth_account import Account
from web3 import Web3
from web3.exceptions import ExtraDataLengthError, Web3RPCError
from web3.middleware import ExtraDataToPOAMiddleware

MNEMONIC = "test test test test test test test test test test test junk"
ARTIFACT = Path(__file__).resolve().parent.parent / "artifacts" / "KhNft.json"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    url = os.environ.get("KH_RPC_URL")
    check(url, "KH_RPC_URL must point at a running kakehashi devnet")
    plain = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
    check(plain.is_connected(), f"no JSON-RPC answer at {url}")

    # QBFT blocks carry the validators and seals in extraData (far more than 32 bytes):
    # web3.py refuses them until its POA middleware is injected, as on any POA chain.
    try:
        plain.eth.get_block(0)
        raise AssertionError("web3.py accepted a QBFT block without the POA middleware")
    except ExtraDataLengthError:
        pass
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    check(w3.eth.chain_id == 1337, f"chain id {w3.eth.chain_id}")
    genesis = w3.eth.get_block(0)
    check(len(genesis["proofOfAuthorityData"]) > 32, "QBFT extra data under proofOfAuthorityData")

    Account.enable_unaudited_hdwallet_features()
    keys = [
        Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(3)
    ]
    owner, alice, bob = (k.address for k in keys)
    check(w3.eth.accounts[:3] == [owner, alice, bob], f"dev accounts {w3.eth.accounts[:3]}")

    # Deploy the ERC-721 from the committed artifact (eth_sendTransaction of a dev account).
    artifact = json.loads(ARTIFACT.read_text())
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    deploy = factory.constructor("Kakehashi NFT", "KHN", "kh://nft/").transact({"from": owner})
    deployed = w3.eth.wait_for_transaction_receipt(deploy, timeout=60)
    check(deployed["status"] == 1, f"deployment failed: {deployed}")
    nft = w3.eth.contract(address=deployed["contractAddress"], abi=artifact["abi"])
    transfer_topic = Web3.keccak(text="Transfer(address,address,uint256)")
    check(
        nft.events.Transfer().topic == "0x" + transfer_topic.hex().removeprefix("0x"),
        "Transfer topic",
    )
    start = w3.eth.block_number

    def topic_of(address):
        return "0x" + "00" * 12 + address[2:].lower()

    # Filters installed before the events.
    blocks = w3.eth.filter("latest")
    transfers = w3.eth.filter(
        {"address": nft.address, "topics": [transfer_topic.to_0x_hex()], "fromBlock": start}
    )
    # Positional topic match: Transfer events whose recipient (third topic) is alice.
    to_alice = w3.eth.filter(
        {"address": nft.address, "topics": [transfer_topic.to_0x_hex(), None, topic_of(alice)]}
    )
    # A filter on another address sees nothing.
    elsewhere = w3.eth.filter({"address": owner})
    # web3.py's contract-level event filter (eth_newFilter with decoded entries).
    to_bob = nft.events.Transfer.create_filter(from_block=start, argument_filters={"to": bob})
    check(blocks.get_new_entries() == [], "a new block filter reports no old block")
    check(transfers.get_new_entries() == [], "a new log filter reports no event yet")

    # Mint 1 to alice and 2 to bob (dev-account transactions), then alice transfers 1 to bob
    # with a transaction signed locally by web3.py's account (eth_sendRawTransaction).
    receipts = []
    for to, token in [(alice, 1), (bob, 2)]:
        tx = nft.functions.mint(to, token).transact({"from": owner})
        receipts.append(w3.eth.wait_for_transaction_receipt(tx, timeout=60))
    transfer = nft.functions.transferFrom(alice, bob, 1).build_transaction(
        {
            "from": alice,
            "nonce": w3.eth.get_transaction_count(alice),
            "chainId": 1337,
        }
    )
    signed = keys[1].sign_transaction(transfer)
    tx = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipts.append(w3.eth.wait_for_transaction_receipt(tx, timeout=60))
    check(all(r["status"] == 1 for r in receipts), f"a transaction failed: {receipts}")
    check(nft.functions.ownerOf(1).call() == bob, "token 1 moved to bob")

    # Block filter: the hashes of exactly the blocks mined since it was installed, in order.
    head = w3.eth.block_number
    new_blocks = blocks.get_new_entries()
    expected = [w3.eth.get_block(n)["hash"] for n in range(start + 1, head + 1)]
    check(len(expected) >= 3, f"three transactions, {len(expected)} blocks")
    check(new_blocks == expected, f"block filter: {new_blocks} != {expected}")
    check(blocks.get_new_entries() == [], "a block is reported once")
    for n in range(start + 1, head + 1):
        block = w3.eth.get_block(n)
        check(block["hash"] in new_blocks, f"block {n} reported")
        check(len(block["proofOfAuthorityData"]) > 32, f"block {n} extra data")

    # Log filter: the three Transfer events, in order, with their positions.
    logs = transfers.get_new_entries()
    check(len(logs) == 3, f"three Transfer logs, got {logs}")
    decoded = [nft.events.Transfer().process_log(log) for log in logs]
    zero = "0x" + "00" * 20
    check(
        [(e["args"]["from"], e["args"]["to"], e["args"]["tokenId"]) for e in decoded]
        == [(zero, alice, 1), (zero, bob, 2), (alice, bob, 1)],
        f"decoded transfers {decoded}",
    )
    check(
        [log["transactionHash"] for log in logs] == [r["transactionHash"] for r in receipts],
        "each log names its transaction",
    )
    check(
        [log["blockHash"] for log in logs] == [r["blockHash"] for r in receipts],
        "each log names its block",
    )
    check(transfers.get_new_entries() == [], "a log is reported once")
    # get_all_entries (eth_getFilterLogs) answers the whole range again.
    check(transfers.get_all_entries() == logs, "eth_getFilterLogs repeats the range")

    alice_logs = to_alice.get_new_entries()
    check(len(alice_logs) == 1, f"one Transfer to alice, got {alice_logs}")
    check(alice_logs[0]["transactionHash"] == receipts[0]["transactionHash"], "mint to alice")
    check(elsewhere.get_new_entries() == [], "no log of another address")

    bob_events = to_bob.get_all_entries()
    check(
        [(e["args"]["tokenId"], e["event"]) for e in bob_events] == [(2, "Transfer"), (1, "Transfer")],
        f"decoded events to bob {bob_events}",
    )
    check(
        [e["transactionHash"] for e in to_bob.get_new_entries()]
        == [receipts[1]["transactionHash"], receipts[2]["transactionHash"]],
        "contract filter's new entries",
    )

    # A later event reaches the filters installed earlier, and only once.
    tx = nft.functions.mint(alice, 3).transact({"from": owner})
    late = w3.eth.wait_for_transaction_receipt(tx, timeout=60)
    later = transfers.get_new_entries()
    check(
        [log["transactionHash"] for log in later] == [late["transactionHash"]],
        f"the later mint only, got {later}",
    )
    check(len(to_alice.get_new_entries()) == 1, "the later mint is to alice")
    check(blocks.get_new_entries() == [late["blockHash"]], "the later block only")

    # uninstall_filter: true once, then false; a removed filter is unknown to the node.
    for f in [blocks, transfers, to_alice, elsewhere, to_bob]:
        check(w3.eth.uninstall_filter(f.filter_id) is True, "uninstall an installed filter")
        check(w3.eth.uninstall_filter(f.filter_id) is False, "uninstall twice")
    try:
        transfers.get_new_entries()
        raise AssertionError("polling an uninstalled filter succeeded")
    except Web3RPCError as e:
        check("filter not found" in str(e), f"unexpected error {e}")

    print("web3.py filters: ok")


if __name__ == "__main__":
    main()
