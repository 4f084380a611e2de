//! Key pairs: CreateKeyPair (real RSA-2048 and ED25519 keys), ImportKeyPair, DescribeKeyPairs,
//! DeleteKeyPair, with AWS's fingerprint formats.

use base64::Engine;
use md5::Md5;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::describe::{self, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::kinds::Tables;
use crate::{Control, Error, Resource, Result, State, Tags};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Rsa,
    Ed25519,
}

impl KeyType {
    pub fn parse(value: &str) -> Result<KeyType> {
        match value {
            "rsa" => Ok(KeyType::Rsa),
            "ed25519" => Ok(KeyType::Ed25519),
            other => Err(Error::InvalidParameterValue(format!(
                "Value ({other}) for parameter keyType is invalid. Expecting rsa or ed25519."
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyPair {
    pub key_pair_id: String,
    pub key_name: String,
    pub key_type: KeyType,
    pub key_fingerprint: String,
    /// OpenSSH format, as the instance metadata service hands it out.
    pub public_key: String,
    pub create_time: i64,
    pub tags: Tags,
}

impl Filterable for KeyPair {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("key-pair-id", |k, _| vec![k.key_pair_id.clone()]),
        ("key-name", |k, _| vec![k.key_name.clone()]),
        ("fingerprint", |k, _| vec![k.key_fingerprint.clone()]),
        ("key-type", |k, _| vec![k.key_type.as_str().to_owned()]),
    ];
}

/// Key material made for CreateKeyPair.
struct GeneratedKey {
    private_key: String,
    public_key: String,
    fingerprint: String,
}

fn colon_hex(digest: &[u8]) -> String {
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// ED25519 fingerprints, created or imported: base64 SHA-256 of the OpenSSH key blob.
fn ed25519_fingerprint(public: &ssh_key::PublicKey) -> Result<String> {
    let blob = public
        .to_bytes()
        .map_err(|e| Error::Internal(format!("cannot encode public key: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(blob)))
}

fn generate(key_type: KeyType) -> Result<GeneratedKey> {
    let mut rng = rand::rngs::OsRng;
    let internal =
        |e: &dyn std::fmt::Display| Error::Internal(format!("key generation failed: {e}"));
    match key_type {
        KeyType::Rsa => {
            let private = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| internal(&e))?;
            // AWS: SHA-1 of the DER-encoded PKCS#8 private key.
            let pkcs8 = private.to_pkcs8_der().map_err(|e| internal(&e))?;
            let fingerprint = colon_hex(&Sha1::digest(pkcs8.as_bytes()));
            let private_key = private
                .to_pkcs1_pem(LineEnding::LF)
                .map_err(|e| internal(&e))?;
            let ssh_public = ssh_key::public::RsaPublicKey::try_from(private.to_public_key())
                .map_err(|e| internal(&e))?;
            let public_key = ssh_key::PublicKey::from(ssh_public)
                .to_openssh()
                .map_err(|e| internal(&e))?;
            Ok(GeneratedKey {
                private_key: private_key.to_string(),
                public_key,
                fingerprint,
            })
        }
        KeyType::Ed25519 => {
            let private = ssh_key::PrivateKey::random(&mut rng, ssh_key::Algorithm::Ed25519)
                .map_err(|e| internal(&e))?;
            let private_key = private
                .to_openssh(ssh_key::LineEnding::LF)
                .map_err(|e| internal(&e))?;
            let public = private.public_key();
            Ok(GeneratedKey {
                private_key: private_key.to_string(),
                public_key: public.to_openssh().map_err(|e| internal(&e))?,
                fingerprint: ed25519_fingerprint(public)?,
            })
        }
    }
}

/// Parses imported OpenSSH public key material; returns (type, normalized key, fingerprint).
fn parse_public_key(material: &[u8]) -> Result<(KeyType, String, String)> {
    let invalid =
        || Error::MalformedPublicKey("Key is not in valid OpenSSH public key format".into());
    let text = std::str::from_utf8(material).map_err(|_| invalid())?.trim();
    let public = ssh_key::PublicKey::from_openssh(text).map_err(|_| invalid())?;
    let normalized = public.to_openssh().map_err(|_| invalid())?;
    match public.key_data() {
        ssh_key::public::KeyData::Ed25519(_) => {
            Ok((KeyType::Ed25519, normalized, ed25519_fingerprint(&public)?))
        }
        ssh_key::public::KeyData::Rsa(ssh_rsa) => {
            // AWS: MD5 of the DER-encoded SubjectPublicKeyInfo for imported RSA keys.
            let rsa_key = rsa::RsaPublicKey::try_from(ssh_rsa).map_err(|_| invalid())?;
            let der = rsa_key.to_public_key_der().map_err(|_| invalid())?;
            Ok((
                KeyType::Rsa,
                normalized,
                colon_hex(&Md5::digest(der.as_bytes())),
            ))
        }
        _ => Err(Error::MalformedPublicKey(
            "Only RSA and ED25519 public keys are supported".into(),
        )),
    }
}

fn validate_key_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || !name.is_ascii() {
        return Err(Error::InvalidParameterValue(format!(
            "Value ({name}) for parameter keyName is invalid. Key names must be 1 to 255 ASCII characters."
        )));
    }
    Ok(())
}

impl Control {
    /// Returns the new key pair and its private key material (PEM for RSA, OpenSSH for ED25519).
    pub fn create_key_pair(
        &self,
        name: &str,
        key_type: KeyType,
        tags: Tags,
        dry_run: bool,
    ) -> Result<(KeyPair, String)> {
        validate_key_name(name)?;
        self.ensure_key_name_free(name)?;
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        // Key generation is slow (RSA): do it before taking the write lock.
        let generated = generate(key_type)?;
        let key_pair = KeyPair {
            key_pair_id: nimbus_core::new_id("key"),
            key_name: name.to_owned(),
            key_type,
            key_fingerprint: generated.fingerprint,
            public_key: generated.public_key,
            create_time: nimbus_core::now_millis(),
            tags,
        };
        self.insert_key_pair(key_pair.clone())?;
        Ok((key_pair, generated.private_key))
    }

    pub fn import_key_pair(
        &self,
        name: &str,
        material: &[u8],
        tags: Tags,
        dry_run: bool,
    ) -> Result<KeyPair> {
        validate_key_name(name)?;
        let (key_type, public_key, key_fingerprint) = parse_public_key(material)?;
        self.ensure_key_name_free(name)?;
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let key_pair = KeyPair {
            key_pair_id: nimbus_core::new_id("key"),
            key_name: name.to_owned(),
            key_type,
            key_fingerprint,
            public_key,
            create_time: nimbus_core::now_millis(),
            tags,
        };
        self.insert_key_pair(key_pair.clone())?;
        Ok(key_pair)
    }

    fn ensure_key_name_free(&self, name: &str) -> Result<()> {
        match self.read().key_pair_by_name(name) {
            Some(_) => Err(duplicate(name)),
            None => Ok(()),
        }
    }

    fn insert_key_pair(&self, key_pair: KeyPair) -> Result<()> {
        self.mutate(|txn| {
            // Checked again under the write lock: a concurrent call may have taken the name.
            if txn.state().key_pair_by_name(&key_pair.key_name).is_some() {
                return Err(duplicate(&key_pair.key_name));
            }
            Ok(txn.put(key_pair)?)
        })
    }

    /// Key pairs named by `names` (all must exist) and by the query's IDs, sorted by name.
    pub fn describe_key_pairs(&self, names: &[String], query: &Query) -> Result<Vec<KeyPair>> {
        let state = self.read();
        let (mut found, _) =
            describe::describe::<KeyPair>(&state, self.config(), query, Paging::UNPAGED, |kp| {
                names.is_empty() || names.contains(&kp.key_name)
            })?;
        if let Some(missing) = names.iter().find(|n| state.key_pair_by_name(n).is_none()) {
            return Err(not_found(missing));
        }
        found.sort_by(|a, b| a.key_name.cmp(&b.key_name));
        Ok(found)
    }

    /// Deletes by name or ID and returns the deleted key pair's ID. Like EC2, deleting an
    /// unknown name succeeds (nothing to do), but an unknown ID is an error.
    pub fn delete_key_pair(
        &self,
        name: Option<&str>,
        id: Option<&str>,
        dry_run: bool,
    ) -> Result<Option<String>> {
        if name.is_none() && id.is_none() {
            return Err(Error::MissingParameter("KeyName or KeyPairId".into()));
        }
        self.mutate(|txn| {
            let target = match (id, name) {
                (Some(id), _) => Some(
                    describe::existing::<KeyPair>(txn.state(), id)?
                        .key_pair_id
                        .clone(),
                ),
                (None, Some(name)) => txn
                    .state()
                    .key_pair_by_name(name)
                    .map(|kp| kp.key_pair_id.clone()),
                (None, None) => None,
            };
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            if let Some(target) = &target {
                txn.delete::<KeyPair>(target);
            }
            Ok(target)
        })
    }
}

/// Lookups of the working set that the rules of this module answer.
pub trait KeyPairQueries {
    fn key_pair_by_name(&self, name: &str) -> Option<&KeyPair>;
}

impl KeyPairQueries for State {
    fn key_pair_by_name(&self, name: &str) -> Option<&KeyPair> {
        self.key_pairs().values().find(|kp| kp.key_name == name)
    }
}

fn not_found(name_or_id: &str) -> Error {
    engine::Error::not_found(KeyPair::KIND, name_or_id).into()
}

fn duplicate(name: &str) -> Error {
    Error::Duplicate {
        kind: KeyPair::KIND,
        id: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_aws_fingerprints() {
        let ed = generate(KeyType::Ed25519).expect("ed25519");
        assert!(ed
            .private_key
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(ed.public_key.starts_with("ssh-ed25519 "));
        assert_eq!(ed.fingerprint.len(), 44);
        let (key_type, _, fingerprint) =
            parse_public_key(ed.public_key.as_bytes()).expect("import");
        assert_eq!(key_type, KeyType::Ed25519);
        assert_eq!(fingerprint, ed.fingerprint);

        let rsa = generate(KeyType::Rsa).expect("rsa");
        assert!(rsa
            .private_key
            .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert_eq!(rsa.fingerprint.len(), 20 * 3 - 1);
        let (key_type, _, fingerprint) =
            parse_public_key(rsa.public_key.as_bytes()).expect("import");
        assert_eq!(key_type, KeyType::Rsa);
        assert_eq!(fingerprint.len(), 16 * 3 - 1);
    }

    #[test]
    fn garbage_public_keys_are_rejected() {
        for material in [
            &b""[..],
            b"ssh-rsa",
            b"ssh-ed25519 AAAA",
            b"\xff\xfe",
            b"ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        ] {
            assert!(matches!(
                parse_public_key(material),
                Err(Error::MalformedPublicKey(_))
            ));
        }
    }
}
