//! The messages nodes exchange. They name no app: an app's requests and answers travel as
//! opaque payloads addressed to the app by name.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::notary::NotarisationRequest;
use crate::tx::{SignedTransaction, TransactionSignature};

/// Messages between nodes.
#[allow(clippy::large_enum_variant)] // short-lived: decoded and handled per delivery
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Message {
    /// A flow asks the responder for `topic` of `app` on the receiving node.
    AppRequest {
        flow: Uuid,
        app: String,
        topic: String,
        payload: Vec<u8>,
    },
    /// The responder's answer, or why it refused.
    AppReply {
        flow: Uuid,
        result: Result<Vec<u8>, String>,
    },
    NotariseRequest {
        flow: Uuid,
        request: NotarisationRequest,
    },
    NotariseResponse {
        flow: Uuid,
        result: Result<TransactionSignature, String>,
    },
    /// A finalised transaction with the transactions that produced its inputs and references.
    Finalised {
        tx: SignedTransaction,
        backchain: Vec<SignedTransaction>,
    },
    /// Asks for a co-signature; `backchain` holds the transactions that produced the inputs
    /// and references.
    SignRequest {
        flow: Uuid,
        tx: SignedTransaction,
        backchain: Vec<SignedTransaction>,
    },
    SignResponse {
        flow: Uuid,
        result: Result<TransactionSignature, String>,
    },
}
