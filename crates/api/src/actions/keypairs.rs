//! CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair.

use base64::Engine;

use control::keypairs::KeyPair;
use control::keypairs::KeyType;
use control::tags::{tags_of_created, TagSpecification};
use control::Resource;
use serde::Deserialize;
use serde_json::Value;

use super::{describe_request, input, render_page, write_tag_set, Response};
use crate::{ApiContext, ApiError};

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

pub async fn create_key_pair(
    context: &ApiContext,
    request: Value,
    response: Response<'_>,
) -> Result<String, ApiError> {
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
    response.render(|xml| {
        xml.leaf("keyName", &key_pair.key_name);
        xml.leaf("keyFingerprint", &key_pair.key_fingerprint);
        xml.leaf("keyMaterial", &private_key);
        xml.leaf("keyPairId", &key_pair.key_pair_id);
        write_tag_set(xml, &key_pair.tags);
    })
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

pub fn import_key_pair(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    response.render(|xml| {
        xml.leaf("keyFingerprint", &key_pair.key_fingerprint);
        xml.leaf("keyName", &key_pair.key_name);
        xml.leaf("keyPairId", &key_pair.key_pair_id);
        write_tag_set(xml, &key_pair.tags);
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeKeyPairs {
    #[serde(default)]
    key_names: Vec<String>,
    #[serde(default)]
    include_public_key: bool,
}

pub fn describe_key_pairs(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, request): (_, DescribeKeyPairs) = describe_request(request, Some("KeyPairIds"))?;
    let key_pairs = context
        .control
        .describe_key_pairs(&request.key_names, &query)?;
    render_page(response, "keySet", (key_pairs, None), |xml, key_pair| {
        xml.leaf("keyPairId", &key_pair.key_pair_id);
        xml.leaf("keyFingerprint", &key_pair.key_fingerprint);
        xml.leaf("keyName", &key_pair.key_name);
        xml.leaf("keyType", key_pair.key_type.as_str());
        write_tag_set(xml, &key_pair.tags);
        if request.include_public_key {
            xml.leaf("publicKey", &key_pair.public_key);
        }
        xml.leaf(
            "createTime",
            &nimbus_core::iso8601_millis(key_pair.create_time),
        );
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteKeyPair {
    key_name: Option<String>,
    key_pair_id: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn delete_key_pair(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DeleteKeyPair = input(request)?;
    let deleted = context.control.delete_key_pair(
        request.key_name.as_deref(),
        request.key_pair_id.as_deref(),
        request.dry_run,
    )?;
    response.render(|xml| {
        xml.leaf("return", "true");
        if let Some(id) = &deleted {
            xml.leaf("keyPairId", id);
        }
    })
}
