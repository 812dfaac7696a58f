//! A network of nodes in one process (in-memory transport), each on its own database:
//! issue and pay flows, privacy (non-participants never receive the transaction), concurrent
//! overspending, cold standby of the payer and of the payee, and garbage on the node link.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use kh_app_stablecoin::*;
use kh_ledger::*;

const WAIT: Duration = Duration::from_secs(30);

struct Net {
    transport: Arc<InMemoryNetwork>,
    params: NetworkParameters,
    keys: Vec<(PartyName, KeyPair)>,
    urls: Vec<String>,
}

const NAMES: [&str; 5] = [
    "O=Notary, L=Tokyo, C=JP",
    "O=Bank, L=Tokyo, C=JP",
    "O=PartyA, L=Tokyo, C=JP",
    "O=PartyB, L=Osaka, C=JP",
    "O=Validator, L=Tokyo, C=JP",
];

impl Net {
    fn new(urls: Vec<String>) -> Self {
        let keys: Vec<(PartyName, KeyPair)> = NAMES
            .iter()
            .map(|n| (n.parse().unwrap(), KeyPair::generate()))
            .collect();
        let nodes: Vec<Party> = keys
            .iter()
            .map(|(n, k)| Party {
                name: n.clone(),
                owning_key: k.public(),
            })
            .collect();
        let params = NetworkParameters {
            notary: nodes[0].clone(),
            nodes,
            max_transaction_size: DEFAULT_MAX_TRANSACTION_SIZE,
            notary_validating: false,
            validators: vec![keys[4].0.clone()],
        };
        Self {
            transport: InMemoryNetwork::new(),
            params,
            keys,
            urls,
        }
    }

    async fn open(&self, i: usize, failpoint: Option<Failpoint>) -> Node {
        self.open_with(i, failpoint, DEFAULT_FLOW_TIMEOUT).await
    }

    async fn open_with(
        &self,
        i: usize,
        failpoint: Option<Failpoint>,
        flow_timeout: Duration,
    ) -> Node {
        let (name, key) = &self.keys[i];
        let config = NodeConfig {
            name: name.clone(),
            key: key.clone(),
            database_url: self.urls[i].clone(),
            role: match i {
                0 => NodeRole::Notary,
                4 => NodeRole::Validator,
                _ => NodeRole::Regular,
            },
            network: self.params.clone(),
            apps: vec![StablecoinApp::arc()],
            flow_timeout,
            failpoint,
        };
        let node = Node::open(config, self.transport.clone()).await.unwrap();
        self.transport.register(name.clone(), node.receiver());
        node
    }

    fn name(&self, i: usize) -> PartyName {
        self.keys[i].0.clone()
    }
}

async fn until_stopped(node: &Node) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !node.is_stopped() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failpoint was not reached"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn completed(status: FlowStatus) -> TxId {
    match status {
        FlowStatus::Completed { tx_id } => tx_id,
        other => panic!("flow did not complete: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_pay_privacy_and_overspend() {
    for (backend, urls) in common::database_urls(5).await {
        let net = Net::new(urls);
        let nodes: Vec<Node> = futures_join(&net).await;
        let (bank, a, b, validator) = (&nodes[1], &nodes[2], &nodes[3], &nodes[4]);
        let alice = a.create_account("alice").await.unwrap();
        let bob = b.create_account("bob").await.unwrap();

        let issue_tx = issue(bank, a, &alice, 100).await;

        let pay = a
            .start_flow(StablecoinFlow::Pay {
                amount: 60,
                from: alice.id,
                to_node: net.name(3),
                to_account: bob.id,
                validator: None,
            })
            .await
            .unwrap();
        let pay_tx = completed(a.wait_flow(pay, WAIT).await.unwrap());
        wait_balance(b, &bob.public_key, 60).await;
        assert_eq!(
            a.vault().balance(&alice.public_key).await.unwrap(),
            40,
            "{backend}"
        );

        // Privacy: the payment reached only its participants.
        assert!(a.vault().transaction(&pay_tx).await.unwrap().is_some());
        assert!(b.vault().transaction(&pay_tx).await.unwrap().is_some());
        for (who, node) in [
            ("bank", bank),
            ("validator", validator),
            ("notary", &nodes[0]),
        ] {
            assert!(
                node.vault().transaction(&pay_tx).await.unwrap().is_none(),
                "{backend}: {who} received the payment"
            );
        }
        assert!(
            validator
                .vault()
                .transaction(&issue_tx)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(validator.vault().transaction_count().await.unwrap(), 0);

        // Redemption: the issuer co-signs, the notary orders it, the bank learns of it.
        let redeem = a
            .start_flow(StablecoinFlow::Redeem {
                account: alice.id,
                amount: 10,
            })
            .await
            .unwrap();
        let redeem_tx = completed(a.wait_flow(redeem, WAIT).await.unwrap());
        assert_eq!(
            a.vault().balance(&alice.public_key).await.unwrap(),
            30,
            "{backend}"
        );
        let deadline = tokio::time::Instant::now() + WAIT;
        while bank
            .vault()
            .transaction(&redeem_tx)
            .await
            .unwrap()
            .is_none()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bank never learnt of the redemption"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Redeeming more than the balance fails and changes nothing.
        let too_much = a
            .start_flow(StablecoinFlow::Redeem {
                account: alice.id,
                amount: 1000,
            })
            .await
            .unwrap();
        assert!(matches!(
            a.wait_flow(too_much, WAIT).await.unwrap(),
            FlowStatus::Failed { .. }
        ));
        assert_eq!(a.vault().balance(&alice.public_key).await.unwrap(), 30);

        // Pre-splitting: the remaining 30 become 3 states of 10, balance unchanged.
        let split = a
            .start_flow(StablecoinFlow::Split {
                account: alice.id,
                parts: 3,
            })
            .await
            .unwrap();
        completed(a.wait_flow(split, WAIT).await.unwrap());
        let states = a
            .vault()
            .states(&alice.public_key, StateStatus::Unconsumed)
            .await
            .unwrap();
        assert_eq!(states.len(), 3, "{backend}");
        assert_eq!(a.vault().balance(&alice.public_key).await.unwrap(), 30);

        // Two concurrent payments that together overspend: exactly one succeeds.
        let carol = b.create_account("carol").await.unwrap();
        let p1 = a
            .start_flow(StablecoinFlow::Pay {
                amount: 20,
                from: alice.id,
                to_node: net.name(3),
                to_account: bob.id,
                validator: None,
            })
            .await
            .unwrap();
        let p2 = a
            .start_flow(StablecoinFlow::Pay {
                amount: 20,
                from: alice.id,
                to_node: net.name(3),
                to_account: carol.id,
                validator: None,
            })
            .await
            .unwrap();
        let s1 = a.wait_flow(p1, WAIT).await.unwrap();
        let s2 = a.wait_flow(p2, WAIT).await.unwrap();
        let ok = [&s1, &s2]
            .iter()
            .filter(|s| matches!(s, FlowStatus::Completed { .. }))
            .count();
        assert_eq!(ok, 1, "{backend}: {s1:?} {s2:?}");
        let failed = [&s1, &s2]
            .into_iter()
            .find(|s| matches!(s, FlowStatus::Failed { .. }))
            .unwrap();
        assert!(
            matches!(failed, FlowStatus::Failed { reason } if reason.contains("insufficient")),
            "{failed:?}"
        );
        // The winner's finality message reaches PartyB; then value is conserved.
        let winner = if matches!(s1, FlowStatus::Completed { .. }) {
            &bob
        } else {
            &carol
        };
        let expected = if winner.id == bob.id { 80 } else { 20 };
        wait_balance(b, &winner.public_key, expected).await;
        let total = a.vault().balance(&alice.public_key).await.unwrap()
            + b.vault().balance(&bob.public_key).await.unwrap()
            + b.vault().balance(&carol.public_key).await.unwrap();
        assert_eq!(
            total, 90,
            "{backend}: value is conserved (100 issued, 10 redeemed)"
        );

        // Garbage and strangers on the node link change nothing.
        let before = b.vault().transaction_count().await.unwrap();
        let receiver = b.receiver().upgrade().unwrap();
        let garbage = Envelope {
            id: uuid::Uuid::new_v4(),
            from: net.name(2),
            to: net.name(3),
            payload: vec![0xff, 0x13, 0x37],
        };
        assert!(matches!(
            receiver.receive(garbage).await,
            Err(TransportError::Refused { .. })
        ));
        let stranger = Envelope {
            id: uuid::Uuid::new_v4(),
            from: "O=Mallory, L=Nowhere, C=XX".parse().unwrap(),
            to: net.name(3),
            payload: vec![],
        };
        assert!(matches!(
            receiver.receive(stranger).await,
            Err(TransportError::Refused { .. })
        ));
        assert_eq!(b.vault().transaction_count().await.unwrap(), before);
        for n in &nodes {
            n.shutdown();
        }
    }
}

/// With a validating notary: a payment the Validator co-signs, then plain payments, a split
/// and a redemption, all verified by the notary; a Validator that is not a third party, or a
/// node that is not a Validator, is refused before anything is locked or spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_cosigning_under_a_validating_notary() {
    for (backend, urls) in common::database_urls(5).await {
        let mut net = Net::new(urls);
        net.params.notary_validating = true;
        let nodes: Vec<Node> = futures_join(&net).await;
        let (bank, a, b, validator) = (&nodes[1], &nodes[2], &nodes[3], &nodes[4]);
        let alice = a.create_account("alice").await.unwrap();
        let bob = b.create_account("bob").await.unwrap();
        issue(bank, a, &alice, 100).await;

        let pay = |amount, validator: Option<usize>| StablecoinFlow::Pay {
            amount,
            from: alice.id,
            to_node: net.name(3),
            to_account: bob.id,
            validator: validator.map(|i| net.name(i)),
        };
        let flow = a.start_flow(pay(30, Some(4))).await.unwrap();
        let tx = completed(a.wait_flow(flow, WAIT).await.unwrap());
        wait_balance(b, &bob.public_key, 30).await;
        let stx = b.vault().transaction(&tx).await.unwrap().unwrap();
        let signers: Vec<PublicKey> = stx.sigs.iter().map(|s| s.by).collect();
        for i in [0, 4] {
            let key = net.params.nodes[i].owning_key;
            assert!(
                signers.contains(&key),
                "{backend}: {} did not sign",
                net.name(i)
            );
        }
        let records = validator.validations().await.unwrap();
        assert_eq!(records.len(), 1, "{backend}");
        assert_eq!(records[0].tx_id, tx);
        assert_eq!(records[0].requester, net.name(2));
        // The Validator is sent the finalised transaction; the bank is not.
        let deadline = tokio::time::Instant::now() + WAIT;
        while validator.vault().transaction(&tx).await.unwrap().is_none() {
            assert!(tokio::time::Instant::now() < deadline, "{backend}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(bank.vault().transaction(&tx).await.unwrap().is_none());

        // Refused before anything is locked: the payee's own node, or a non-Validator.
        for (who, reason) in [(3, "third party"), (1, "not a Validator")] {
            let flow = a.start_flow(pay(1, Some(who))).await.unwrap();
            match a.wait_flow(flow, WAIT).await.unwrap() {
                FlowStatus::Failed { reason: r } => assert!(r.contains(reason), "{r}"),
                other => panic!("{backend}: {other:?}"),
            }
        }
        assert_eq!(a.vault().balance(&alice.public_key).await.unwrap(), 70);

        // The validating notary checks the contracts of every kind of flow.
        let split = a
            .start_flow(StablecoinFlow::Split {
                account: alice.id,
                parts: 7,
            })
            .await
            .unwrap();
        completed(a.wait_flow(split, WAIT).await.unwrap());
        let flow = a.start_flow(pay(20, None)).await.unwrap();
        completed(a.wait_flow(flow, WAIT).await.unwrap());
        let redeem = b
            .start_flow(StablecoinFlow::Redeem {
                account: bob.id,
                amount: 5,
            })
            .await
            .unwrap();
        completed(b.wait_flow(redeem, WAIT).await.unwrap());
        wait_balance(b, &bob.public_key, 45).await;
        assert_eq!(a.vault().balance(&alice.public_key).await.unwrap(), 50);
        // Bob's coins came from two payments; paying them on with the Validator makes it
        // check a backchain of several transactions.
        let carol = a.create_account("carol").await.unwrap();
        let flow = b
            .start_flow(StablecoinFlow::Pay {
                amount: 45,
                from: bob.id,
                to_node: net.name(2),
                to_account: carol.id,
                validator: Some(net.name(4)),
            })
            .await
            .unwrap();
        completed(b.wait_flow(flow, WAIT).await.unwrap());
        wait_balance(a, &carol.public_key, 45).await;
        assert_eq!(validator.validations().await.unwrap().len(), 2);
        for n in &nodes {
            n.shutdown();
        }
    }
}

/// Issues `amount` JPY from `bank` to `account` at `holder`, and waits until the holder has it.
async fn issue(bank: &Node, holder: &Node, account: &Account, amount: u64) -> TxId {
    let flow = bank
        .start_flow(StablecoinFlow::Issue {
            amount,
            currency: "JPY".into(),
            to_node: holder.name().clone(),
            to_account: account.id,
        })
        .await
        .unwrap();
    let tx = completed(bank.wait_flow(flow, WAIT).await.unwrap());
    wait_balance(holder, &account.public_key, amount).await;
    tx
}

async fn futures_join(net: &Net) -> Vec<Node> {
    let mut nodes = vec![];
    for i in 0..5 {
        nodes.push(net.open(i, None).await);
    }
    nodes
}

async fn wait_balance(node: &Node, key: &PublicKey, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = node.vault().balance(key).await.unwrap();
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "balance {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_node_on_the_same_database_finishes_the_flow() {
    for (backend, urls) in common::database_urls(5).await {
        let net = Net::new(urls);
        let notary = net.open(0, None).await;
        let bank = net.open(1, None).await;
        // The payer crashes right after its notarisation request went out.
        let a = net
            .open(2, Some(Failpoint::CrashAfterNotariseRequest))
            .await;
        let b = net.open(3, None).await;
        let alice = a.create_account("alice").await.unwrap();
        let bob = b.create_account("bob").await.unwrap();
        issue(&bank, &a, &alice, 50).await;
        let flow = a
            .start_flow(StablecoinFlow::Pay {
                amount: 20,
                from: alice.id,
                to_node: net.name(3),
                to_account: bob.id,
                validator: None,
            })
            .await
            .unwrap();
        until_stopped(&a).await;
        a.shutdown();
        net.transport.unregister(&net.name(2));
        assert!(matches!(
            a.flow_status(flow).await.unwrap(),
            FlowStatus::Running { .. }
        ));
        // A killed process takes its database connections with it.
        drop(a);

        // The standby opens the same database and finishes the flow.
        let standby = net.open(2, None).await;
        let tx = completed(standby.wait_flow(flow, WAIT).await.unwrap());
        wait_balance(&b, &bob.public_key, 20).await;
        assert_eq!(
            standby.vault().balance(&alice.public_key).await.unwrap(),
            30,
            "{backend}"
        );
        // One payment transaction, agreed by both sides.
        assert_eq!(
            b.vault().transaction(&tx).await.unwrap(),
            standby.vault().transaction(&tx).await.unwrap()
        );
        assert_eq!(b.vault().transaction_count().await.unwrap(), 1);

        // Now the payee crashes after telling its key; its standby receives the payment.
        b.shutdown();
        drop(b);
        net.transport.unregister(&net.name(3));
        let b2 = net.open(3, Some(Failpoint::CrashAfterKeyResponse)).await;
        let flow = standby
            .start_flow(StablecoinFlow::Pay {
                amount: 5,
                from: alice.id,
                to_node: net.name(3),
                to_account: bob.id,
                validator: None,
            })
            .await
            .unwrap();
        until_stopped(&b2).await;
        b2.shutdown();
        drop(b2);
        net.transport.unregister(&net.name(3));
        // The payment is notarised and recorded by the payer, but it completes only once the
        // payee has recorded it too: not while the payee is down.
        tokio::time::sleep(Duration::from_millis(300)).await;
        match standby.flow_status(flow).await.unwrap() {
            FlowStatus::Running { step } => {
                assert!(step.contains("PartyB recorded"), "{backend}: {step}")
            }
            other => panic!("{backend}: {other:?}"),
        }
        let b3 = net.open(3, None).await;
        let tx = completed(standby.wait_flow(flow, WAIT).await.unwrap());
        // Completion means the payee holds it already.
        assert_eq!(b3.vault().balance(&bob.public_key).await.unwrap(), 25);
        assert!(b3.vault().transaction(&tx).await.unwrap().is_some());
        assert_eq!(b3.vault().transaction_count().await.unwrap(), 2);
        for n in [&notary, &bank, &standby, &b3] {
            n.shutdown();
        }
    }
}

/// A payment whose Validator never answers holds its coins until the flow is killed or times
/// out; then the coins are free again and can be spent at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_timed_out_flows_release_their_coins() {
    for (backend, urls) in common::database_urls(5).await {
        let net = Net::new(urls);
        // The Validator (node 4) is never opened: its co-signature never comes.
        let notary = net.open(0, None).await;
        let bank = net.open(1, None).await;
        let b = net.open(3, None).await;
        let a = net.open(2, None).await;
        let alice = a.create_account("alice").await.unwrap();
        let bob = b.create_account("bob").await.unwrap();
        issue(&bank, &a, &alice, 100).await;
        let pay = |amount, validator: Option<PartyName>| StablecoinFlow::Pay {
            amount,
            from: alice.id,
            to_node: net.name(3),
            to_account: bob.id,
            validator,
        };

        let stuck = a.start_flow(pay(100, Some(net.name(4)))).await.unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let lock = a
                .vault()
                .states(&alice.public_key, StateStatus::Unconsumed)
                .await
                .unwrap();
            if a.vault()
                .lock_of(&lock[0].reference)
                .await
                .unwrap()
                .map(|l| l.0)
                == Some(stuck)
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend}: coins never locked"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(a.flow_status(stuck).await.unwrap().is_running());
        // While it holds the coins, another payment cannot have them.
        let other = a.start_flow(pay(100, None)).await.unwrap();
        match a.wait_flow(other, WAIT).await.unwrap() {
            FlowStatus::Failed { reason } => {
                assert!(reason.contains("insufficient funds"), "{reason}")
            }
            s => panic!("{backend}: {s:?}"),
        }
        match a.kill_flow(stuck, "test").await.unwrap() {
            FlowStatus::Failed { reason } => assert_eq!(reason, "killed: test"),
            s => panic!("{backend}: {s:?}"),
        }
        // Killing again changes nothing; the coins are free and spent right after.
        assert_eq!(
            a.kill_flow(stuck, "again").await.unwrap(),
            FlowStatus::Failed {
                reason: "killed: test".into()
            }
        );
        let paid = a.start_flow(pay(40, None)).await.unwrap();
        completed(a.wait_flow(paid, WAIT).await.unwrap());
        wait_balance(&b, &bob.public_key, 40).await;

        // The same with a flow timeout of half a second instead of a kill.
        a.shutdown();
        let a = net.open_with(2, None, Duration::from_millis(500)).await;
        let stuck = a.start_flow(pay(60, Some(net.name(4)))).await.unwrap();
        match a.wait_flow(stuck, WAIT).await.unwrap() {
            FlowStatus::Failed { reason } => assert!(
                reason.starts_with("timed out after 500 ms (awaiting the signature of O=Validator"),
                "{backend}: {reason}"
            ),
            s => panic!("{backend}: {s:?}"),
        }
        let paid = a.start_flow(pay(60, None)).await.unwrap();
        completed(a.wait_flow(paid, WAIT).await.unwrap());
        wait_balance(&b, &bob.public_key, 100).await;
        assert_eq!(a.vault().balance(&alice.public_key).await.unwrap(), 0);
        for n in [&notary, &bank, &a, &b] {
            n.shutdown();
        }
    }
}

/// A split whose transaction would exceed the network's size limit is refused before anything
/// is built or notarised, and the coins it selected are free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_split_is_refused_up_front() {
    for (backend, urls) in common::database_urls(5).await {
        let net = Net::new(urls);
        let nodes: Vec<Node> = futures_join(&net).await;
        let (bank, a) = (&nodes[1], &nodes[2]);
        let alice = a.create_account("alice").await.unwrap();
        issue(bank, a, &alice, 1_000_000_000).await;
        let flow = a
            .start_flow(StablecoinFlow::Split {
                account: alice.id,
                parts: 10_000_000,
            })
            .await
            .unwrap();
        match a.wait_flow(flow, WAIT).await.unwrap() {
            FlowStatus::Failed { reason } => assert!(
                reason.starts_with("a split into 10000000 parts would make a transaction of about")
                    && reason.ends_with("over the network's limit of 10485760 bytes"),
                "{backend}: {reason}"
            ),
            other => panic!("{backend}: {other:?}"),
        }
        let flow = a
            .start_flow(StablecoinFlow::Split {
                account: alice.id,
                parts: 4,
            })
            .await
            .unwrap();
        completed(a.wait_flow(flow, WAIT).await.unwrap());
        let states = a
            .vault()
            .states(&alice.public_key, StateStatus::Unconsumed)
            .await
            .unwrap();
        assert_eq!(states.len(), 4, "{backend}");
        for n in &nodes {
            n.shutdown();
        }
    }
}
