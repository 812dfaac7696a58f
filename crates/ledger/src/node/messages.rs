//! The messages nodes exchange (BCS-encoded in an [`Envelope`](crate::Envelope)'s payload).
//! They name no app: an app's requests and answers travel as opaque payloads addressed to the
//! app by name. Public so that tools and tests can speak the protocol (and attack it); every
//! answer names the flow that asked, and is accepted only from the party that was asked.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TxId;
use crate::notary::NotarisationRequest;
use crate::tx::{SignedTransaction, TransactionSignature};

/// Messages between nodes.
#[allow(clippy::large_enum_variant)] // short-lived: decoded and handled per delivery
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Message {
    /// A flow asks the responder for `topic` of `app` on the receiving node.
    AppRequest {
        /// The asking flow.
        flow: Uuid,
        /// The app addressed.
        app: String,
        /// The responder's topic.
        topic: String,
        /// The app's request.
        payload: Vec<u8>,
    },
    /// The responder's answer, or why it refused.
    AppReply {
        /// The asking flow.
        flow: Uuid,
        /// The answer.
        result: Result<Vec<u8>, String>,
    },
    /// Asks the notary to notarise.
    NotariseRequest {
        /// The asking flow.
        flow: Uuid,
        /// What the notary needs.
        request: NotarisationRequest,
    },
    /// The notary's signature, or why it refused.
    NotariseResponse {
        /// The asking flow.
        flow: Uuid,
        /// The answer.
        result: Result<TransactionSignature, String>,
    },
    /// A finalised transaction with the ancestors the recipient is not known to hold; the
    /// recipient answers [`Message::FinalityAck`] to `flow`.
    Finalised {
        /// The finalising flow.
        flow: Uuid,
        /// The transaction, completely signed.
        tx: SignedTransaction,
        /// Ancestors, dependencies first.
        backchain: Vec<SignedTransaction>,
    },
    /// The recipient of a finalised transaction recorded it, or why it refused it.
    FinalityAck {
        /// The finalising flow.
        flow: Uuid,
        /// The transaction.
        tx_id: TxId,
        /// Recorded, or why not.
        result: Result<(), String>,
    },
    /// Asks for a co-signature.
    SignRequest {
        /// The asking flow.
        flow: Uuid,
        /// The transaction, signed by those before the receiver.
        tx: SignedTransaction,
        /// Ancestors the receiver is not known to hold, dependencies first.
        backchain: Vec<SignedTransaction>,
    },
    /// The co-signature, or why it was refused.
    SignResponse {
        /// The asking flow.
        flow: Uuid,
        /// The answer.
        result: Result<TransactionSignature, String>,
    },
}
