//! Reading and writing the CLI's files: job files, policy files, approver keys.
//!
//! Every write goes through [`vantage_node::durable::atomic_write`], so an
//! interrupted write never leaves half a job file or half a key behind.

use crate::error::{CliError, CliResult};
use base64::Engine as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use vantage_proto::sign::{ApproverKey, PublicKey};

/// Mode of private key files.
pub const PRIVATE_MODE: u32 = 0o600;
/// Mode of job, policy and public key files.
pub const PUBLIC_MODE: u32 = 0o644;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Reads a text file; a missing or unreadable file is a local error naming the path.
pub fn read_text(path: &Path) -> CliResult<String> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::local(format!("cannot read {}: {e}", path.display())))
}

/// Reads and parses a JSON file into `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> CliResult<T> {
    let text = read_text(path)?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::local(format!("{} is not a {what}: {e}", path.display())))
}

/// Writes `bytes` to `path` atomically with `mode`. Without `overwrite`, an
/// existing file is left alone and reported.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> CliResult {
    if !overwrite && path.exists() {
        return Err(CliError::local(format!(
            "{} already exists; choose another name with --out or remove it first",
            path.display()
        )));
    }
    vantage_node::durable::atomic_write(path, bytes, mode)
        .map_err(|e| CliError::local(format!("cannot write {}: {e}", path.display())))
}

/// Pretty JSON with a final newline, as files are written.
pub fn to_pretty_json(value: &impl serde::Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).expect("files always serialise");
    out.push(b'\n');
    out
}

/// Loads an approver's private key (PKCS#8 PEM, from `vantage keygen` or
/// `openssl genpkey -algorithm ed25519`). Refuses a key file others can read.
pub fn load_approver_key(path: &Path) -> CliResult<ApproverKey> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::local(format!("cannot read key {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(CliError::local(format!(
            "key {} is readable by others (mode {:o}); run: chmod 600 {}",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        )));
    }
    let text = read_text(path)?;
    ApproverKey::from_pem(&text)
        .map_err(|e| CliError::local(format!("key {}: {e}", path.display())))
}

/// Reads an approver's public key: the base64 line `vantage keygen` writes
/// (`NAME.pub`), or a PEM `PUBLIC KEY` as `openssl pkey -pubout` writes.
pub fn read_public_key(path: &Path) -> CliResult<PublicKey> {
    let text = read_text(path)?;
    parse_public_key(&text).map_err(|e| CliError::local(format!("{}: {e}", path.display())))
}

/// Parses the text of a public key file (see [`read_public_key`]).
pub fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    if text.contains("-----BEGIN") {
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| format!("PEM body is not base64: {e}"))?;
        let key = der
            .strip_prefix(&ED25519_SPKI_PREFIX[..])
            .filter(|k| k.len() == 32)
            .ok_or("not an Ed25519 public key (expected the output of vantage keygen or openssl pkey -pubout)")?;
        let mut arr = [0u8; 32];
        arr.copy_from_slice(key);
        return Ok(PublicKey(arr));
    }
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or("empty public key file")?;
    PublicKey::from_base64(line).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_forms() {
        let k = ApproverKey::from_seed(&[7; 32]).unwrap().public_key();
        let b64 = k.to_base64();
        assert_eq!(parse_public_key(&format!("# alice\n{b64}\n")).unwrap(), k);
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&k.0);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        assert_eq!(parse_public_key(&pem).unwrap(), k);
        assert!(parse_public_key("").is_err());
        assert!(parse_public_key("AAAA").is_err());
    }

    #[test]
    fn refuses_world_readable_keys_and_clobbering() {
        let dir = tempfile::tempdir().unwrap();
        let (_, pem) = ApproverKey::generate().unwrap();
        let path = dir.path().join("k.key");
        write_file(&path, pem.as_bytes(), 0o644, false).unwrap();
        assert!(matches!(load_approver_key(&path), Err(CliError::Local(_))));
        assert!(write_file(&path, b"x", PRIVATE_MODE, false).is_err());
        write_file(&path, pem.as_bytes(), PRIVATE_MODE, true).unwrap();
        load_approver_key(&path).unwrap();
    }
}
