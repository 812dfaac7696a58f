//! KhNft executed in revm from the committed artifact: minting, transfers, approvals, safe
//! transfers to receivers and non-receivers, events and custom errors.
#![allow(clippy::unwrap_used)]

mod revm_chain;

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolConstructor, SolError, SolEvent};
use kh_contracts::{KhNft, TestReceiver, kh_nft_owner_slot};
use revm_chain::{ALICE, BOB, Chain, OWNER};

fn deploy_nft(chain: &mut Chain) -> Address {
    let args = KhNft::constructorCall {
        name_: "Kakehashi NFT".into(),
        symbol_: "KHN".into(),
        baseUri_: "kh://nft/".into(),
    }
    .abi_encode();
    chain.deploy(OWNER, &KhNft::BYTECODE, args)
}

fn assert_error<E: SolError + PartialEq + std::fmt::Debug>(
    result: Result<impl Sized, Bytes>,
    expected: E,
) {
    let data = result.err().expect("expected a revert");
    assert_eq!(E::abi_decode(&data).unwrap(), expected);
}

#[test]
fn metadata_roles_and_minting() {
    let mut chain = Chain::new();
    let nft = deploy_nft(&mut chain);
    assert_eq!(
        chain.call(ALICE, nft, KhNft::nameCall {}).unwrap().0,
        "Kakehashi NFT"
    );
    assert_eq!(
        chain.call(ALICE, nft, KhNft::symbolCall {}).unwrap().0,
        "KHN"
    );
    assert!(
        chain
            .call(
                ALICE,
                nft,
                KhNft::supportsInterfaceCall {
                    interfaceId: [0x80, 0xac, 0x58, 0xcd].into()
                }
            )
            .unwrap()
            .0
    );
    assert!(
        !chain
            .call(
                ALICE,
                nft,
                KhNft::supportsInterfaceCall {
                    interfaceId: [0xff; 4].into()
                }
            )
            .unwrap()
            .0
    );

    // Only minters mint.
    assert_error(
        chain.call(
            ALICE,
            nft,
            KhNft::mintCall {
                to: ALICE,
                tokenId: U256::from(1),
            },
        ),
        KhNft::NotMinter { caller: ALICE },
    );
    let (_, logs) = chain
        .call(
            OWNER,
            nft,
            KhNft::mintCall {
                to: ALICE,
                tokenId: U256::from(1),
            },
        )
        .unwrap();
    let ev = KhNft::Transfer::decode_log(&logs[0]).unwrap();
    assert_eq!(
        (ev.from, ev.to, ev.tokenId),
        (Address::ZERO, ALICE, U256::from(1))
    );
    assert_error(
        chain.call(
            OWNER,
            nft,
            KhNft::mintCall {
                to: BOB,
                tokenId: U256::from(1),
            },
        ),
        KhNft::TokenExists {
            tokenId: U256::from(1),
        },
    );
    assert_eq!(
        chain
            .call(
                BOB,
                nft,
                KhNft::tokenURICall {
                    tokenId: U256::from(1)
                }
            )
            .unwrap()
            .0,
        "kh://nft/1"
    );
    assert_error(
        chain.call(
            BOB,
            nft,
            KhNft::tokenURICall {
                tokenId: U256::from(2),
            },
        ),
        KhNft::NoSuchToken {
            tokenId: U256::from(2),
        },
    );

    // The owner grants and revokes minters.
    assert_error(
        chain.call(ALICE, nft, KhNft::addMinterCall { account: ALICE }),
        KhNft::NotOwner { caller: ALICE },
    );
    let (_, logs) = chain
        .call(OWNER, nft, KhNft::addMinterCall { account: ALICE })
        .unwrap();
    assert_eq!(
        KhNft::MinterAdded::decode_log(&logs[0]).unwrap().account,
        ALICE
    );
    chain
        .call(
            ALICE,
            nft,
            KhNft::mintCall {
                to: ALICE,
                tokenId: U256::from(12345),
            },
        )
        .unwrap();
    chain
        .call(OWNER, nft, KhNft::removeMinterCall { account: ALICE })
        .unwrap();
    assert_error(
        chain.call(
            ALICE,
            nft,
            KhNft::mintCall {
                to: ALICE,
                tokenId: U256::from(3),
            },
        ),
        KhNft::NotMinter { caller: ALICE },
    );
    assert_eq!(
        chain
            .call(BOB, nft, KhNft::balanceOfCall { account: ALICE })
            .unwrap()
            .0,
        U256::from(2)
    );
    assert_eq!(
        chain
            .call(
                BOB,
                nft,
                KhNft::tokenURICall {
                    tokenId: U256::from(12345)
                }
            )
            .unwrap()
            .0,
        "kh://nft/12345"
    );

    // The documented storage slot holds ownerOf (what eth_getProof proves).
    let word = chain.storage(nft, U256::from_be_bytes(kh_nft_owner_slot(U256::from(1)).0));
    assert_eq!(Address::from_word(word.into()), ALICE);
}

#[test]
fn transfers_and_approvals() {
    let mut chain = Chain::new();
    let nft = deploy_nft(&mut chain);
    let id = U256::from(7);
    chain
        .call(
            OWNER,
            nft,
            KhNft::mintCall {
                to: ALICE,
                tokenId: id,
            },
        )
        .unwrap();

    assert_error(
        chain.call(
            BOB,
            nft,
            KhNft::transferFromCall {
                from: ALICE,
                to: BOB,
                tokenId: id,
            },
        ),
        KhNft::NotAuthorized {
            caller: BOB,
            tokenId: id,
        },
    );
    assert_error(
        chain.call(
            ALICE,
            nft,
            KhNft::transferFromCall {
                from: BOB,
                to: ALICE,
                tokenId: id,
            },
        ),
        KhNft::WrongFrom {
            from: BOB,
            owner: ALICE,
        },
    );
    assert_error(
        chain.call(
            ALICE,
            nft,
            KhNft::transferFromCall {
                from: ALICE,
                to: Address::ZERO,
                tokenId: id,
            },
        ),
        KhNft::ZeroAddress {},
    );

    // A single-token approval lets BOB move it once; it is cleared by the transfer.
    let (_, logs) = chain
        .call(
            ALICE,
            nft,
            KhNft::approveCall {
                approved: BOB,
                tokenId: id,
            },
        )
        .unwrap();
    let ev = KhNft::Approval::decode_log(&logs[0]).unwrap();
    assert_eq!((ev.owner, ev.approved), (ALICE, BOB));
    assert_eq!(
        chain
            .call(ALICE, nft, KhNft::getApprovedCall { tokenId: id })
            .unwrap()
            .0,
        BOB
    );
    let (_, logs) = chain
        .call(
            BOB,
            nft,
            KhNft::transferFromCall {
                from: ALICE,
                to: BOB,
                tokenId: id,
            },
        )
        .unwrap();
    let ev = KhNft::Transfer::decode_log(&logs[0]).unwrap();
    assert_eq!((ev.from, ev.to, ev.tokenId), (ALICE, BOB, id));
    assert_eq!(
        chain
            .call(ALICE, nft, KhNft::ownerOfCall { tokenId: id })
            .unwrap()
            .0,
        BOB
    );
    assert_eq!(
        chain
            .call(ALICE, nft, KhNft::getApprovedCall { tokenId: id })
            .unwrap()
            .0,
        Address::ZERO
    );
    assert_eq!(
        chain
            .call(ALICE, nft, KhNft::balanceOfCall { account: ALICE })
            .unwrap()
            .0,
        U256::ZERO
    );

    // An operator moves any token of its owner.
    chain
        .call(
            BOB,
            nft,
            KhNft::setApprovalForAllCall {
                operator: ALICE,
                approved: true,
            },
        )
        .unwrap();
    assert!(
        chain
            .call(
                BOB,
                nft,
                KhNft::isApprovedForAllCall {
                    account: BOB,
                    operator: ALICE
                }
            )
            .unwrap()
            .0
    );
    chain
        .call(
            ALICE,
            nft,
            KhNft::transferFromCall {
                from: BOB,
                to: ALICE,
                tokenId: id,
            },
        )
        .unwrap();
    assert_eq!(
        chain
            .call(ALICE, nft, KhNft::ownerOfCall { tokenId: id })
            .unwrap()
            .0,
        ALICE
    );
    assert_error(
        chain.call(
            ALICE,
            nft,
            KhNft::approveCall {
                approved: ALICE,
                tokenId: id,
            },
        ),
        KhNft::ApproveToOwner { owner: ALICE },
    );
}

#[test]
fn safe_transfers_check_the_receiver() {
    let mut chain = Chain::new();
    let nft = deploy_nft(&mut chain);
    let yes = chain.deploy(
        OWNER,
        &TestReceiver::BYTECODE,
        TestReceiver::constructorCall { accept_: true }.abi_encode(),
    );
    let no = chain.deploy(
        OWNER,
        &TestReceiver::BYTECODE,
        TestReceiver::constructorCall { accept_: false }.abi_encode(),
    );
    for id in 1..=3u64 {
        chain
            .call(
                OWNER,
                nft,
                KhNft::mintCall {
                    to: ALICE,
                    tokenId: U256::from(id),
                },
            )
            .unwrap();
    }
    // To an accepting contract, with data.
    chain
        .call(
            ALICE,
            nft,
            KhNft::safeTransferFrom_1Call {
                from: ALICE,
                to: yes,
                tokenId: U256::from(1),
                data: Bytes::from_static(b"hi"),
            },
        )
        .unwrap();
    assert_eq!(
        chain
            .call(
                ALICE,
                nft,
                KhNft::ownerOfCall {
                    tokenId: U256::from(1)
                }
            )
            .unwrap()
            .0,
        yes
    );
    assert_eq!(
        chain
            .call(ALICE, yes, TestReceiver::lastFromCall {})
            .unwrap()
            .0,
        ALICE
    );
    assert_eq!(
        chain
            .call(ALICE, yes, TestReceiver::lastDataCall {})
            .unwrap()
            .0,
        Bytes::from_static(b"hi")
    );
    // A contract answering the wrong selector, and one without the hook, are refused.
    assert_error(
        chain.call(
            ALICE,
            nft,
            KhNft::safeTransferFrom_0Call {
                from: ALICE,
                to: no,
                tokenId: U256::from(2),
            },
        ),
        KhNft::NotReceiver { to: no },
    );
    assert_error(
        chain.call(
            ALICE,
            nft,
            KhNft::safeTransferFrom_0Call {
                from: ALICE,
                to: nft,
                tokenId: U256::from(2),
            },
        ),
        KhNft::NotReceiver { to: nft },
    );
    assert_eq!(
        chain
            .call(
                ALICE,
                nft,
                KhNft::ownerOfCall {
                    tokenId: U256::from(2)
                }
            )
            .unwrap()
            .0,
        ALICE
    );
    // To an account without code, a safe transfer is a plain transfer.
    chain
        .call(
            ALICE,
            nft,
            KhNft::safeTransferFrom_0Call {
                from: ALICE,
                to: BOB,
                tokenId: U256::from(3),
            },
        )
        .unwrap();
    assert_eq!(
        chain
            .call(
                ALICE,
                nft,
                KhNft::ownerOfCall {
                    tokenId: U256::from(3)
                }
            )
            .unwrap()
            .0,
        BOB
    );
}

/// The committed artifact's `field` ("bytecode" or "deployedBytecode") as bytes.
fn artifact_code(contract: &str, field: &str) -> Vec<u8> {
    let path = format!("{}/artifacts/{contract}.json", env!("CARGO_MANIFEST_DIR"));
    let artifact: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(artifact["contractName"], contract);
    let hex = artifact[field].as_str().unwrap();
    hex::decode(hex.strip_prefix("0x").unwrap()).unwrap()
}

#[test]
fn bindings_carry_the_committed_artifact_bytecode() {
    assert_eq!(KhNft::BYTECODE.to_vec(), artifact_code("KhNft", "bytecode"));
    assert_eq!(
        KhNft::DEPLOYED_BYTECODE.to_vec(),
        artifact_code("KhNft", "deployedBytecode")
    );
    assert_eq!(
        TestReceiver::BYTECODE.to_vec(),
        artifact_code("TestReceiver", "bytecode")
    );
    assert_eq!(
        TestReceiver::DEPLOYED_BYTECODE.to_vec(),
        artifact_code("TestReceiver", "deployedBytecode")
    );
}

#[test]
fn deploying_installs_the_artifact_runtime_code() {
    let mut chain = Chain::new();
    let nft = deploy_nft(&mut chain);
    assert_eq!(chain.code(nft), KhNft::DEPLOYED_BYTECODE);
    let receiver = chain.deploy(
        OWNER,
        &TestReceiver::BYTECODE,
        TestReceiver::constructorCall { accept_: true }.abi_encode(),
    );
    assert_eq!(chain.code(receiver), TestReceiver::DEPLOYED_BYTECODE);
}

#[test]
fn ownership_and_minter_administration() {
    let mut chain = Chain::new();
    let nft = deploy_nft(&mut chain);
    assert_eq!(chain.call(BOB, nft, KhNft::ownerCall {}).unwrap().0, OWNER);
    assert!(
        chain
            .call(BOB, nft, KhNft::isMinterCall::new((OWNER,)))
            .unwrap()
            .0
    );
    assert_error(
        chain.call(
            OWNER,
            nft,
            KhNft::addMinterCall {
                account: Address::ZERO,
            },
        ),
        KhNft::ZeroAddress {},
    );
    chain
        .call(OWNER, nft, KhNft::addMinterCall { account: BOB })
        .unwrap();
    // Only the owner revokes; revoking emits MinterRemoved once, a second revoke is a no-op.
    assert_error(
        chain.call(ALICE, nft, KhNft::removeMinterCall { account: BOB }),
        KhNft::NotOwner { caller: ALICE },
    );
    let (_, logs) = chain
        .call(OWNER, nft, KhNft::removeMinterCall { account: BOB })
        .unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        KhNft::MinterRemoved::decode_log(&logs[0]).unwrap().account,
        BOB
    );
    let (_, logs) = chain
        .call(OWNER, nft, KhNft::removeMinterCall { account: BOB })
        .unwrap();
    assert!(logs.is_empty());

    // Ownership moves to ALICE: she administers minters, the old owner no longer does.
    assert_error(
        chain.call(BOB, nft, KhNft::transferOwnershipCall { newOwner: BOB }),
        KhNft::NotOwner { caller: BOB },
    );
    assert_error(
        chain.call(
            OWNER,
            nft,
            KhNft::transferOwnershipCall {
                newOwner: Address::ZERO,
            },
        ),
        KhNft::ZeroAddress {},
    );
    let (_, logs) = chain
        .call(OWNER, nft, KhNft::transferOwnershipCall { newOwner: ALICE })
        .unwrap();
    let ev = KhNft::OwnershipTransferred::decode_log(&logs[0]).unwrap();
    assert_eq!((ev.previousOwner, ev.newOwner), (OWNER, ALICE));
    assert_error(
        chain.call(OWNER, nft, KhNft::addMinterCall { account: OWNER }),
        KhNft::NotOwner { caller: OWNER },
    );
    chain
        .call(ALICE, nft, KhNft::removeMinterCall { account: OWNER })
        .unwrap();
    assert_error(
        chain.call(
            OWNER,
            nft,
            KhNft::mintCall {
                to: OWNER,
                tokenId: U256::from(1),
            },
        ),
        KhNft::NotMinter { caller: OWNER },
    );
}

#[test]
fn queries_of_missing_tokens_and_zero_addresses_revert() {
    let mut chain = Chain::new();
    let nft = deploy_nft(&mut chain);
    let id = U256::from(99);
    assert_error(
        chain.call(ALICE, nft, KhNft::ownerOfCall { tokenId: id }),
        KhNft::NoSuchToken { tokenId: id },
    );
    assert_error(
        chain.call(ALICE, nft, KhNft::getApprovedCall { tokenId: id }),
        KhNft::NoSuchToken { tokenId: id },
    );
    assert_error(
        chain.call(
            ALICE,
            nft,
            KhNft::approveCall {
                approved: BOB,
                tokenId: id,
            },
        ),
        KhNft::NoSuchToken { tokenId: id },
    );
    assert_error(
        chain.call(
            ALICE,
            nft,
            KhNft::balanceOfCall {
                account: Address::ZERO,
            },
        ),
        KhNft::ZeroAddress {},
    );
    assert_error(
        chain.call(
            OWNER,
            nft,
            KhNft::mintCall {
                to: Address::ZERO,
                tokenId: id,
            },
        ),
        KhNft::ZeroAddress {},
    );
    assert_error(
        chain.call(
            ALICE,
            nft,
            KhNft::setApprovalForAllCall {
                operator: Address::ZERO,
                approved: true,
            },
        ),
        KhNft::ZeroAddress {},
    );
}

#[test]
fn operators_approve_single_tokens_and_can_be_revoked() {
    let mut chain = Chain::new();
    let nft = deploy_nft(&mut chain);
    let id = U256::from(5);
    chain
        .call(
            OWNER,
            nft,
            KhNft::mintCall {
                to: ALICE,
                tokenId: id,
            },
        )
        .unwrap();
    let (_, logs) = chain
        .call(
            ALICE,
            nft,
            KhNft::setApprovalForAllCall {
                operator: BOB,
                approved: true,
            },
        )
        .unwrap();
    let ev = KhNft::ApprovalForAll::decode_log(&logs[0]).unwrap();
    assert_eq!((ev.owner, ev.operator, ev.approved), (ALICE, BOB, true));
    // An operator may approve a single token on the holder's behalf; the event names the holder.
    let (_, logs) = chain
        .call(
            BOB,
            nft,
            KhNft::approveCall {
                approved: OWNER,
                tokenId: id,
            },
        )
        .unwrap();
    let ev = KhNft::Approval::decode_log(&logs[0]).unwrap();
    assert_eq!((ev.owner, ev.approved, ev.tokenId), (ALICE, OWNER, id));
    // Revoked, the operator can neither approve nor transfer.
    let (_, logs) = chain
        .call(
            ALICE,
            nft,
            KhNft::setApprovalForAllCall {
                operator: BOB,
                approved: false,
            },
        )
        .unwrap();
    assert!(
        !KhNft::ApprovalForAll::decode_log(&logs[0])
            .unwrap()
            .approved
    );
    assert_error(
        chain.call(
            BOB,
            nft,
            KhNft::approveCall {
                approved: BOB,
                tokenId: id,
            },
        ),
        KhNft::NotAuthorized {
            caller: BOB,
            tokenId: id,
        },
    );
    assert_error(
        chain.call(
            BOB,
            nft,
            KhNft::transferFromCall {
                from: ALICE,
                to: BOB,
                tokenId: id,
            },
        ),
        KhNft::NotAuthorized {
            caller: BOB,
            tokenId: id,
        },
    );
    // The single-token approval it gave still stands.
    chain
        .call(
            OWNER,
            nft,
            KhNft::transferFromCall {
                from: ALICE,
                to: OWNER,
                tokenId: id,
            },
        )
        .unwrap();
    assert_eq!(
        chain
            .call(ALICE, nft, KhNft::ownerOfCall { tokenId: id })
            .unwrap()
            .0,
        OWNER
    );
}
