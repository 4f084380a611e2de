//! CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair.

use base64::Engine;

use control::keypairs::KeyPair;
use control::keypairs::KeyType;
use control::tags::{tags_of_created, TagSpecification};
use control::Resource;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{answer, describe_request, input, page_output, tag_list, tags_output, Handler, Output};
use crate::service::BoxFuture;
use crate::{ApiContext, ApiError};

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("CreateKeyPair", Handler::Async(create_key_pair)),
    ("ImportKeyPair", Handler::Sync(import_key_pair)),
    ("DescribeKeyPairs", Handler::Sync(describe_key_pairs)),
    ("DeleteKeyPair", Handler::Sync(delete_key_pair)),
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateKeyPair {
    key_name: String,
    key_type: Option<String>,
    key_format: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

fn create_key_pair(context: &ApiContext, request: Value) -> BoxFuture<'_, Output> {
    Box::pin(create(context, request))
}

async fn create(context: &ApiContext, request: Value) -> Output {
    let request: CreateKeyPair = input(request)?;
    if request
        .key_format
        .as_deref()
        .is_some_and(|format| format != "pem")
    {
        return Err(ApiError::from(control::Error::InvalidParameterValue(
            "KeyFormat ppk is not supported by nimbus; use pem.".into(),
        )));
    }
    let key_type = KeyType::parse(request.key_type.as_deref().unwrap_or("rsa"))?;
    let tags = tags_of_created(&request.tag_specifications, KeyPair::KIND)?;
    let control = context.control.clone();
    // RSA key generation takes a while: keep it off the request threads.
    let (key_pair, private_key) = tokio::task::spawn_blocking(move || {
        control.create_key_pair(&request.key_name, key_type, tags, request.dry_run)
    })
    .await
    .map_err(|e| ApiError::from(control::Error::Internal(e.to_string())))??;
    answer(json!({
        "KeyName": key_pair.key_name,
        "KeyFingerprint": key_pair.key_fingerprint,
        "KeyMaterial": private_key,
        "KeyPairId": key_pair.key_pair_id,
        "Tags": tags_output(&key_pair.tags),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ImportKeyPair {
    key_name: String,
    public_key_material: String,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

fn import_key_pair(context: &ApiContext, request: Value) -> Output {
    let request: ImportKeyPair = input(request)?;
    let material = base64::engine::general_purpose::STANDARD
        .decode(request.public_key_material.as_bytes())
        .map_err(|_| {
            ApiError::from(control::Error::InvalidParameterValue(
                "PublicKeyMaterial must be base64-encoded.".into(),
            ))
        })?;
    let tags = tags_of_created(&request.tag_specifications, KeyPair::KIND)?;
    let key_pair =
        context
            .control
            .import_key_pair(&request.key_name, &material, tags, request.dry_run)?;
    answer(json!({
        "KeyFingerprint": key_pair.key_fingerprint,
        "KeyName": key_pair.key_name,
        "KeyPairId": key_pair.key_pair_id,
        "Tags": tags_output(&key_pair.tags),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeKeyPairs {
    #[serde(default)]
    key_names: Vec<String>,
    #[serde(default)]
    include_public_key: bool,
}

fn describe_key_pairs(context: &ApiContext, request: Value) -> Output {
    let (query, request): (_, DescribeKeyPairs) = describe_request(request, Some("KeyPairIds"))?;
    let key_pairs = context
        .control
        .describe_key_pairs(&request.key_names, &query)?;
    Ok(page_output("KeyPairs", (key_pairs, None), |key_pair| {
        KeyPairInfo {
            key_pair_id: key_pair.key_pair_id,
            key_fingerprint: key_pair.key_fingerprint,
            key_name: key_pair.key_name,
            key_type: key_pair.key_type.as_str(),
            tags: key_pair.tags,
            public_key: request.include_public_key.then_some(key_pair.public_key),
            create_time: nimbus_core::iso8601_millis(key_pair.create_time),
        }
    }))
}

/// The model's `KeyPairInfo`, a struct rather than JSON: an account may hold thousands.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyPairInfo {
    key_pair_id: String,
    key_fingerprint: String,
    key_name: String,
    key_type: &'static str,
    #[serde(serialize_with = "tag_list")]
    tags: control::Tags,
    public_key: Option<String>,
    create_time: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteKeyPair {
    key_name: Option<String>,
    key_pair_id: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn delete_key_pair(context: &ApiContext, request: Value) -> Output {
    let request: DeleteKeyPair = input(request)?;
    let deleted = context.control.delete_key_pair(
        request.key_name.as_deref(),
        request.key_pair_id.as_deref(),
        request.dry_run,
    )?;
    answer(json!({"Return": true, "KeyPairId": deleted}))
}
