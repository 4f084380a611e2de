//! ClientToken idempotency: the same token with the same parameters returns the first call's
//! answer; the same token with other parameters is `IdempotentParameterMismatch`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::filter::{FilterField, Filterable};
use crate::{Error, Kind, KindSpec, Resource, Result, State, Tags, Txn};

/// What the first call with a token produced, keyed by `action:token`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientTokenRecord {
    pub key: String,
    pub parameters_digest: String,
    pub result: serde_json::Value,
}

/// The engine's own kind, in every registry.
impl Resource for ClientTokenRecord {
    const KIND: Kind = Kind::new(&KindSpec {
        name: "client-token",
        id_prefix: None,
        taggable: false,
        not_found_code: "InvalidParameterValue",
        not_found_message: "The client token '{id}' does not exist",
        malformed_code: "InvalidParameterValue",
        migrations: &[],
    });
    fn id(&self) -> &str {
        &self.key
    }
    fn tags(&self) -> Option<&Tags> {
        None
    }
    fn tags_mut(&mut self) -> Option<&mut Tags> {
        None
    }
}

/// Client tokens are never described.
impl Filterable for ClientTokenRecord {
    const FILTERS: &'static [FilterField<Self>] = &[];
}

/// A client token checked for AWS's limits, bound to the action and the request's parameters.
#[derive(Clone, Debug)]
pub struct ClientToken {
    key: String,
    token: String,
    parameters_digest: String,
}

impl ClientToken {
    /// `parameters` is the decoded request without the token itself.
    pub fn new(action: &str, token: &str, parameters: &serde_json::Value) -> Result<ClientToken> {
        if token.is_empty() || token.len() > 64 || !token.is_ascii() {
            return Err(Error::InvalidClientToken("1 to 64 ASCII characters"));
        }
        Ok(ClientToken {
            key: format!("{action}:{token}"),
            token: token.to_owned(),
            parameters_digest: hex::encode(Sha256::digest(parameters.to_string())),
        })
    }

    /// The `ClientToken` member of a decoded request (JSON keyed by model member names), bound
    /// to the request's other parameters; `None` when the request has no token.
    pub fn of_request(action: &str, request: &serde_json::Value) -> Result<Option<ClientToken>> {
        let Some(token) = request.get("ClientToken") else {
            return Ok(None);
        };
        let token = token
            .as_str()
            .ok_or(Error::InvalidClientToken("a string"))?;
        let mut parameters = request.clone();
        if let Some(object) = parameters.as_object_mut() {
            object.remove("ClientToken");
        }
        ClientToken::new(action, token, &parameters).map(Some)
    }

    /// The first call's result when this is a replay.
    pub fn replay(&self, state: &State) -> Result<Option<serde_json::Value>> {
        match state.get::<ClientTokenRecord>(&self.key) {
            Some(record) if record.parameters_digest == self.parameters_digest => {
                Ok(Some(record.result.clone()))
            }
            Some(_) => Err(Error::ClientTokenReused(self.token.clone())),
            None => Ok(None),
        }
    }

    /// Remembers `result` in the same transaction that created the resources.
    pub fn remember(&self, txn: &mut Txn, result: serde_json::Value) -> Result<()> {
        txn.put(ClientTokenRecord {
            key: self.key.clone(),
            parameters_digest: self.parameters_digest.clone(),
            result,
        })
    }
}

/// Creates one resource at most once per token: a replay returns the resource the first call
/// created (as it is now), a first call runs `create` and remembers the new resource's ID in
/// the same transaction. `E` is the caller's error type, so `create` keeps its own errors.
pub fn create_once<T: Resource, E: From<Error>>(
    txn: &mut Txn,
    token: Option<&ClientToken>,
    create: impl FnOnce(&mut Txn) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    if let Some(token) = token {
        if let Some(previous) = token.replay(txn.state())? {
            let id = previous.as_str().unwrap_or_default();
            return Ok(crate::describe::existing::<T>(txn.state(), id)?.clone());
        }
    }
    let created = create(txn)?;
    if let Some(token) = token {
        token.remember(txn, serde_json::json!(created.id()))?;
    }
    Ok(created)
}
